"""voxeron-setup: the box's touchscreen UI and local API (Litestar: the one module using it).

The skeleton shows what an owner checks first: is the box answering, what did callers
order, did the kitchen ticket print, and which callers wait for a person (with the
handover summary). Each recent call also shows which engines served it and any failover
(call_sessions). Configuration screens come with later issues.

The "Test call" button lets the owner talk to the agent from this browser: the page sends
its WebRTC offer here and this process forwards it to voxeron-voice's loopback signalling
endpoint (appliance/voice/webrtc_signalling.py says why), then shows the transcript.
"""

from __future__ import annotations

import html
import ipaddress
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import FromPath
from pydantic import ValidationError

from appliance.config import BoxIdentity, SetupConfig, WebCallConfig
from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessionRecord, CallSessions
from appliance.store.reservations import FollowUp, ReservationBook
from appliance.voice.webrtc_signalling import WebCallOffer
from sync.contracts.errors import ErrorEnvelope
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


@get("/api/calls/{call_id:str}/turns")
async def api_call_turns(state: State, call_id: FromPath[str]) -> list[dict[str, object]]:
    """What was said on one call so far, in order (the test call page polls this)."""
    store: LocalStore = state.store
    return [{"speaker": t.speaker, "text": t.text, "at": t.at.isoformat()}
            for t in store.turns(call_id)]


def routing_line(rec: CallSessionRecord) -> str:
    """One call's routing in a line staff can read: the engines (or why it went to staff)
    and every failover, so "why did it mishear me" has an answer on the box itself."""
    r = rec.routing
    if r.get("human_fallback"):
        line = f"Routing: sent to staff ({r['human_fallback']})"
    else:
        line = "Routing: " + ", ".join(f"{k} {r[k][0]}" for k in ("asr", "tts", "nlu") if r.get(k))
    for f in rec.failovers:
        line += (f"; failover {f.get('from_provider', '?')} -> {f.get('to_provider', '?')}"
                 f" at turn {f.get('at_turn', '?')} ({f.get('error', '')})")
    return line


@get("/api/calls/{call_id:str}/session")
async def api_call_session(state: State, call_id: FromPath[str]) -> Response[Any]:
    """The call's routing decision (engines in order, reasons) and its failovers."""
    sessions: CallSessions = state.sessions
    rec = sessions.get(call_id)
    if rec is None:
        return _error(404, "call_session.not_found", f"no routing was recorded for call {call_id!r}")
    body = {**rec.model_dump(mode="json"), "line": routing_line(rec)}
    return Response(body, media_type=MediaType.JSON)


def _error(status: int, code: str, message: str, *, retryable: bool = False) -> Response[str]:
    category = "validation" if status < 500 else "unavailable"
    body = ErrorEnvelope(code=code, category=category, message=message, retryable=retryable)
    return Response(body.model_dump_json(), status_code=status, media_type=MediaType.JSON)


async def _to_voice(state: State, method: str, path: str, body: str | None = None) -> Response[str]:
    """Forward to voxeron-voice's loopback test-call endpoint; its answer or error comes back."""
    cfg: WebCallConfig = state.test_call
    if not cfg.enabled:
        return _error(404, "test_call.disabled", "test calls are switched off on this box")
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{cfg.port}", timeout=20.0) as c:
            reply = await c.request(method, path, content=body,
                                    headers={"Content-Type": "application/json"})
    except httpx.HTTPError:
        return _error(503, "test_call.voice_unavailable",
                      "the voice service is not answering; is voxeron-voice running?",
                      retryable=True)
    return Response(reply.text, status_code=reply.status_code, media_type=MediaType.JSON)


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@post("/api/test-call")
async def api_test_call(state: State, request: Request) -> Response[str]:
    """Start a test call: the browser's complete SDP offer in, the box's SDP answer out."""
    cfg: WebCallConfig = state.test_call
    if not cfg.remote and not _is_loopback(request.client.host if request.client else ""):
        return _error(403, "test_call.forbidden",
                      "test calls start from the box's own screen (VOXERON_TEST_CALL_REMOTE)")
    try:
        offer = WebCallOffer.model_validate_json(await request.body())
    except ValidationError as err:
        return _error(400, "test_call.bad_offer",
                      f"expected JSON {{sdp, type: offer}}: {err.errors()[0]['msg']}")
    return await _to_voice(state, "POST", "/test-calls", offer.model_dump_json())


