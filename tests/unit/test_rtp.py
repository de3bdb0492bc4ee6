"""RTP packets, jitter buffer, playout clock, peer policy, and the endpoint on loopback UDP.

Timing is never asserted by measuring sleeps: the clock is tested with time passed in, and
the endpoint by what arrives (order, counts, headers).
"""

from __future__ import annotations

import asyncio
import socket
import struct

import numpy as np
import pytest

from appliance.voice.g711 import codec_for, ulaw_decode, ulaw_encode
from appliance.voice.jitter_buffer import JitterBuffer, Reframer, conceal
from appliance.voice.playout_clock import PlayoutClock
from appliance.voice.rtp import RtpEndpoint, RtpPacket, RtpParseError, RtpPeer, parse_rtp

PCMU = codec_for("PCMU")


def test_packet_round_trip_with_marker_and_csrcs() -> None:
    packet = RtpPacket(0, 65535, 2**32 - 1, 0xDEADBEEF, b"\xff" * 160, marker=True, csrcs=(1, 2))
    data = packet.to_bytes()
    assert data[0] == 0x82 and data[1] == 0x80
    assert parse_rtp(data) == packet


def test_extension_is_skipped_and_padding_removed() -> None:
    head = struct.pack("!BBHII", 0x80 | 0x10 | 0x20, 8, 7, 160, 42)
    ext = struct.pack("!HH", 0xBEDE, 2) + b"\x01" * 8
    packet = parse_rtp(head + ext + b"abc" + b"\x00\x00\x03")
    assert (packet.payload_type, packet.sequence, packet.payload) == (8, 7, b"abc")


@pytest.mark.parametrize("data", [
    b"", b"\x80\x00\x00", struct.pack("!BBHII", 0x40, 0, 1, 1, 1),  # too short, version 1
    struct.pack("!BBHII", 0x82, 0, 1, 1, 1) + b"\x00" * 4,  # CSRC list cut short
    struct.pack("!BBHII", 0x90, 0, 1, 1, 1) + b"\x00\x00\x00\x05",  # extension cut short
    struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"ab\x09",  # more padding than payload
    struct.pack("!BBHII", 0xA0, 0, 1, 1, 1) + b"ab\x00",  # zero padding count
])
def test_malformed_packets_raise(data: bytes) -> None:
    with pytest.raises(RtpParseError):
        parse_rtp(data)


def released(buf: JitterBuffer[str], seqs: list[int]) -> list[tuple[int, str | None]]:
    out: list[tuple[int, str | None]] = []
    for seq in seqs:
        out += buf.push(seq, f"p{seq}")
    return out


def test_jitter_buffer_passes_in_order_packets_at_once() -> None:
    buf: JitterBuffer[str] = JitterBuffer(depth=3)
    assert buf.push(10, "a") == [(10, "a")]
    assert buf.push(11, "b") == [(11, "b")]


def test_jitter_buffer_reorders() -> None:
    buf: JitterBuffer[str] = JitterBuffer(depth=3)
    assert released(buf, [1, 3]) == [(1, "p1")]
    assert buf.push(2, "p2") == [(2, "p2"), (3, "p3")]
    assert buf.stats.lost == 0


def test_jitter_buffer_drops_duplicates_and_late_packets() -> None:
    buf: JitterBuffer[str] = JitterBuffer(depth=3)
    out = released(buf, [1, 2, 2, 3, 1, 4])
    assert [s for s, _ in out] == [1, 2, 3, 4]
    assert (buf.stats.duplicates, buf.stats.late) == (0, 2)
    held: JitterBuffer[str] = JitterBuffer(depth=3)
    assert released(held, [1, 3, 3, 2]) == [(1, "p1"), (2, "p2"), (3, "p3")]
    assert held.stats.duplicates == 1


def test_jitter_buffer_declares_loss_after_depth_later_packets() -> None:
    buf: JitterBuffer[str] = JitterBuffer(depth=3)
    out = released(buf, [1, 3, 4])
    assert out == [(1, "p1")]  # 2 may still come
    out = buf.push(5, "p5")
    assert out == [(2, None), (3, "p3"), (4, "p4"), (5, "p5")]
    assert buf.stats.lost == 1 and buf.push(2, "late") == [] and buf.stats.late == 1


