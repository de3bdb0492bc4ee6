"""The emulator's ESC/POS decoder and the status bytes both sides of the wire agree on."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime

import pytest

from appliance.edge.escpos_decoder import (
    MAX_TICKET_LINES,
    DecoderEvent,
    DecoderNote,
    EscposDecoder,
    PrintedLine,
    StatusRequest,
    TicketCut,
)
from appliance.edge.escpos_printer import encode_ticket
from appliance.edge.ticket_layout import layout_ticket
from appliance.edge.ticket_printer import (
    PrinterCondition,
    decode_status,
    status_byte,
    transmit_status_byte,
)
from sync.contracts.order import LineModifier, Order, OrderLine

ESC, GS, DLE = b"\x1b", b"\x1d", b"\x10"
CUT = GS + b"V\x00"


def _cuts(events: Sequence[object]) -> list[TicketCut]:
    return [e for e in events if isinstance(e, TicketCut)]


def _one_ticket(data: bytes) -> tuple[PrintedLine, ...]:
    cuts = _cuts(EscposDecoder().feed(data))
    assert len(cuts) == 1, cuts
    return cuts[0].lines


def _order() -> Order:
    return Order(
        order_id="ord_01JDEM0000000000000000ORD1", tenant_id="ten_x", device_id="dev_x",
        call_id="call_x", number=7, caller="+3120555", currency="EUR", blueprint_hash="h",
        total_cents=2900, created_at=datetime(2025, 3, 1, 12, 30, tzinfo=UTC),
        lines=[OrderLine(line_id="l1", item_id="p", name="Pepperoni pizza", size="large",
                         quantity=2, unit_price_cents=1450,
                         modifiers=[LineModifier(kind="remove", name="onions")],
                         notes="Café crème on the side")],
    )


def test_plain_lines_until_cut_make_one_ticket() -> None:
    lines = _one_ticket(b"HELLO\nWORLD\n" + CUT)
    assert [line.text for line in lines] == ["HELLO", "WORLD"]
    assert lines[0] == PrintedLine("HELLO")


def test_styles_bold_sizes_alignment_underline() -> None:
    data = (
        ESC + b"E\x01" + ESC + b"a\x01" + b"BOLD CENTER\n"
        + ESC + b"E\x00" + ESC + b"a\x02" + ESC + b"-\x01" + b"RIGHT UNDER\n"
        + ESC + b"-\x00" + ESC + b"a\x30" + ESC + b"!\x38" + b"BANG BIG BOLD\n"
        + ESC + b"!\x10" + b"TALL\n"
        + GS + b"!\x11" + b"GS DOUBLE\n"
        + GS + b"!\x00" + b"NORMAL\n"
        + ESC + b"E\x01" + GS + b"!\x22" + ESC + b"@" + b"RESET\n" + CUT
    )
    lines = _one_ticket(data)
    assert lines == (
        PrintedLine("BOLD CENTER", bold=True, align="center"),
        PrintedLine("RIGHT UNDER", align="right", underline=True),
        PrintedLine("BANG BIG BOLD", bold=True, width=2, height=2),
        PrintedLine("TALL", height=2),
        PrintedLine("GS DOUBLE", width=2, height=2),
        PrintedLine("NORMAL"),
        PrintedLine("RESET"),
    )
    assert lines[2].double and lines[3].double and not lines[5].double


def test_style_of_a_line_is_the_style_at_its_first_character() -> None:
    (line,) = _one_ticket(ESC + b"E\x01" + b"AB" + ESC + b"E\x00" + b"CD\n" + CUT)
    assert line == PrintedLine("ABCD", bold=True)


def test_cut_splits_tickets_and_blank_edges_are_trimmed() -> None:
    data = (b"\nONE\n" + ESC + b"d\x06" + CUT + b"TWO\n" + GS + b"V\x41\x03"
            + b"THREE" + GS + b"V\x01" + CUT)
    events = EscposDecoder().feed(data)
    assert [[line.text for line in cut.lines] for cut in _cuts(events)] == [
        ["ONE"], ["TWO"], ["THREE"],
    ]
    assert DecoderNote("cut with nothing printed") in events


def test_feed_and_line_end_controls() -> None:
    lines = _one_ticket(b"A" + ESC + b"d\x03" + b"B\r\nC\rD\tE\n" + ESC + b"J\x10" + CUT)
    assert [line.text for line in lines] == ["A", "", "", "B", "C", "D       E"]


def test_reset_drops_the_unprinted_line_and_restores_the_code_page() -> None:
    lines = _one_ticket(ESC + b"t\x10" + b"LOST" + ESC + b"@" + b"caf\x82\n" + CUT)
    assert [line.text for line in lines] == ["café"]


def test_code_pages_switch_mid_line() -> None:
    (line,) = _one_ticket(ESC + b"t\x10" + b"caf\xe9 " + ESC + b"t\x13" + b"\xd5 "
                          + ESC + b"t\x63" + b"x\n" + CUT)
    assert line.text == "café € x"


def test_status_queries_come_out_in_stream_order() -> None:
    events = EscposDecoder().feed(DLE + b"\x04\x01" + b"A\n" + DLE + b"\x04\x04"
                                  + GS + b"r\x31" + CUT + DLE + b"\x04\x02")
    assert events == [
        StatusRequest("DLE EOT", 1), StatusRequest("DLE EOT", 4), StatusRequest("GS r", 1),
        TicketCut((PrintedLine("A"),)), StatusRequest("DLE EOT", 2),
    ]


def test_unknown_and_unhandled_sequences_are_skipped_with_a_note() -> None:
    image = bytes([0x0A, 0x1B, 0x40, 0x1D, 0x56, 0x00, 0x10, 0x04, 0x01] * 4)  # 36 bytes
    data = (
        b"BEFORE\n"
        + ESC + b"\x7e" + b"AFTER ESC\n"                      # unknown ESC ~
        + GS + b"\x99" + b"AFTER GS\n"                        # unknown GS 0x99
        + GS + b"v0\x00\x04\x00\x09\x00" + image + b"AFTER IMAGE\n"   # raster 4 x 9
        + GS + b"(k\x03\x001C\x05" + b"AFTER QR\n"           # GS ( k, length-prefixed
        + GS + b"k\x04" + b"12345\x00" + b"AFTER CODE39\n"   # barcode to NUL
        + ESC + b"p\x00\x19\xfa" + b"AFTER DRAWER\n"         # cash drawer kick
        + DLE + b"\x05\x01" + DLE + b"\x04\x09" + b"AFTER DLE\n"
        + CUT
    )
    events = EscposDecoder().feed(data)
    assert [line.text for line in _cuts(events)[0].lines] == [
        "BEFORE", "AFTER ESC", "AFTER GS", "AFTER IMAGE", "AFTER QR", "AFTER CODE39",
        "AFTER DRAWER", "AFTER DLE",
    ]
    notes = [e.message for e in events if isinstance(e, DecoderNote)]
    assert "skipped unknown ESC 0x7e" in notes
    assert "skipped unknown GS 0x99" in notes
    assert not any(isinstance(e, StatusRequest) for e in events)  # image bytes are not commands


def test_huge_declared_image_neither_buffers_nor_stalls() -> None:
    decoder = EscposDecoder()
    decoder.feed(GS + b"v0\x00\xff\xff\xff\xff")  # claims ~4 GB of image data
    for _ in range(50):
        assert decoder.feed(b"\x00" * 4096) == []
    assert decoder.buffered_bytes == 0


def test_unfinished_command_waits_for_its_bytes() -> None:
    decoder = EscposDecoder()
    assert decoder.feed(b"X\n" + GS) == []
    assert decoder.feed(b"V") == []
    assert decoder.buffered_bytes == 2
    assert decoder.feed(b"\x00") == [TicketCut((PrintedLine("X"),))]


def test_a_stream_that_never_cuts_is_flushed_at_the_line_limit() -> None:
    events = EscposDecoder().feed(b"line\n" * (MAX_TICKET_LINES + 5))
    (cut,) = _cuts(events)
    assert len(cut.lines) == MAX_TICKET_LINES


def test_long_lines_wrap_at_the_paper_edge() -> None:
    lines = _one_ticket(b"x" * 50 + b"\n" + ESC + b"!\x20" + b"y" * 30 + b"\n" + CUT)
    assert [len(line.text) for line in lines] == [48, 2, 24, 6]


def test_what_the_driver_encodes_the_decoder_reads_back() -> None:
    layout = layout_ticket(_order(), UTC)
    lines = _one_ticket(encode_ticket(layout))
    expected = [line for line in layout if line.text.strip()]
    decoded = [line for line in lines if line.text.strip()]
    assert [(d.text, d.bold, d.align, d.width, d.height) for d in decoded] == [
        (e.text, e.bold, e.align, 2 if e.double else 1, 2 if e.double or e.tall else 1)
        for e in expected
    ]
    assert any("Café crème" in line.text for line in decoded)


def _mixed_stream() -> bytes:
    ticket = encode_ticket(layout_ticket(_order(), UTC))
    return (DLE + b"\x04\x01" + ticket + DLE + b"\x04\x01" + ESC + b"\x7e"
            + GS + b"v0\x00\x02\x00\x02\x00" + b"\x1b\x1b\x0a\x10" + b"tail\n"
            + GS + b"(k\x02\x00ab" + ticket + DLE + b"\x04\x04")


def test_bytes_split_anywhere_decode_the_same() -> None:
    data = _mixed_stream()
    whole = EscposDecoder().feed(data)
    assert len(_cuts(whole)) == 2

    one_by_one: list[DecoderEvent] = []
    decoder = EscposDecoder()
    for i in range(len(data)):
        one_by_one += decoder.feed(data[i:i + 1])
    assert one_by_one == whole

    rng = random.Random(20250301)
    for _ in range(25):
        decoder, i = EscposDecoder(), 0
        events: list[DecoderEvent] = []
        while i < len(data):
            step = rng.randint(1, 40)
            events += decoder.feed(data[i:i + step])
            i += step
        assert events == whole


# -- status bytes: what the emulator answers is what the driver reads ---------------------


def test_status_bytes_follow_the_epson_layout() -> None:
    ready = [status_byte(PrinterCondition.READY, n) for n in (1, 2, 3, 4)]
    assert ready == [0x12, 0x12, 0x12, 0x12]
    assert status_byte(PrinterCondition.OFFLINE, 1) == 0x1A
    assert status_byte(PrinterCondition.COVER_OPEN, 2) & 0x04
    assert status_byte(PrinterCondition.PAPER_OUT, 2) & 0x20
    assert status_byte(PrinterCondition.PAPER_OUT, 4) & 0x60 == 0x60
    # python-escpos reads "no paper" as (byte & 114) == 114 on DLE EOT 4
    assert status_byte(PrinterCondition.PAPER_OUT, 4) & 114 == 114
    assert transmit_status_byte(PrinterCondition.PAPER_OUT, 1) == 0x0F
    assert transmit_status_byte(PrinterCondition.READY, 1) == 0x00
    assert transmit_status_byte(PrinterCondition.PAPER_OUT, 2) == 0x00


@pytest.mark.parametrize("condition", [c for c in PrinterCondition if c != "unknown"])
def test_status_round_trips(condition: PrinterCondition) -> None:
    answers = (status_byte(condition, 1), status_byte(condition, 2), status_byte(condition, 4))
    state = decode_status(*answers)
    assert state.condition is condition
    assert state.ready is (condition is PrinterCondition.READY)


def test_line_noise_is_not_a_status() -> None:
    state = decode_status(0x12, 0xFF, 0x12)
    assert state.condition is PrinterCondition.UNKNOWN
    assert state.detail and "0xff" in state.detail


# -- the cut counter (GS g 2) --------------------------------------------------------------


def test_gs_g_2_asks_for_a_counter_in_any_byte_split() -> None:
    from appliance.edge.escpos_decoder import CounterRequest
    from appliance.edge.ticket_printer import CUTS_COUNTER, counter_request

    stream = b"\x1b@A\n" + counter_request() + b"B\n" + CUT + GS + b"g0\x00\x14\x00"
    for split in range(1, len(stream)):
        decoder = EscposDecoder()
        events = decoder.feed(stream[:split]) + decoder.feed(stream[split:])
        assert [e for e in events if isinstance(e, CounterRequest)] == [
            CounterRequest(CUTS_COUNTER)]
        [cut] = _cuts(events)
        assert [line.text for line in cut.lines] == ["A", "B"]  # no digits leak into the text
        assert any(isinstance(e, DecoderNote) and "GS g 0" in e.message for e in events)


def test_counter_answer_round_trips_and_rejects_noise() -> None:
    from appliance.edge.ticket_printer import counter_answer, parse_counter_answer

    assert counter_answer(1234) == b"_1234\x00"
    assert parse_counter_answer(counter_answer(0)) == 0
    assert parse_counter_answer(counter_answer(4294967295)) == 4294967295
    for noise in (b"", b"_\x00", b"1234\x00", b"_12a4\x00", b"_1234", b"_" + b"9" * 11 + b"\x00"):
        assert parse_counter_answer(noise) is None
