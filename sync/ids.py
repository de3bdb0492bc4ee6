"""Canonical identifiers: minted once, time-ordered, prefixed by kind.

A ULID-style body (48-bit millisecond time + 80 random bits, Crockford base32) sorts by
creation time, so outbox order and log order agree, and the prefix tells a reader at a
glance which plane an id belongs to.
"""

from __future__ import annotations

import os
import time
from typing import Literal

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"

IdKind = Literal["ten", "dev", "call", "ses", "ord", "act", "evt", "job", "cmd"]
ID_KINDS: tuple[str, ...] = ("ten", "dev", "call", "ses", "ord", "act", "evt", "job", "cmd")


def _encode(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(kind: IdKind, now_ms: int | None = None) -> str:
    """Mint a new id of `kind`, e.g. ``ord_01JD3...``; `now_ms` is for deterministic tests."""
    if kind not in ID_KINDS:
        raise ValueError(f"unknown id kind {kind!r}")
    ms = int(time.time() * 1000) if now_ms is None else now_ms
    rand = int.from_bytes(os.urandom(10), "big")
    return f"{kind}_{_encode(ms, 10)}{_encode(rand, 16)}"


def id_kind(value: str) -> str:
    """Return the kind prefix of a canonical id, raising ValueError on a malformed one."""
    kind, sep, body = value.partition("_")
    if not sep or kind not in ID_KINDS or len(body) != 26 or any(c not in _ALPHABET for c in body):
        raise ValueError(f"not a canonical id: {value!r}")
    return kind
