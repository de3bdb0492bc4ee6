"""The tenant's calls_per_min over real SIP: the agent voxeron-voice builds (service.sip_agent)
reads the quota of the desired state in force at each INVITE, from the box's real SQLite.

A call past the quota in the rolling minute is refused like one past max_calls (486, or
302 to the staff line with overflow on); a newer desired document lets the next call in,
with no restart.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from appliance.config import VoiceConfig
from appliance.desired_blueprint import DesiredComposer
from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore, desired_state
from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.call_session import VoiceDeps
from appliance.voice.desired_in_force import DesiredInForce
from appliance.voice.service import sip_agent
from appliance.voice.sip_agent import SipAgent
from appliance.voice.sip_message import SipResponse
from appliance.voice.sip_refer import staff_uri
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin
from sync.contracts.messages import DesiredState, TenantPolicy
from sync.structured_log import JsonFormatter, log_context
from tests.integration.sip_phone import Phone, answered_call, eventually, idle

NOW = datetime(2026, 11, 24, 19, 0, tzinfo=UTC)
STAFF = "sip:staff@127.0.0.1:5099"


class Lines(logging.Handler):
    """The agent's log lines as voxeron-voice writes them (JSON, with the bound ids)."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter("voice"))
        self.lines: list[dict[str, object]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(json.loads(self.format(record)))


@pytest.fixture
def agent_log() -> Iterator[Lines]:
    handler, logger = Lines(), logging.getLogger("appliance.voice.sip_agent")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not `.level =`: it clears isEnabledFor's cache
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def box_deps(tmp_path: Path, staff: str | None = None) -> VoiceDeps:
    """What voxeron-voice loads once per process; the engines are never loaded here."""
    store = LocalStore(tmp_path / "box.sqlite3")
    blueprint = compose_builtin("restaurant_orders", "demo_pizza")
    return VoiceDeps(blueprint=blueprint, asr=WhisperAsr(), tts=PiperTts(), store=store,
                     tools=OrderTools(store, blueprint, "ten_q", "dev_q"), tenant_id="ten_q",
                     device_id="dev_q", staff_uri=staff_uri(staff) if staff else None)


def apply(store: LocalStore, version: int, policy: TenantPolicy | None) -> None:
    """Put a desired version in force the way voxeron-sync does (same table, same call)."""
    desired = DesiredState(tenant_id="ten_q", device_id="dev_q", version=version, issued_at=NOW,
                           policy=policy)
    with store.transaction() as conn:
        assert desired_state.apply(conn, desired, DesiredComposer().blueprint_hash(desired),
                                   NOW) == "applied"


async def refused(agent: SipAgent, status: int) -> SipResponse:
    phone = Phone(agent.port)
    try:
        phone.send(phone.invite())
        response = await phone.expect(status)
        phone.send(phone.request("ACK", to_tag=response.to_addr.tag))  # same branch as the INVITE
        return response
    finally:
        phone.close()


def run_box(cfg: VoiceConfig, deps: VoiceDeps, scenario: object) -> None:
    async def main() -> None:
        agent = sip_agent(cfg, deps, idle, DesiredInForce(DesiredComposer()))
        await agent.start()
        try:
            await scenario(agent)  # type: ignore[operator]
        finally:
            await agent.stop()
            deps.store.close()

    with log_context(tenant_id="ten_q", device_id="dev_q"):  # run_voice binds them so
        asyncio.run(asyncio.wait_for(main(), 30))


def test_second_call_in_a_minute_is_busy_until_a_new_desired_raises_the_quota(
    tmp_path: Path, agent_log: Lines,
) -> None:
    deps = box_deps(tmp_path)
    cfg = VoiceConfig(sip_host="127.0.0.1", sip_port=0, rtp_host="127.0.0.1", max_calls=4)
    apply(deps.store, 1, TenantPolicy(calls_per_min=1))

    async def scenario(agent: SipAgent) -> None:
        first, media, _ = await answered_call(agent.port)
        busy = await refused(agent, 486)
        assert agent.active_calls == 1  # the refused call set nothing up
        over = [x for x in agent_log.lines if x.get("reason") == "calls_per_min"]
        assert len(over) == 1 and over[0]["calls_per_min"] == 1
        assert over[0]["sip_call_id"] == busy.call_id
        assert over[0]["tenant_id"] == "ten_q" and over[0]["device_id"] == "dev_q"
        assert str(over[0]["call_id"]).startswith("call_")
        def refusals() -> list[dict[str, object]]:
            return [x for x in agent_log.lines if x["msg"] == "call refused"]

        # The refusal is logged once the 486 has gone out: the phone may read it first.
        assert await eventually(lambda: bool(refusals()), timeout=5)
        assert [(x["status"], x["call_id"]) for x in refusals()] == [(486, over[0]["call_id"])]
        apply(deps.store, 2, TenantPolicy(calls_per_min=2))
        second, media2, ok = await answered_call(agent.port)
        assert ok.status == 200 and agent.active_calls == 2
        await refused(agent, 486)  # two answered in this minute: the raised quota is used up
        for phone, rtp in ((first, media), (second, media2)):
            rtp.close()
            phone.close()

    run_box(cfg, deps, scenario)


def test_zero_sends_every_call_to_the_staff_line_and_no_policy_is_unlimited(
    tmp_path: Path,
) -> None:
    deps = box_deps(tmp_path, STAFF)
    cfg = VoiceConfig(sip_host="127.0.0.1", sip_port=0, rtp_host="127.0.0.1", max_calls=4,
                      staff_sip_uri=STAFF, overflow_to_staff=True)
    apply(deps.store, 1, TenantPolicy(calls_per_min=0, transcripts_days=30))

    async def scenario(agent: SipAgent) -> None:
        moved = await refused(agent, 302)
        assert moved.headers.get("Contact") == f"<{STAFF}>"
        assert agent.active_calls == 0
        apply(deps.store, 2, None)
        calls = [await answered_call(agent.port) for _ in range(3)]
        assert agent.active_calls == 3
        for phone, rtp, _ in calls:
            rtp.close()
            phone.close()

    run_box(cfg, deps, scenario)
