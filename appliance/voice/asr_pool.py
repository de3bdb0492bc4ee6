"""The voice service's ASR engines by provider name, loaded once and kept for every call.

Out-of-process engines run in worker processes (asr_process.py) that the pool replaces when
one dies; in-process ones run behind SerialAsr. Loading happens outside the pool's lock and
once per name, so a preload (call_routing.py) and a call that needs the same engine share one
load, and a recovery probe (provider_recovery.py) swaps a working engine in for a dead one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path

import numpy as np

from appliance.voice.asr_process import AsrWorker, SerialAsr, engine
from appliance.voice.providers import AsrProvider, ProviderDied, ProviderError, ProviderUnavailable
from blueprints.menu import Menu
from sync.structured_log import fields

log = logging.getLogger(__name__)

PROBE_AUDIO = np.zeros(4000, dtype=np.int16)  # 0.5 s of silence: a decode, not a transcript


class AsrPool:
    """The voice service's ASR engines by provider name: workers for out-of-process engines,
    plain objects for in-process ones. A worker found dead is reported (ProviderDied, so the
    call fails over) and replaced in the background for the calls that come after.

    Engines load outside the pool's lock, one load per name at a time: a caller of `get`
    waits for a load already under way (a preload) instead of starting a second one, and
    the other engines stay available meanwhile."""

    def __init__(self, out_of_process: set[str], threads: int = 2, cache_dir: Path | None = None,
                 menu: Menu | None = None, on_restart: Callable[[str], None] | None = None) -> None:
        self.out_of_process, self.threads, self.cache_dir = out_of_process, threads, cache_dir
        self.menu = menu  # in-process pocketsphinx builds its language model from it
        self._engines: dict[str, AsrProvider] = {}
        self._loading: dict[str, Future[AsrProvider]] = {}
        self._restarting: set[str] = set()
        self._lock = threading.Lock()
        self._stopped = False
        self.on_restart = on_restart

    def get(self, name: str) -> AsrProvider:
        """A loaded engine for `name`, started on first use; ProviderDied while it is dead."""
        with self._lock:
            if name in self._restarting:
                raise ProviderDied(name, "worker restarting")
            current = self._engines.get(name)
            if isinstance(current, AsrWorker) and not current.alive:
                note = current.exit_note()
                current.stop()
                del self._engines[name]
                self._restarting.add(name)
                threading.Thread(target=self._restart, args=(name,), daemon=True,
                                 name=f"asr-restart-{name}").start()
                raise ProviderDied(name, f"worker gone ({note})")
            if current is not None:
                return current
            pending = self._loading.get(name)
            owner = pending is None
            if pending is None:
                pending = self._loading[name] = Future()
        if owner:
            self._load(name, pending, "on demand")
        return pending.result()

    def preload(self, name: str) -> bool:
        """Load `name` in a background thread unless it is loaded, loading or restarting;
        True when a load was started. A call's routing asks for its second recogniser at
        call start (call_routing.py), so a mid-call failover costs a decode, not a load."""
        with self._lock:
            if (self._stopped or name in self._engines or name in self._loading
                    or name in self._restarting):
                return False
            pending: Future[AsrProvider] = Future()
            self._loading[name] = pending
        threading.Thread(target=self._load, args=(name, pending, "preload"), daemon=True,
                         name=f"asr-preload-{name}").start()
        return True

    def _load(self, name: str, pending: Future[AsrProvider], reason: str) -> None:
        """Load a fresh engine for `name` and settle `pending` with it or with its error."""
        started = time.monotonic()
        try:
            fresh = self._new(name)
            fresh.load()
        except Exception as err:
            failure = err if isinstance(err, ProviderError) else ProviderUnavailable(
                name, f"{type(err).__name__}: {err}")
            with self._lock:
                self._loading.pop(name, None)
            log.warning("asr engine did not load", extra=fields(
                provider=name, reason=reason, error=str(failure)))
            pending.set_exception(failure)
            return
        with self._lock:
            self._loading.pop(name, None)
            stopped = self._stopped
            if not stopped:
                self._engines[name] = fresh
        if stopped:  # the service stopped while this loaded: leave no orphan worker behind
            _stop(fresh)
            pending.set_exception(ProviderDied(name, "pool stopped"))
            return
        log.info("asr engine loaded", extra=fields(
            provider=name, reason=reason, load_ms=round((time.monotonic() - started) * 1000)))
        pending.set_result(fresh)

    def _new(self, name: str) -> AsrProvider:
        if name in self.out_of_process:
            return AsrWorker(name, self.threads, self.cache_dir)
        return SerialAsr(name, engine(name, self.threads, self.cache_dir, self.menu))

    def _restart(self, name: str) -> None:
        fresh = self._new(name)
        try:
            fresh.load()
        except ProviderError as err:
            log.error("asr worker restart failed", extra=fields(provider=name, error=str(err)))
            with self._lock:
                self._restarting.discard(name)
            return
        with self._lock:
            self._engines[name] = fresh
            self._restarting.discard(name)
        log.info("asr worker restarted", extra=fields(provider=name))
        if self.on_restart is not None:
            self.on_restart(name)

    def probe(self, name: str) -> None:
        """Recovery's check of a provider marked dead (provider_recovery.py): a fresh engine
        loads and decodes half a second of silence, then replaces the pool's engine for
        `name`. Raises ProviderError when it cannot; calls asking meanwhile fail over."""
        with self._lock:
            if name in self._restarting or name in self._loading:
                raise ProviderDied(name, "being restarted or loaded already")
            self._restarting.add(name)
        fresh: AsrProvider | None = None
        try:
            fresh = self._new(name)
            fresh.load()
            fresh.transcribe(PROBE_AUDIO)
        except Exception as err:
            if fresh is not None:
                _stop(fresh)
            with self._lock:
                self._restarting.discard(name)
            if isinstance(err, ProviderError):
                raise
            raise ProviderUnavailable(name, f"{type(err).__name__}: {err}") from err
        with self._lock:
            old = self._engines.get(name)
            self._restarting.discard(name)
            if not self._stopped:
                self._engines[name] = fresh
        if old is not None:
            _stop(old)
        if self._stopped:
            _stop(fresh)

    def worker(self, name: str) -> AsrWorker | None:
        found = self._engines.get(name)
        return found if isinstance(found, AsrWorker) else None

    def stop(self) -> None:
        with self._lock:
            self._stopped = True
            for e in self._engines.values():
                _stop(e)
            self._engines.clear()


def _stop(engine_: AsrProvider) -> None:
    if isinstance(engine_, AsrWorker):
        engine_.stop()
