"""Redis as a hot cache in front of the database; the only module that imports redis.

What it holds is always rebuildable from the database: desired-state documents, routing
decisions and rate-limit counters, each with a TTL. Redis is an accelerator, never a
dependency: on any Redis error the cache switches itself off (logged once), every call
falls through to the database (or, for limits, to this process's own counters), and
Redis is tried again after a back-off that doubles up to `max_backoff_s`. The first call
that succeeds switches it back on (logged once). Values are JSON; pydantic models go in
and come out typed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import redis
from pydantic import BaseModel
from redis.backoff import NoBackoff
from redis.retry import Retry

from cloud.control.rate_limit import InProcessLimiter
from sync.contracts.messages import DesiredState
from sync.structured_log import fields

log = logging.getLogger(__name__)

M = TypeVar("M", bound=BaseModel)
R = TypeVar("R")

PREFIX = "vx:"
DESIRED_TTL_S = 30
ROUTING_TTL_S = 60
IN_FLIGHT_TTL_S = 60
"""A replica that dies mid-request cannot `leave`; its in-flight counts expire instead."""


class HotCache:
    """Get/set with TTLs over one Redis, switching itself off while Redis is unreachable."""

    def __init__(self, url: str | None, *, backoff_s: float = 1.0, max_backoff_s: float = 30.0,
                 timeout_s: float = 0.25, clock: Callable[[], float] = time.monotonic) -> None:
        self._client = None if url is None else redis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self._clock = clock
        self._base_backoff = backoff_s
        self._max_backoff = max_backoff_s
        self._backoff = backoff_s
        self._off_until: float | None = None
        self._lock = threading.Lock()
        self.errors = 0
        """Redis errors seen since start (each one served from the fallback)."""

    @property
    def configured(self) -> bool:
        return self._client is not None

    @property
    def active(self) -> bool:
        """Configured and not switched off by a recent error."""
        with self._lock:
            return self._client is not None and self._off_until is None

    def _usable(self) -> bool:
        if self._client is None:
            return False
        with self._lock:
            return self._off_until is None or self._clock() >= self._off_until

    def _failed(self, exc: Exception) -> None:
        with self._lock:
            self.errors += 1
            first = self._off_until is None
            if not first:  # a retry after the back-off failed too: wait longer next time
                self._backoff = min(self._max_backoff, self._backoff * 2)
            self._off_until = self._clock() + self._backoff
        if first:
            log.warning("redis unavailable, hot cache off; serving from the database",
                        extra=fields(error=f"{type(exc).__name__}: {exc}",
                                     retry_in_s=self._backoff))

    def _succeeded(self) -> None:
        with self._lock:
            was_off = self._off_until is not None
            self._off_until, self._backoff = None, self._base_backoff
        if was_off:
            log.info("redis reachable again, hot cache on")

    def call(self, op: Callable[[redis.Redis], R]) -> tuple[bool, R | None]:
        """(True, result) from Redis, or (False, None) when off or on any Redis error."""
        client = self._client
        if client is None or not self._usable():
            return False, None
        try:
            result = op(client)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc)
            return False, None
        self._succeeded()
        return True, result

    def get_model(self, key: str, model: type[M]) -> M | None:
        ok, raw = self.call(lambda r: r.get(PREFIX + key))
        if not ok or raw is None:
            return None
        try:
            return model.model_validate_json(raw)  # type: ignore[arg-type]
        except ValueError:  # a stale shape after an upgrade: a miss, never an error
            return None

    def set_model(self, key: str, value: BaseModel, ttl_s: float) -> None:
        self.call(lambda r: r.set(PREFIX + key, value.model_dump_json(),
                                  px=max(1, int(ttl_s * 1000))))

    def delete(self, *keys: str) -> None:
        self.call(lambda r: r.delete(*(PREFIX + k for k in keys)))

    def get_or_load(self, key: str, model: type[M], ttl_s: float,
                    load: Callable[[], M | None]) -> M | None:
        """The cached value, else `load()` from the database (cached when not None)."""
        hit = self.get_model(key, model)
        if hit is not None:
            return hit
        value = load()
        if value is not None:
            self.set_model(key, value, ttl_s)
        return value

    # The three kinds of entry the API keeps here.

    def desired(self, tenant_id: str, device_id: str,
                load: Callable[[], DesiredState | None]) -> DesiredState | None:
        """A device's newest desired-state document. `CloudDb.add_desired` forgets it after
        every new version, so callers never have to."""
        return self.get_or_load(f"desired:{tenant_id}:{device_id}", DesiredState,
                                DESIRED_TTL_S, load)

    def forget_desired(self, tenant_id: str, device_id: str) -> None:
        self.delete(f"desired:{tenant_id}:{device_id}")

    def routing(self, tenant_id: str, key: str, model: type[M], load: Callable[[], M | None],
                ttl_s: float = ROUTING_TTL_S) -> M | None:
        """A routing decision of a tenant (e.g. which device answers a number)."""
        return self.get_or_load(f"routing:{tenant_id}:{key}", model, ttl_s, load)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


_TAKE = """
local v = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local rate, burst, now = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local tokens, at = tonumber(v[1]), tonumber(v[2])
if tokens == nil or at == nil then tokens = burst; at = now end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
if now > at then at = now end
local wait = -1
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(at))
redis.call('EXPIRE', KEYS[1], math.ceil(burst / rate) + 60)
return tostring(wait)
"""

_ENTER = """
local n = tonumber(redis.call('GET', KEYS[1]) or '0')
if n >= tonumber(ARGV[1]) then return 0 end
redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

_LEAVE = """
local n = redis.call('DECR', KEYS[1])
if n <= 0 then redis.call('DEL', KEYS[1]) end
return n
"""


class RedisLimiter:
    """rate_limit.RateLimiter on Redis, so all replicas share one budget per tenant.

    Each operation is one Lua script (atomic on the server). While Redis is off the
    limits fall back to this process's own counters: looser across replicas for a while,
    but requests keep being served and limited.
    """

    def __init__(self, cache: HotCache) -> None:
        self._cache = cache
        self._fallback = InProcessLimiter()
        self._fallback_entered: dict[str, int] = {}
        self._lock = threading.Lock()

    def take(self, key: str, rate: float, burst: float, now: float) -> float | None:
        ok, raw = self._cache.call(lambda r: r.eval(_TAKE, 1, f"{PREFIX}rl:{key}", rate,
                                                      burst, now))
        if not ok:
            return self._fallback.take(key, rate, burst, now)
        wait = float(raw.decode() if isinstance(raw, bytes) else str(raw))
        return None if wait < 0 else wait

    def enter(self, key: str, limit: int) -> bool:
        ok, raw = self._cache.call(lambda r: r.eval(_ENTER, 1, f"{PREFIX}rl:{key}", limit,
                                                      IN_FLIGHT_TTL_S))
        if ok:
            return bool(raw)
        entered = self._fallback.enter(key, limit)
        if entered:
            with self._lock:
                self._fallback_entered[key] = self._fallback_entered.get(key, 0) + 1
        return entered

    def leave(self, key: str) -> None:
        with self._lock:  # leave where this process entered, so neither count drifts
            local = self._fallback_entered.get(key, 0)
            if local:
                self._fallback_entered[key] = local - 1
        if local:
            self._fallback.leave(key)
        else:
            self._cache.call(lambda r: r.eval(_LEAVE, 1, f"{PREFIX}rl:{key}"))


def describe(cache: HotCache) -> dict[str, Any]:
    """For /healthz-style reporting: configured, active, errors so far."""
    return {"configured": cache.configured, "active": cache.active, "errors": cache.errors}
