"""Mid-call ASR failover on a real call: the test SIGKILLs the Whisper worker process after
the caller's first line; the session fails over to the next provider of its routing
decision, re-decodes the caller's turn there, and the order still completes.

Real parts only: SIP/RTP on 127.0.0.1, a Piper-voiced scripted caller (voxeron.caller),
Whisper tiny.en and base in worker processes, Piper for the agent, the SQLite store.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from pathlib import Path

import numpy as np
import pytest

from appliance.dialog.order_tools import BoxTools
from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions
from appliance.voice.asr_failover import FailoverAsr
from appliance.voice.asr_pool import AsrPool
from appliance.voice.asr_process import AsrWorker
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.providers import (
    BUILTIN,
    Health,
    ProviderDied,
    ProviderRegistry,
    ProviderUnavailable,
)
from appliance.voice.sip_agent import CallInfo, MediaChannel, SipAgent
from appliance.voice.tts_piper import PiperTts
from blueprints.engine import compose_builtin
from tests.integration.sip_phone import eventually, run
from voxeron.caller import place_call

pytestmark = pytest.mark.slow

SCRIPT = ["Hi, I'd like a large pepperoni pizza please.", "No, that's all.", "Yes, that's right."]


def test_unknown_engine_is_refused_as_data_not_a_traceback() -> None:
    worker = AsrWorker("no-such-engine")
    with pytest.raises(ProviderUnavailable, match="unknown ASR engine"):
        worker.load()
    assert not worker.alive


def test_killed_worker_raises_provider_died_and_failover_redecodes(tmp_path: Path) -> None:
    tts = PiperTts()
    audio = tts.synthesize("A large pepperoni pizza, please.")
    pool = AsrPool({"whisper-tiny.en", "whisper-base"}, cache_dir=tmp_path / "models")
    try:
        first = pool.get("whisper-tiny.en")
        assert isinstance(first, AsrWorker) and first.pid is not None
        os.kill(first.pid, signal.SIGKILL)
        with pytest.raises(ProviderDied, match="EOF|exit code"):
            first.transcribe(audio)
        events = []
        asr = FailoverAsr(["whisper-tiny.en", "whisper-base"], pool.get, events.append)
        heard = asr.transcribe(audio)
        assert "pepperoni" in heard.text.lower()
        assert [(e.from_provider, e.to_provider) for e in events] == [("whisper-tiny.en",
                                                                        "whisper-base")]
        assert asyncio.run(_restarted(pool, first.pid))  # back for the calls after this one
    finally:
        pool.stop()


async def _restarted(pool: AsrPool, old_pid: int) -> bool:
    def fresh() -> bool:
        w = pool.worker("whisper-tiny.en")
        return w is not None and w.alive and w.pid != old_pid
    return await eventually(fresh, timeout=60)


def test_worker_killed_mid_call_fails_over_and_the_order_completes(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="appliance.voice")
    bp = compose_builtin("restaurant_orders", "demo_pizza")
    # A budget wide enough that base (520 ms for 3 s) stays first, so tiny is the fallback.
    bp = bp.model_copy(update={"policy": bp.policy.model_copy(update={"latency_budget_ms": 60000})})
    store = LocalStore(tmp_path / "box.sqlite3")
    tools = BoxTools(store, bp, "ten_f", "dev_f")
    sessions = CallSessions(store)
    providers = ProviderRegistry(BUILTIN)
    pool = AsrPool({"whisper-tiny.en", "whisper-base"}, cache_dir=tmp_path / "models")
    tts = PiperTts()
    deps = VoiceDeps(blueprint=bp, asr=None, tts=tts, store=store, tools=tools,  # type: ignore[arg-type]
                     tenant_id="ten_f", device_id="dev_f", providers=providers, asr_pool=pool,
                     sessions=sessions, speculate=True)
    deps.warm()
    killed: list[str] = []
    calls: list[CallSession] = []

    async def handler(call: CallInfo, media: MediaChannel) -> None:
        calls.append(CallSession(deps, call, media))
        await calls[-1].run()

    async def kill_after_first_line() -> None:
        assert await eventually(lambda: bool(calls) and any(
            t.speaker == "caller" for t in store.turns(calls[0].call.call_id)), timeout=60)
        worker = pool.worker(calls[0].asr.current)  # the engine this call is using
        assert worker is not None and worker.pid is not None
        os.kill(worker.pid, signal.SIGKILL)
        killed.append(worker.name)

    async def scenario(agent: SipAgent) -> None:
        killer = asyncio.create_task(kill_after_first_line())
        report = await place_call(f"sip:order@127.0.0.1:{agent.port}", SCRIPT, tts=tts,
                                  max_call_s=90, give_up_s=15)
        await killer
        assert report.agent_hung_up, report.hangup_reason

    try:
        run(scenario, handler, timeout=150)
    finally:
        pool.stop()
    [session] = calls
    first, second = session.routed.decision.asr[:2]  # base first here: the budget allows its latency
    assert killed == [first] and [(f.from_provider, f.to_provider) for f in session.failovers] == [
        (first, second)]
    [order] = store.orders(5)
    assert order.call_id == session.call.call_id and any(li.item_id == "pizza" for li in order.lines)
    row = sessions.get(session.call.call_id)
    assert row is not None and row.session_id == session.session_id
    assert row.routing["asr"][:2] == [first, second] == ["whisper-base", "whisper-tiny.en"]
    assert [(f["from_provider"], f["to_provider"]) for f in row.failovers] == [(first, second)]
    assert providers.health[first].failures == 1 and providers.health[first].state is Health.DEAD
    assert "exit code -9" in row.failovers[0]["error"] or "EOF" in row.failovers[0]["error"]
    assert session.routed.facts.snr_db is not None and session.routed.facts.snr_db > 15  # clean
    assert session.speculator.launches > 0  # decoded while the caller spoke, across the failover
    heard = [t.text.lower() for t in store.turns(session.call.call_id) if t.speaker == "caller"]
    assert len(heard) == 3 and "pepperoni" in heard[0] and np.all([bool(h) for h in heard])
    _assert_failover_paid_no_load(caplog.records, second)
    sessions.close()
    tools.book.close()
    store.close()


def _assert_failover_paid_no_load(records: list[logging.LogRecord], second: str) -> None:
    """The call's second recogniser was preloaded at call start (CallRouting asks the pool),
    so the voice log shows its one load before the failover, and none after it: the
    failover turn's asr_ms is a decode, not a model load."""
    facts = [(r.getMessage(), getattr(r, "fields", {})) for r in records]
    switched = next(i for i, (msg, _) in enumerate(facts) if msg == "asr failover")
    loads = [(i, f["reason"]) for i, (msg, f) in enumerate(facts)
             if msg == "asr engine loaded" and f["provider"] == second]
    assert [reason for _, reason in loads] == ["preload"] and loads[0][0] < switched
    said = [f for msg, f in facts[switched:] if msg == "caller said"]
    assert said and said[0]["asr"] == second  # the failover turn, decoded by the preloaded engine
