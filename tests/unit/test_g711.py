"""G.711 tables against known values and a scalar port of the ITU-T G.191 reference code."""

from __future__ import annotations

import numpy as np
import pytest

from appliance.voice.g711 import (
    ALAW_DECODE,
    ULAW_DECODE,
    alaw_decode,
    alaw_encode,
    codec_for,
    ulaw_decode,
    ulaw_encode,
)

ALL = np.arange(-32768, 32768, dtype=np.int32)
CODES = bytes(range(256))


def g191_ulaw(x: int) -> int:
    """ulaw_compress() of ITU-T G.191, one sample, loop for loop."""
    absno = ((~x) >> 2) + 33 if x < 0 else (x >> 2) + 33
    absno = min(absno, 0x1FFF)
    i, segno = absno >> 6, 1
    while i:
        segno, i = segno + 1, i >> 1
    high = 0x8 - segno
    low = 0xF - ((absno >> segno) & 0xF)
    out = (high << 4) | low
    return out | 0x80 if x >= 0 else out


def g191_alaw(x: int) -> int:
    """alaw_compress() of ITU-T G.191, one sample."""
    ix = (~x) >> 4 if x < 0 else x >> 4
    if ix > 15:
        iexp = 1
        while ix > 16 + 15:
            ix, iexp = ix >> 1, iexp + 1
        ix = ix - 16 + (iexp << 4)
    if x >= 0:
        ix |= 0x80
    return ix ^ 0x55


def test_known_mu_law_values() -> None:
    assert ulaw_decode(b"\xff\x7f\x80\x00").tolist() == [0, 0, 32124, -32124]
    assert ulaw_encode(np.array([0, 32767, -32768, 8, -8], dtype=np.int16)) == b"\xff\x80\x00\xfe\x7e"


def test_known_a_law_values() -> None:
    assert alaw_decode(b"\xd5\x55\xaa\x2a").tolist() == [8, -8, 32256, -32256]
    assert alaw_encode(np.array([0, -1, 32767, -32768], dtype=np.int16)) == b"\xd5\x55\xaa\x2a"


def test_encoders_match_the_g191_reference_for_every_sample() -> None:
    pcm = ALL.astype(np.int16)
    ulaw = np.frombuffer(ulaw_encode(pcm), dtype=np.uint8)
    alaw = np.frombuffer(alaw_encode(pcm), dtype=np.uint8)
    assert ulaw.tolist() == [g191_ulaw(int(x)) for x in ALL]
    assert alaw.tolist() == [g191_alaw(int(x)) for x in ALL]


def test_sign_symmetry() -> None:
    codes = np.arange(256)
    assert np.array_equal(ULAW_DECODE[codes].astype(int), -ULAW_DECODE[codes ^ 0x80].astype(int))
    assert np.array_equal(ALAW_DECODE[codes].astype(int), -ALAW_DECODE[codes ^ 0x80].astype(int))


@pytest.mark.parametrize("encode,decode", [(ulaw_encode, ulaw_decode), (alaw_encode, alaw_decode)])
def test_companding_is_monotonic_and_close(encode, decode) -> None:  # type: ignore[no-untyped-def]
    pcm = ALL.astype(np.int16)
    back = decode(encode(pcm)).astype(np.int64)
    assert np.all(np.diff(back) >= 0)  # a louder input never decodes quieter
    assert len(np.unique(back)) >= 255
    # Quantisation error stays within half a step: at most 1/32 of the level plus the finest step.
    assert np.all(np.abs(back - ALL) <= np.abs(ALL) / 32 + 16)


def test_every_code_round_trips() -> None:
    alaw_back = alaw_encode(alaw_decode(CODES))
    assert alaw_back == CODES
    ulaw_back = ulaw_encode(ulaw_decode(CODES))
    assert [i for i in range(256) if ulaw_back[i] != i] == [0x7F]  # -0 encodes as +0


def test_codec_object_and_input_checks() -> None:
    pcmu, pcma = codec_for("pcmu"), codec_for("PCMA", 96)
    assert (pcmu.name, pcmu.payload_type, pcma.payload_type) == ("PCMU", 0, 96)
    frame = (np.sin(np.arange(160) / 5) * 10000).astype(np.int16)
    assert len(pcmu.encode(frame)) == 160 and pcmu.decode(bytes([pcmu.silence]))[0] == 0
    assert abs(int(pcma.decode(bytes([pcma.silence]))[0])) == 8
    with pytest.raises(TypeError):
        ulaw_encode(np.zeros(10, dtype=np.float32))
    with pytest.raises(ValueError):
        codec_for("G729")
