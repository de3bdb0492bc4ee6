"""What the cloud's desired state means for the next call: which blueprint and menu it
runs with, and whether the box takes it at all (`answer_calls` false: hand it to staff).

Read at each call start from the store, so a version applied by voxeron-sync takes effect
with the next call and never in the middle of one. Composition is cached per version.
"""

from __future__ import annotations

import dataclasses
import logging

from appliance.desired_blueprint import DesiredComposer, DesiredInvalid
from appliance.dialog.order_tools import OrderTools
from appliance.store.desired_state import AppliedDesired, in_force
from appliance.voice.call_session import VoiceDeps
from sync.structured_log import fields

log = logging.getLogger(__name__)


class DesiredInForce:
    """Per-call view of the applied desired state; `for_call` returns (deps, answer)."""

    def __init__(self, composer: DesiredComposer) -> None:
        self._composer = composer
        self._cached: tuple[int, VoiceDeps, VoiceDeps] | None = None  # (version, base, per-call)

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