@get("/api/test-call/{call_id:str}")
async def api_test_call_state(state: State, call_id: FromPath[str]) -> Response[str]:
    return await _to_voice(state, "GET", f"/test-calls/{call_id}")


@post("/api/test-call/{call_id:str}/hangup")
async def api_test_call_hangup(state: State, call_id: FromPath[str]) -> Response[str]:
    return await _to_voice(state, "POST", f"/test-calls/{call_id}/hangup")


_SCRIPT = Path(__file__).parent / "templates" / "test_call.js"


@get("/test-call.js", media_type="text/javascript")
async def test_call_js() -> str:
    return _SCRIPT.read_text()


_TEST_CALL = """<h2>Test call</h2><p><button id="test-call-button">Test call</button>
<button id="test-call-hangup" disabled>Hang up</button> <span id="test-call-state">idle</span></p>
<ol id="test-call-transcript"></ol><audio id="test-call-audio" autoplay></audio>
<script src="/test-call.js"></script>"""


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
        rec = state.sessions.get(call_id)
        routed = f'<p class="routing">{html.escape(routing_line(rec))}</p>' if rec else ""
        calls.append(f"<h3>{html.escape(call_id)}</h3>{routed}<ul>{turns}</ul>")
    return f"""<!doctype html><html><head><meta charset="utf-8">
<noscript><meta http-equiv="refresh" content="3"></noscript><title>Voxeron box</title>
<style>body{{font-family:sans-serif;font-size:20px;margin:1em}}td,th{{padding:.3em .8em}}
table{{border-collapse:collapse}}tr:nth-child(even){{background:#eee}}</style></head><body>
<h1>Voxeron box</h1><p>Device {html.escape(ident.device_id)} &middot; tenant
{html.escape(ident.tenant_id)} &middot; waiting to sync: {store.outbox_depth()}</p>{_TEST_CALL}
<h2>Orders</h2><table id="orders"><tr><th>No.</th><th>Time</th><th>Items</th><th>Total</th>
<th>Ticket</th></tr>{''.join(rows)}</table><h2>Waiting for staff</h2>
<table id="follow-ups"><tr><th>Kind</th><th>Caller</th><th>Reason</th><th>Time</th>
<th>Summary</th></tr>{_follow_up_rows(state.book)}</table><h2>Recent calls</h2>{''.join(calls)}</body></html>"""


def create_app(identity: BoxIdentity, db_path: Path | None = None,
               test_call: WebCallConfig | None = None) -> Litestar:
    store = LocalStore(db_path or identity.db_path)
    book = ReservationBook(store)
    sessions = CallSessions(store)

    def close() -> None:
        sessions.close()
        book.close()
        store.close()

    return Litestar(
        route_handlers=[healthz, api_orders, api_follow_ups, api_call_turns, api_call_session, api_test_call,
                        api_test_call_state, api_test_call_hangup, test_call_js, index],
        state=State({"store": store, "book": book, "sessions": sessions, "identity": identity,
                     "test_call": test_call or WebCallConfig()}),
        on_shutdown=[close],
        # Our JSON logs are set up per process; Litestar's default would add a second,
        # plain-text root handler (and leak into every later test's stderr).
        logging_config=None,
    )


def run_setup(identity: BoxIdentity, cfg: SetupConfig) -> None:
    """Process entry of voxeron-setup."""
    setup_logging("setup")
    bind(tenant_id=identity.tenant_id, device_id=identity.device_id)
    uvicorn.run(create_app(identity, test_call=cfg.test_call), host=cfg.host, port=cfg.port, log_config=None,
                access_log=False)
