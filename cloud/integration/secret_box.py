"""Integration secrets sealed at rest: the one module that imports `cryptography.fernet`.

A sealed value is `fernet:v1:<Fernet token>`, so a database dump holds no usable POS token
or webhook signing secret without the keys, which live outside the database (the
VOXERON_CLOUD_SECRET_KEYS variable, or a 0600 key file next to the database). The key
list is newest first: new values are sealed under the first key, any key opens a value
(MultiFernet), and `reseal` moves a value onto the first key, which is what a rotation
does before the old key is dropped. A value without the prefix is a clear legacy value
from before sealing: it is read as is and sealed by the next rotation.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from cloud.config import CloudConfig, secret_key_problem
from sync.structured_log import fields

log = logging.getLogger(__name__)

SEALED_PREFIX = "fernet:v1:"
KEYS_VARIABLE = "VOXERON_CLOUD_SECRET_KEYS"


class SecretKeyError(ValueError):
    """The configured keys are unusable (malformed, or none); the message names the source."""


class SecretUndecryptable(Exception):
    """A sealed value that no configured key opens (wrong, missing or rotated-away key)."""


def new_key() -> str:
    """A fresh Fernet key (url-safe base64 of 32 random bytes)."""
    return Fernet.generate_key().decode()


def key_id(key: str) -> str:
    """A short fingerprint of a key, safe to log: replicas compare these, never keys."""
    return hashlib.sha256(key.encode()).hexdigest()[:12]


def is_sealed(stored: str) -> bool:
    return stored.startswith(SEALED_PREFIX)


class SecretBox:
    """Seals and opens secrets with a key list, newest first."""

    def __init__(self, keys: Sequence[str], source: str = KEYS_VARIABLE) -> None:
        if not keys:
            raise SecretKeyError(f"{source}: no key configured")
        for n, key in enumerate(keys, 1):
            problem = secret_key_problem(key)
            if problem:
                raise SecretKeyError(f"{source}: key {n} of {len(keys)} {problem}")
        self._newest = Fernet(keys[0].encode())
        self._all = MultiFernet([Fernet(k.encode()) for k in keys])
        self.key_ids = [key_id(k) for k in keys]
        self.source = source

    @classmethod
    def from_config(cls, cfg: CloudConfig) -> SecretBox:
        """The keys of VOXERON_CLOUD_SECRET_KEYS, else of `cfg.secret_key_path` (created
        with one fresh key on first use, so a single node and the demo need no setup)."""
        if cfg.secret_keys is not None:
            box = cls(split_keys(cfg.secret_keys.get_secret_value()), KEYS_VARIABLE)
        else:
            path = cfg.secret_key_path
            box = cls(read_or_create_key_file(path), str(path))
        log.info("secret keys loaded", extra=fields(source=box.source, key_ids=box.key_ids))
        return box

    def seal(self, plain: str) -> str:
        """`plain` sealed under the newest key."""
        return SEALED_PREFIX + self._newest.encrypt(plain.encode()).decode()

    def unseal(self, stored: str) -> str:
        """The secret in `stored`; a clear legacy value is returned as it is."""
        if not is_sealed(stored):
            return stored
        try:
            return self._all.decrypt(stored.removeprefix(SEALED_PREFIX).encode()).decode()
        except (InvalidToken, UnicodeDecodeError):
            raise SecretUndecryptable(
                f"no configured key opens this secret (keys {', '.join(self.key_ids)} "
                f"from {self.source}); restore the key it was sealed with") from None

    def is_current(self, stored: str) -> bool:
        """Sealed under the newest key already (nothing for a rotation to do)."""
        if not is_sealed(stored):
            return False
        try:
            self._newest.decrypt(stored.removeprefix(SEALED_PREFIX).encode())
        except InvalidToken:
            return False
        return True

    def reseal(self, stored: str) -> str:
        """`stored` sealed under the newest key (a clear legacy value gets sealed);
        SecretUndecryptable if no key opens it."""
        return self.seal(self.unseal(stored))


def split_keys(value: str) -> list[str]:
    """A comma-separated key list (newest first), blanks dropped."""
    return [k.strip() for k in value.split(",") if k.strip()]


def read_or_create_key_file(path: Path) -> list[str]:
    """The keys in `path` (one a line, newest first, `#` comments); a missing file is
    created with one fresh key, mode 0600. The key is written to a private temporary file
    first and linked into place, so a replica starting at the same moment reads either no
    file (and links its own, which fails harmlessly) or a complete one."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write("# Voxeron integration secret keys, newest first. Back this file up:\n"
                      "# without it the sealed POS tokens and webhook secrets are lost.\n"
                      f"{new_key()}\n")
        try:
            os.link(tmp, path)
            log.warning("created a new secret key file", extra=fields(path=str(path)))
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    lines = path.read_text().splitlines()
    return [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
