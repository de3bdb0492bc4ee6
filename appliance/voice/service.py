"""voxeron-voice: the data-plane process of the box (SIP user agent + speech + dialog)."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime

from appliance.config import BoxIdentity, VoiceConfig
from appliance.desired_blueprint import DesiredComposer
from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore
from appliance.store.call_sessions import CallSessions
from appliance.store.desired_state import in_force
from appliance.voice.asr_pool import AsrPool
from appliance.voice.asr_whisper import WhisperAsr
from appliance.voice.call_session import CallSession, VoiceDeps
from appliance.voice.callbacks import CallbackScheduler
from appliance.voice.desired_in_force import DesiredInForce
from appliance.voice.provider_recovery import provider_recovery
from appliance.voice.providers import Health, ProviderDescriptor, ProviderKind, ProviderRegistry
from appliance.voice.sip_access import InboundAccess
from appliance.voice.sip_agent import CallHandler, CallInfo, MediaChannel, SipAgent
from appliance.voice.sip_refer import staff_uri
from appliance.voice.sip_register import RegisterClient, RegisterSettings
from appliance.voice.sip_transaction import advertised_address
from appliance.voice.speculation import CallLoad
from appliance.voice.tts_piper import PiperTts
from appliance.voice.webrtc_peer import serve_web_calls
from blueprints.engine import compose_builtin
from sync.structured_log import bind, fields, setup_logging

log = logging.getLogger(__name__)


def build_deps(identity: BoxIdentity, cfg: VoiceConfig) -> VoiceDeps:
    blueprint = compose_builtin(cfg.sector, cfg.tenant_overlay, cfg.runtime_policy)
    store = LocalStore(identity.db_path)
    providers = ProviderRegistry()
    pool = asr_pool(cfg, providers.descriptors.values())
    pool.menu = blueprint.menu
    pool.on_restart = lambda name: providers.mark(name, Health.HEALTHY, datetime.now(UTC))
    return VoiceDeps(
        blueprint=blueprint, asr=WhisperAsr(threads=cfg.asr_threads), tts=PiperTts(), store=store,
        tools=OrderTools(store, blueprint, identity.tenant_id, identity.device_id),
        tenant_id=identity.tenant_id, device_id=identity.device_id,
        staff_uri=staff_uri(cfg.staff_sip_uri) if cfg.staff_sip_uri else None,
        transfer_timeout_s=cfg.transfer_timeout_s, callback_minutes=cfg.callback_minutes,
        callbacks=CallbackScheduler(), providers=providers, asr_pool=pool,
        sessions=CallSessions(store), routing_prefs=lambda: desired_routing(store),
        speculate=cfg.asr_speculation, preferred_asr=cfg.asr_model,
        load=CallLoad(speculate_up_to=cfg.asr_speculation_max_calls),
    )


def asr_pool(cfg: VoiceConfig, providers: Iterable[ProviderDescriptor]) -> AsrPool:
    """Workers for every out-of-process ASR provider (in-process for all with `asr_isolation`
    off); each engine starts on first use."""
    names = {p.name for p in providers if p.kind is ProviderKind.ASR and not p.in_process}
    if not cfg.asr_isolation:
        names = set()
    return AsrPool(names, threads=cfg.asr_threads, cache_dir=cfg.models_dir)


def desired_routing(store: LocalStore) -> Mapping[str, object] | None:
    """The `routing` section of the desired state in force, read at each call start."""
    with store.transaction() as conn:
        applied = in_force(conn)
    return applied.desired.routing if applied is not None else None


async def serve_voice(identity: BoxIdentity, cfg: VoiceConfig, stop: asyncio.Event) -> None:
    deps = build_deps(identity, cfg)
    await asyncio.to_thread(deps.warm)
    if deps.asr_pool is not None:  # the configured model, loaded before the first call
        await asyncio.to_thread(deps.asr_pool.get, cfg.asr_model)

    desired_now = DesiredInForce(DesiredComposer(cfg.sector, cfg.tenant_overlay, cfg.runtime_policy))

    async def on_call(call: CallInfo, media: MediaChannel) -> None:
        call_deps, answer = await asyncio.to_thread(desired_now.for_call, deps)  # desired state
        session = CallSession(call_deps, call, media)
        media.on_dtmf(session.on_dtmf)
        await (session.run() if answer else session.divert_to_staff("answer_calls_off"))

    agent = sip_agent(cfg, deps, on_call, desired_now)
    await agent.start()
    # The setup UI's browser test call: same on_call, loopback signalling (webrtc_signalling.py).
    web_calls = (await serve_web_calls(cfg.test_call.port, on_call)
                 if cfg.test_call.enabled else None)
    deps.transfer = agent.transfer
    callbacks = deps.callbacks
    if callbacks is not None:
        callbacks.start()
        callbacks.rearm(deps.tools.book.follow_ups())  # callbacks promised before a restart
    registration = register_client(cfg, agent)
    if registration is not None:
        registration.start()
    log.info("voice ready", extra=fields(sip_port=agent.port, blueprint=deps.blueprint.content_hash,
                                         allow_from=",".join(cfg.sip_allow_from),
                                         registrar=cfg.sip_registrar))
    # Providers marked dead (in-process ones above all) are probed back to health.
    recovery = provider_recovery(deps.providers, deps.asr_pool, deps.tts)
    recovering = asyncio.create_task(recovery.run(stop))
    try:
        await stop.wait()
    finally:
        if registration is not None:
            await registration.stop()  # unregister while the socket is still open
        if web_calls is not None:
            await web_calls.stop()
        await agent.stop()
        recovering.cancel()  # a probe still loading a model is not waited for
        if callbacks is not None:
            callbacks.stop()
        if deps.asr_pool is not None:
            deps.asr_pool.stop()
        if deps.sessions is not None:
            deps.sessions.close()
        deps.store.close()


def sip_agent(cfg: VoiceConfig, deps: VoiceDeps, on_call: CallHandler,
              desired_now: DesiredInForce) -> SipAgent:
    """The SIP agent as configured; it admits each new call against the tenant's
    calls-per-minute quota in the desired state in force at that INVITE."""
    return SipAgent(cfg.sip_host, cfg.sip_port, cfg.sip_users, on_call,
                    rtp_host=cfg.rtp_host, max_calls=cfg.max_calls, access=inbound_access(cfg),
                    tcp=cfg.sip_tcp, min_se=cfg.session_min_se_s, hold_timeout_s=cfg.hold_timeout_s,
                    overflow_uri=deps.staff_uri if cfg.overflow_to_staff else None,
                    calls_per_min=lambda: desired_now.calls_per_min(deps.store))


def inbound_access(cfg: VoiceConfig) -> InboundAccess:
    """Who may call: `sip_allow_from` networks, or callers that pass digest as a `sip_auth_users` entry."""
    users = {name: secret.get_secret_value() for name, secret in cfg.sip_auth_users.items()}
    return InboundAccess(cfg.sip_allow_from, users, realm=cfg.sip_auth_realm,
                         algorithm=cfg.sip_auth_algorithm)


def register_client(cfg: VoiceConfig, agent: SipAgent) -> RegisterClient | None:
    """The REGISTER client for `sip_registrar` over the agent's socket, or None when not configured."""
    registrar = cfg.registrar_address
    if registrar is None:
        return None
    contact = (advertised_address(cfg.sip_host, registrar[0]), agent.port)
    return RegisterClient(agent, RegisterSettings(
        registrar=registrar, domain=cfg.sip_register_domain or registrar[0],
        user=cfg.sip_register_user, contact=contact, auth_user=cfg.sip_register_auth_user,
        password=cfg.sip_register_password.get_secret_value(), expires_s=cfg.sip_register_expires_s))


def run_voice(identity: BoxIdentity, cfg: VoiceConfig) -> None:
    """Process entry: serve calls until SIGTERM or SIGINT."""
    setup_logging("voice")
    bind(tenant_id=identity.tenant_id, device_id=identity.device_id)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await serve_voice(identity, cfg, stop)

    asyncio.run(main())