def test_jitter_buffer_wraps_and_resyncs() -> None:
    buf: JitterBuffer[str] = JitterBuffer(depth=3, max_gap=50)
    assert [s for s, _ in released(buf, [65534, 65535, 0, 1])] == [65534, 65535, 0, 1]
    assert [s for s, _ in released(buf, [3, 2])] == [2, 3]
    assert released(buf, [30000]) == [(30000, "p30000")]  # a restart, not 26997 lost packets
    assert buf.stats.resyncs == 1 and buf.stats.lost == 0


def test_concealment_repeats_once_then_silence() -> None:
    prev = np.full(160, 1000, dtype=np.int16)
    assert np.array_equal(conceal(prev, 1), np.full(160, 500, dtype=np.int16))
    assert not conceal(prev, 2).any() and not conceal(None, 1).any()
    assert len(conceal(prev[:80], 1, 240)) == 240


def test_reframer_cuts_any_packet_size_into_160() -> None:
    frames = Reframer()
    out = frames.push(np.arange(240, dtype=np.int16)) + frames.push(np.arange(240, 480, dtype=np.int16))
    assert [len(f) for f in out] == [160, 160, 160]
    assert np.array_equal(np.concatenate(out), np.arange(480, dtype=np.int16))


def test_playout_clock_keeps_an_absolute_schedule() -> None:
    clock = PlayoutClock(timestamp=1000)
    clock.start_talkspurt(100.0)
    first = clock.next_packet(100.0)
    assert (first.timestamp, first.marker) == (1000, True)
    late = clock.next_packet(100.035)  # woke up 15 ms late
    assert (late.timestamp, late.marker) == (1160, False)
    assert clock.due == pytest.approx(100.04)  # not 100.055: lateness does not accumulate
    clock.next_packet(100.5)  # a 460 ms stall: skip ahead instead of bursting the backlog
    assert clock.due == pytest.approx(100.52)


def test_playout_clock_timestamps_span_silence_and_mark_talkspurts() -> None:
    clock = PlayoutClock(timestamp=2**32 - 160)
    clock.start_talkspurt(0.0)
    assert clock.next_packet(0.0).timestamp == 2**32 - 160
    assert clock.next_packet(0.02).timestamp == 0  # wraps
    clock.start_talkspurt(1.02)  # 1 s of nothing sent
    resumed = clock.next_packet(1.02)
    assert resumed.marker and resumed.timestamp == 160 + 49 * 160
    clock.mark_talkspurt()
    assert clock.next_packet(1.04).marker


def test_peer_trusts_sdp_only_when_it_is_the_sip_source_ip() -> None:
    trusted = RtpPeer("127.0.0.1", 4000, "127.0.0.1")
    assert trusted.destination == ("127.0.0.1", 4000) and not trusted.latched
    assert trusted.accept(("127.0.0.1", 5555)) and not trusted.accept(("127.0.0.2", 4000))
    for sdp_host in ("127.0.0.2", "phone.example", None, "0.0.0.0"):
        peer = RtpPeer(sdp_host, 4000, "127.0.0.1")
        assert peer.destination is None
        assert peer.accept(("127.0.0.3", 6000)) and peer.latched
        assert peer.destination == ("127.0.0.3", 6000)
        assert not peer.accept(("127.0.0.3", 6001))


def _udp() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    return sock


async def _collect(sock: socket.socket, count: int, timeout: float = 5.0) -> list[RtpPacket]:
    loop = asyncio.get_running_loop()
    out: list[RtpPacket] = []
    while len(out) < count:
        data = await asyncio.wait_for(loop.sock_recv(sock, 2048), timeout)
        out.append(parse_rtp(data))
    return out


