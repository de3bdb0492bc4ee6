"""Caller audio for independent SIP peers: one timeline of speech and pauses.

sipp and baresip cannot listen for the agent, so the caller's side is laid out in time:
wait for the greeting, say a line, leave the agent time to answer, say the next. The
gaps are generous: the agent only listens while it is idle (barge-in comes later).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from appliance.voice.g711 import ulaw_encode

RATE = 8000
FRAME = 160  # 20 ms


def timeline(speech: list[np.ndarray], first_wait_s: float, gaps_s: list[float]) -> np.ndarray:
    """Silence, line 1, gap 1, line 2, gap 2, ... as one int16 8 kHz array."""
    parts = [np.zeros(int(first_wait_s * RATE), dtype=np.int16)]
    for audio, gap in zip(speech, gaps_s, strict=True):
        parts += [audio.astype(np.int16), np.zeros(int(gap * RATE), dtype=np.int16)]
    out = np.concatenate(parts)
    pad = (-len(out)) % FRAME
    return np.concatenate([out, np.zeros(pad, dtype=np.int16)])


def _checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def write_rtp_pcap(path: Path, pcm: np.ndarray, *, src_port: int = 6000, dst_port: int = 7000,
                   ssrc: int = 0x5EED0001) -> int:
    """Write PCMU RTP packets (20 ms each) as an Ethernet/IPv4/UDP libpcap file.

    sipp's play_pcap_audio replays the UDP payloads with their original spacing to the
    media address the agent answered with; addresses in the file are placeholders.
    Returns the number of packets.
    """
    payload = ulaw_encode(pcm)
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        count = 0
        for i in range(0, len(payload), FRAME):
            rtp = struct.pack("!BBHII", 0x80, 0x80 if i == 0 else 0x00, i // FRAME & 0xFFFF,
                              i & 0xFFFFFFFF, ssrc) + payload[i:i + FRAME]
            udp = struct.pack("!HHHH", src_port, dst_port, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), count & 0xFFFF, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            frame = b"\0" * 6 + b"\0" * 6 + b"\x08\x00" + ip + udp
            t_us = count * 20_000
            f.write(struct.pack("<IIII", t_us // 1_000_000, t_us % 1_000_000, len(frame), len(frame)))
            f.write(frame)
            count += 1
    return count


# The scripted order both independent peers (sipp, baresip) speak, and the pauses that
# leave the agent time to answer each line.
ORDER_LINES = ["I'd like a large pepperoni pizza and two cokes please.", "That's all.", "Yes."]
ORDER_GAPS_S = [9.0, 13.0, 10.0]


def scripted_order_call() -> np.ndarray:
    """The caller's whole side of the scripted order, voiced by Piper."""
    from appliance.voice.tts_piper import PiperTts

    tts = PiperTts()
    return timeline([tts.synthesize(t) for t in ORDER_LINES], first_wait_s=6.0, gaps_s=ORDER_GAPS_S)


def write_dtmf_pcap(path: Path, digits: str, *, payload_type: int = 101, lead_s: float = 0.5,
                    ssrc: int = 0x5EED0002) -> int:
    """Write RFC 4733 telephone-events for `digits` as a libpcap file for play_pcap_audio.

    Each key: updates every 20 ms for 100 ms, then the end packet three times (same RTP
    timestamp, as RFC 4733 2.5.1.4 asks), then 100 ms of gap. Returns the packet count.
    """
    keys = "0123456789*#ABCD"
    packets: list[tuple[int, bytes]] = []
    seq, t_us = 0, int(lead_s * 1_000_000)
    for n, digit in enumerate(digits):
        timestamp = 8000 + n * 1600
        updates = [(False, 160 * (i + 1)) for i in range(5)] + [(True, 800)] * 3
        for i, (end, duration) in enumerate(updates):
            event = struct.pack("!BBH", keys.index(digit), (0x80 if end else 0) | 10, duration)
            header = struct.pack("!BBHII", 0x80, (0x80 if i == 0 else 0) | payload_type, seq,
                                 timestamp, ssrc)
            packets.append((t_us, header + event))
            seq, t_us = seq + 1, t_us + 20_000
        t_us += 100_000
    with path.open("wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        for count, (at_us, rtp) in enumerate(packets):
            udp = struct.pack("!HHHH", 6000, 7000, 8 + len(rtp), 0) + rtp
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), count & 0xFFFF, 0, 64, 17, 0,
                             bytes([127, 0, 0, 1]), bytes([127, 0, 0, 1]))
            ip = ip[:10] + struct.pack("!H", _checksum(ip)) + ip[12:]
            frame = b"\0" * 12 + b"\x08\x00" + ip + udp
            f.write(struct.pack("<IIII", at_us // 1_000_000, at_us % 1_000_000, len(frame), len(frame)))
            f.write(frame)
    return len(packets)
