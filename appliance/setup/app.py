"""voxeron-setup: the box's touchscreen UI and local API (Litestar: the one module using it).

The skeleton shows what an owner checks first: is the box answering, what did callers
order, did the kitchen ticket print, and which callers wait for a person (with the
handover summary). Configuration screens come with later issues.
"""

from __future__ import annotations

import html
from pathlib import Path

import uvicorn
from litestar import Litestar, MediaType, get
from litestar.datastructures import State

from appliance.config import BoxIdentity, SetupConfig
from appliance.store import LocalStore
from appliance.store.reservations import FollowUp, ReservationBook
from sync.structured_log import bind, setup_logging


def _money(cents: int, currency: str) -> str:
    return f"{cents / 100:.2f} {currency}"


@get("/healthz")
async def healthz(state: State) -> dict[str, object]:
    store: LocalStore = state.store
    return {"ok": True, "device_id": state.identity.device_id, "outbox_depth": store.outbox_depth()}


@get("/api/orders")
async def api_orders(state: State) -> list[dict[str, object]]:
    store: LocalStore = state.store
    out = []
    for o in store.orders(50):
        out.append({**o.model_dump(mode="json"), "ticket": store.action_status(o.order_id)})
    return out


_LABELS = {"intent": "Wanted", "cart": "So far", "heard": "Heard", "transfer": "Transfer"}


def summary_lines(fu: FollowUp) -> list[str]:
    """The follow-up's handover notes as short labelled lines, known notes first."""
    keys = [k for k in _LABELS if k in fu.summary]
    keys += sorted(k for k in fu.summary if k not in _LABELS and k not in ("reason", "caller"))
    return [f"{_LABELS.get(k, k.replace('_', ' ').capitalize())}: {fu.summary[k]}"
            for k in keys if fu.summary[k]]


@get("/api/follow-ups")
async def api_follow_ups(state: State) -> list[dict[str, object]]:
    """Pending transfers and callbacks, oldest first, each with its summary lines."""
    book: ReservationBook = state.book
    return [{**fu.model_dump(mode="json"), "lines": summary_lines(fu)}
            for fu in book.follow_ups("pending")]


def _follow_up_rows(book: ReservationBook) -> str:
    rows = []
    for fu in book.follow_ups("pending"):
        lines = "<br>".join(html.escape(line) for line in summary_lines(fu))
        rows.append(
            f"<tr><td>{html.escape(fu.kind)}</td><td>{html.escape(fu.phone or 'unknown')}</td>"
            f"<td>{html.escape(fu.reason)}</td><td>{fu.created_at:%H:%M}</td><td>{lines}</td></tr>"
        )
    return "".join(rows)


@get("/", media_type=MediaType.HTML)
async def index(state: State) -> str:
    store: LocalStore = state.store
    ident: BoxIdentity = state.identity
    rows = []
    for o in store.orders(20):
        items = ", ".join(f"{li.quantity}x {li.name}" + "".join(
            f" ({m.kind} {m.name})" for m in li.modifiers) for li in o.lines)
        rows.append(
            f"<tr><td>#{o.number}</td><td>{o.created_at:%H:%M}</td><td>{html.escape(items)}</td>"
            f"<td>{_money(o.total_cents, o.currency)}</td>"
            f"<td>{html.escape(store.action_status(o.order_id) or '-')}</td></tr>"
        )
    calls = []
    for call_id in store.calls(5):
        turns = "".join(
            f"<li><b>{t.speaker}</b> {t.at:%H:%M:%S}: {html.escape(t.text)}</li>"
            for t in store.turns(call_id)
        )
        calls.append(f"<h3>{html.escape(call_id)}</h3><ul>{turns}</ul>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<meta http-equiv="refresh" content="3"><title>Voxeron box</title>
<style>body{{font-family:sans-serif;font-size:20px;margin:1em}}td,th{{padding:.3em .8em}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#eee}}</style></head><body>
<h1>Voxeron box</h1><p>Device {html.escape(ident.device_id)} &middot; tenant
{html.escape(ident.tenant_id)} &middot; waiting to sync: {store.outbox_depth()}</p>
<h2>Orders</h2><table id="orders"><tr><th>No.</th><th>Time</th><th>Items</th><th>Total</th>
<th>Ticket</th></tr>{''.join(rows)}</table><h2>Waiting for staff</h2>
<table id="follow-ups"><tr><th>Kind</th><th>Caller</th><th>Reason</th><th>Time</th>
<th>Summary</th></tr>{_follow_up_rows(state.book)}</table><h2>Recent calls</h2>{''.join(calls)}</body></html>"""


def create_app(identity: BoxIdentity, db_path: Path | None = None) -> Litestar:
    store = LocalStore(db_path or identity.db_path)
    book = ReservationBook(store)

    def close() -> None:
        book.close()
        store.close()

    return Litestar(
        route_handlers=[healthz, api_orders, api_follow_ups, index],
        state=State({"store": store, "book": book, "identity": identity}),
        on_shutdown=[close],
        # Our JSON logs are set up per process; Litestar's default would add a second,
        # plain-text root handler (and leak into every later test's stderr).
        logging_config=None,
    )


def run_setup(identity: BoxIdentity, cfg: SetupConfig) -> None:
    """Process entry of voxeron-setup."""
    setup_logging("setup")
    bind(tenant_id=identity.tenant_id, device_id=identity.device_id)
    uvicorn.run(create_app(identity), host=cfg.host, port=cfg.port, log_config=None,
                access_log=False)
