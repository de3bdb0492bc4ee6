"""Tools that book time for later: opening hours, tables, and staff transfers or callbacks.

hours.check is pure (the overlay's opening hours, the date and time passed in);
reservation.check/book use the local store with the overlay's capacity per slot.
handoff.transfer and callback.schedule only record the promise in the store for now: the
SIP REFER to the staff line and the callback scheduler come in a later issue.
"""

from __future__ import annotations

import datetime as dt

from appliance.dialog.tool_registry import ToolContext, ToolFailure, ToolImpl
from appliance.store.reservations import ReservationBook, SlotFull
from blueprints.model import WEEKDAYS, Blueprint
from sync.contracts.tool_schemas import (
    CallbackScheduleInput,
    CallbackScheduleOutput,
    HandoffTransferInput,
    HandoffTransferOutput,
    HoursCheckInput,
    HoursCheckOutput,
    ReservationBookInput,
    ReservationBookOutput,
    ReservationCheckInput,
    ReservationCheckOutput,
)


def check_hours(bp: Blueprint, day: dt.date, at: dt.time) -> HoursCheckOutput:
    """Open at `at` on `day` (local)? If not, the day's next (or last) opening span."""
    if bp.hours is None:
        raise ToolFailure("hours.unknown", "unavailable", "I don't have our opening hours.")
    spans = bp.hours.get(WEEKDAYS[day.weekday()], [])
    for span in spans:
        if span.opens <= at < span.closes:
            return HoursCheckOutput(open=True, opens=span.opens, closes=span.closes)
    near = next((s for s in spans if s.opens > at), spans[-1] if spans else None)
    if near is None:
        return HoursCheckOutput(open=False)
    return HoursCheckOutput(open=False, opens=near.opens, closes=near.closes)


def slot_start(bp: Blueprint, day: dt.date, at: dt.time) -> dt.datetime:
    """The local start of the booking slot `at` falls into."""
    size = bp.reservations.slot_minutes if bp.reservations else 30
    minutes = (at.hour * 60 + at.minute) // size * size
    return dt.datetime.combine(day, dt.time(minutes // 60, minutes % 60))


def hours_tools(bp: Blueprint) -> dict[str, ToolImpl]:
    """The pure tools of this module: safe to run inside the dialog."""

    def hours(args: HoursCheckInput, ctx: ToolContext) -> HoursCheckOutput:
        return check_hours(bp, args.date, args.time)

    return {"hours.check": hours}


def booking_tools(book: ReservationBook, bp: Blueprint, tenant_id: str,
                  device_id: str) -> dict[str, ToolImpl]:
    """reservation.check and reservation.book against the box's reservations table."""

    def capacity() -> int:
        if bp.reservations is None:
            raise ToolFailure("reservation.unavailable", "unavailable", "We don't take bookings.")
        return bp.reservations.covers_per_slot

    def check(args: ReservationCheckInput, ctx: ToolContext) -> ReservationCheckOutput:
        start = slot_start(bp, args.date, args.time)
        left = max(capacity() - book.covers_booked(tenant_id, start), 0)
        return ReservationCheckOutput(available=args.party_size <= left, slot_start=start,
                                      covers_left=left)

    def reserve(args: ReservationBookInput, ctx: ToolContext) -> ReservationBookOutput:
        # The dialog checks hours before, but the tool never trusts its caller to have.
        if not check_hours(bp, args.date, args.time).open:
            raise ToolFailure("reservation.closed", "validation", "We're closed at that time.")
        try:
            res, created = book.book(
                tenant_id=tenant_id, device_id=device_id,
                call_id=ctx.correlation.call_id or "unknown",
                slot_start=slot_start(bp, args.date, args.time), party_size=args.party_size,
                name=args.name, phone=args.phone or ctx.caller, capacity=capacity(),
                idempotency_key=ctx.idempotency_key or "", blueprint_hash=bp.content_hash,
                now=ctx.now)
        except SlotFull as exc:
            raise ToolFailure("reservation.full", "validation",
                              "Sorry, that time has just been fully booked.") from exc
        return ReservationBookOutput(reservation_id=res.reservation_id, slot_start=res.slot_start,
                                     party_size=res.party_size, name=res.name, created=created)

    return {"reservation.check": check, "reservation.book": reserve}


def follow_up_tools(book: ReservationBook, tenant_id: str, device_id: str) -> dict[str, ToolImpl]:
    """handoff.transfer and callback.schedule, recorded as follow-ups for staff."""

    def transfer(args: HandoffTransferInput, ctx: ToolContext) -> HandoffTransferOutput:
        fu, _ = book.record_follow_up(
            kind="transfer", tenant_id=tenant_id, device_id=device_id,
            call_id=ctx.correlation.call_id or "unknown", phone=ctx.caller, reason=args.reason,
            summary=args.summary, not_before=None, idempotency_key=ctx.idempotency_key or "",
            now=ctx.now)
        return HandoffTransferOutput(follow_up_id=fu.follow_up_id, status="recorded")

    def callback(args: CallbackScheduleInput, ctx: ToolContext) -> CallbackScheduleOutput:
        fu, _ = book.record_follow_up(
            kind="callback", tenant_id=tenant_id, device_id=device_id,
            call_id=ctx.correlation.call_id or "unknown", phone=args.phone or ctx.caller,
            reason=args.reason, summary=args.summary, not_before=args.not_before,
            idempotency_key=ctx.idempotency_key or "", now=ctx.now)
        return CallbackScheduleOutput(follow_up_id=fu.follow_up_id, status="recorded",
                                      phone=fu.phone)

    return {"handoff.transfer": transfer, "callback.schedule": callback}
