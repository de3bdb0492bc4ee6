"""What the cloud's desired state means for the next call: which blueprint and menu it
runs with, whether the box takes it at all (`answer_calls` false: hand it to staff), and
the tenant's calls-per-minute quota the SIP agent admits new calls against.

Read at each call start from the store, so a version applied by voxeron-sync takes effect
with the next call and never in the middle of one. Composition is cached per version.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3

from appliance.desired_blueprint import DesiredComposer, DesiredInvalid
from appliance.dialog.order_tools import OrderTools
from appliance.store import LocalStore
from appliance.store.desired_state import AppliedDesired, in_force
from appliance.voice.call_session import VoiceDeps
from sync.structured_log import fields

log = logging.getLogger(__name__)


class DesiredInForce:
    """Per-call view of the applied desired state; `for_call` returns (deps, answer)."""

    def __init__(self, composer: DesiredComposer) -> None:
        self._composer = composer
        self._cached: tuple[int, VoiceDeps, VoiceDeps] | None = None  # (version, base, per-call)
        self._calls_per_min: int | None = None  # the last quota read, kept if a read fails

    def calls_per_min(self, store: LocalStore) -> int | None:
        """The tenant's new-call quota in force (None: unlimited); read at each INVITE, so a
        desired version applied by voxeron-sync counts from the next call. A store that cannot
        be read keeps the last quota: admission must not fail because of it."""
        try:
            with store.reading() as conn:
                applied = in_force(conn)
        except sqlite3.Error as exc:
            log.error("desired state unreadable; keeping the last call quota", extra=fields(
                calls_per_min=self._calls_per_min, error=str(exc)))
            return self._calls_per_min
        policy = applied.desired.policy if applied is not None else None
        self._calls_per_min = policy.calls_per_min if policy is not None else None
        return self._calls_per_min

    def for_call(self, deps: VoiceDeps) -> tuple[VoiceDeps, bool]:
        """Deps with the blueprint in force, and False when calls must go to staff."""
        with deps.store.transaction() as conn:
            applied = in_force(conn)
        if applied is None:
            return deps, True
        return self._deps(deps, applied), applied.desired.answer_calls

    def _deps(self, deps: VoiceDeps, applied: AppliedDesired) -> VoiceDeps:
        if applied.blueprint_hash is None or applied.blueprint_hash == deps.blueprint.content_hash:
            return deps
        version = applied.desired.version
        if self._cached is not None and self._cached[0] == version and self._cached[1] is deps:
            return dataclasses.replace(self._cached[2], transfer=deps.transfer)
        try:
            blueprint = self._composer.compose(applied.desired)
        except DesiredInvalid as exc:  # sync validated it; a changed sector file may not
            log.error("desired blueprint does not compose here; keeping the configured one",
                      extra=fields(version=version, error=exc.envelope.message))
            return deps
        tools = OrderTools(deps.store, blueprint, deps.tenant_id, deps.device_id)
        per_call = dataclasses.replace(deps, blueprint=blueprint, tools=tools, prompt_cache={})
        self._cached = (version, deps, per_call)
        log.info("desired blueprint in force", extra=fields(
            version=version, blueprint_hash=blueprint.content_hash))
        return per_call
