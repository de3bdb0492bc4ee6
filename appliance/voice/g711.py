"""G.711 mu-law and A-law with numpy lookup tables (audioop is gone from Python 3.13).

Tables are built once at import from the bit-level algorithm of the ITU-T G.191 reference
code; encoding is then one fancy-indexing lookup per frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_BIAS = 0x84
_ALAW_SEG_END = np.array([0x1F, 0x3F, 0x7F, 0xFF, 0x1FF, 0x3FF, 0x7FF, 0xFFF], dtype=np.int32)


def _ulaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32)
    sign = np.where(pcm < 0, 0x80, 0)
    # G.191 works on 14-bit magnitudes with one's complement for negatives (~x, not -x).
    mag = np.minimum((np.where(pcm < 0, ~pcm, pcm) >> 2) + 33, 0x1FFF)
    exponent = np.floor(np.log2(mag)).astype(np.int32) - 5  # mag >= 33, so exponent >= 0
    mantissa = (mag >> (exponent + 1)) & 0x0F
    return (~(sign | (exponent << 4) | mantissa) & 0xFF).astype(np.uint8)


def _ulaw_decode_table() -> np.ndarray:
    u = ~np.arange(256, dtype=np.int32) & 0xFF
    t = (((u & 0x0F) << 3) + _BIAS) << ((u & 0x70) >> 4)
    return np.where(u & 0x80, _BIAS - t, t - _BIAS).astype(np.int16)


def _alaw_encode_table() -> np.ndarray:
    pcm = np.arange(-32768, 32768, dtype=np.int32) >> 3
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    mag = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = np.searchsorted(_ALAW_SEG_END, mag).astype(np.int32)  # first end >= mag
    shift = np.where(seg < 2, 1, seg)
    aval = (np.minimum(seg, 7) << 4) | ((mag >> shift) & 0x0F)
    aval = np.where(seg >= 8, 0x7F, aval)
    return ((aval ^ mask) & 0xFF).astype(np.uint8)


def _alaw_decode_table() -> np.ndarray:
    a = np.arange(256, dtype=np.int32) ^ 0x55
    t = (a & 0x0F) << 4
    seg = (a & 0x70) >> 4
    t = np.where(seg == 0, t + 8, (t + 0x108) << np.maximum(seg - 1, 0))
    return np.where(a & 0x80, t, -t).astype(np.int16)


ULAW_ENCODE = _ulaw_encode_table()
ULAW_DECODE = _ulaw_decode_table()
ALAW_ENCODE = _alaw_encode_table()
ALAW_DECODE = _alaw_decode_table()


def _index(pcm: np.ndarray) -> np.ndarray:
    samples = np.asarray(pcm)
    if samples.dtype != np.int16:
        raise TypeError(f"G.711 encodes int16 samples, got {samples.dtype}")
    return samples.astype(np.int32) + 32768


def _codes(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    if isinstance(data, np.ndarray):
        return data.astype(np.uint8, copy=False)
    return np.frombuffer(bytes(data), dtype=np.uint8)


def ulaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> mu-law octets."""
    return ULAW_ENCODE[_index(pcm)].tobytes()


def ulaw_decode(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """mu-law octets -> int16 samples."""
    return ULAW_DECODE[_codes(data)]


def alaw_encode(pcm: np.ndarray) -> bytes:
    """int16 samples -> A-law octets."""
    return ALAW_ENCODE[_index(pcm)].tobytes()


def alaw_decode(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A-law octets -> int16 samples."""
    return ALAW_DECODE[_codes(data)]


@dataclass(frozen=True)
class G711Codec:
    """One negotiated G.711 variant: its name, RTP payload type and conversion tables."""

    name: str
    payload_type: int

    def encode(self, pcm: np.ndarray) -> bytes:
        """int16 samples -> payload octets."""
        return ulaw_encode(pcm) if self.name == "PCMU" else alaw_encode(pcm)

    def decode(self, data: bytes) -> np.ndarray:
        """Payload octets -> int16 samples."""
        return ulaw_decode(data) if self.name == "PCMU" else alaw_decode(data)

    @property
    def silence(self) -> int:
        """The octet that decodes to (near) zero: 0xFF for mu-law, 0xD5 for A-law."""
        return 0xFF if self.name == "PCMU" else 0xD5


def codec_for(encoding: str, payload_type: int | None = None) -> G711Codec:
    """G711Codec for "PCMU"/"PCMA"; the payload type defaults to the static one (0/8)."""
    name = encoding.upper()
    if name not in ("PCMU", "PCMA"):
        raise ValueError(f"not a G.711 encoding: {encoding!r}")
    return G711Codec(name, payload_type if payload_type is not None else (0 if name == "PCMU" else 8))