def test_endpoint_delivers_ordered_repaired_frames() -> None:
    async def scenario() -> None:
        sender = _udp()
        peer = RtpPeer("127.0.0.1", sender.getsockname()[1], "127.0.0.1")
        endpoint = await RtpEndpoint.open("127.0.0.1", PCMU, peer)
        target = ("127.0.0.1", endpoint.local_port)
        levels = {seq: 100 * (seq + 1) for seq in range(11)}
        sender.sendto(b"\x00junk", target)
        for seq in [0, 1, 3, 3, 2, 5, 6, 7, 8, 1, 9, 10]:  # 3 duplicated, 4 lost, 1 late
            pcm = np.full(160, levels[seq], dtype=np.int16)
            pt, payload = (101, b"\x01\x00\x00\xa0") if seq == 6 else (0, ulaw_encode(pcm))  # DTMF
            sender.sendto(RtpPacket(pt, seq, seq * 160, 7, payload).to_bytes(), target)
        frames: list[np.ndarray] = []
        async for frame in endpoint.frames():
            frames.append(frame)
            if len(frames) == 10:
                endpoint.close()
        assert [len(f) for f in frames] == [160] * 10
        level = {s: int(ulaw_decode(ulaw_encode(np.array([v], dtype=np.int16)))[0]) for s, v in levels.items()}
        concealed = level[3] // 2  # the lost packet: the last frame repeated at half level
        expected = [level[0], level[1], level[2], level[3], concealed, level[5], level[7], level[8],
                    level[9], level[10]]  # the DTMF packet carries no audio frame
        assert [int(f[0]) for f in frames] == expected
        stats = endpoint.stats
        assert (stats.jitter.duplicates, stats.jitter.late, stats.jitter.lost, stats.malformed) == (1, 1, 1, 1)
        sender.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))


def test_endpoint_paces_queued_audio_and_stops_on_barge_in() -> None:
    async def scenario() -> None:
        receiver = _udp()
        peer = RtpPeer("127.0.0.1", receiver.getsockname()[1], "127.0.0.1")
        endpoint = await RtpEndpoint.open("127.0.0.1", PCMU, peer)
        tone = (np.sin(np.arange(400) / 3) * 8000).astype(np.int16)  # 2.5 frames
        first = asyncio.create_task(endpoint.play(tone))
        second = asyncio.create_task(endpoint.play(tone[:160]))
        await asyncio.sleep(0)
        assert endpoint.playing
        await asyncio.wait_for(asyncio.gather(first, second), 5)
        packets = await _collect(receiver, 4)
        assert [p.sequence - packets[0].sequence for p in packets] == [0, 1, 2, 3]
        assert [p.timestamp - packets[0].timestamp for p in packets] == [0, 160, 320, 480]
        assert [p.marker for p in packets] == [True, False, False, False]
        assert len({p.ssrc for p in packets}) == 1
        assert np.array_equal(ulaw_decode(b"".join(p.payload for p in packets[:3]))[:400],
                              ulaw_decode(ulaw_encode(tone)))
        await asyncio.sleep(0.1)
        assert not endpoint.playing and endpoint.stats.packets_out == 4  # idle: nothing sent

        long = asyncio.create_task(endpoint.play(np.zeros(8000 * 5, dtype=np.int16)))  # 250 frames
        drained = asyncio.create_task(endpoint.drain())
        await asyncio.sleep(0.1)
        endpoint.stop_playback()
        await asyncio.wait_for(asyncio.gather(long, drained), 1)
        assert not endpoint.playing
        sent = endpoint.stats.packets_out - 4
        assert 1 <= sent < 250
        resumed = (await _collect(receiver, sent))[0]
        assert resumed.marker  # a new talkspurt after silence
        endpoint.close()
        await asyncio.wait_for(endpoint.play(tone), 1)  # returns at once once closed
        receiver.close()

    asyncio.run(asyncio.wait_for(scenario(), 15))


def test_endpoint_latches_onto_first_rtp_source_and_ignores_others() -> None:
    async def scenario() -> None:
        phone, intruder = _udp(), _udp()
        endpoint = await RtpEndpoint.open("127.0.0.1", PCMU, RtpPeer("phone.example", 4000, "127.0.0.1"))
        target = ("127.0.0.1", endpoint.local_port)
        play = asyncio.create_task(endpoint.play(np.zeros(160, dtype=np.int16)))
        intruder.sendto(b"\x00not rtp", target)  # junk must not latch the peer
        await asyncio.sleep(0.05)
        assert not play.done() and endpoint.stats.packets_out == 0  # nowhere to send yet
        assert endpoint.stats.malformed == 1 and endpoint.peer.destination is None
        phone.sendto(RtpPacket(0, 1, 0, 9, b"\xff" * 160).to_bytes(), target)
        await asyncio.wait_for(play, 2)
        assert len(await _collect(phone, 1)) == 1
        intruder.sendto(RtpPacket(0, 2, 160, 9, b"\x00" * 160).to_bytes(), target)
        await asyncio.sleep(0.05)
        assert endpoint.stats.foreign == 1 and endpoint.stats.packets_in == 1
        endpoint.close()
        phone.close()
        intruder.close()

    asyncio.run(asyncio.wait_for(scenario(), 10))
