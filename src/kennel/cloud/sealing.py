"""Secrets at rest: AES-256-GCM sealing of store columns with a key only the gateway's user can read.

The key is 32 random bytes in ``<state>/secrets.key`` (0600, inside the 0700 state directory, which
sandboxed user code cannot see). It is read once when the store opens and kept in memory; it is never
put in an environment variable. Each sealed value carries its column's name as associated data, so a
ciphertext copied into another column (a session token into a secret, say) does not open there.

A sealed value is text: ``SEALED_PREFIX`` + urlsafe base64 of (12-byte nonce ‖ ciphertext ‖ tag).
Columns declare ``Sealed("<table>.<column>")`` as their type and SQLAlchemy seals on write and opens
on read, so providers keep reading and writing plain strings.
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

KEY_FILE = "secrets.key"
KEY_BYTES = 32
NONCE_BYTES = 12
SEALED_PREFIX = "kennel-sealed:v1:"


class SealingError(RuntimeError):
    """The key is missing, unreadable or unsafe, or a sealed value does not open with it."""


class Sealer:
    def __init__(self, key: bytes) -> None:
        if len(key) != KEY_BYTES:
            raise SealingError(f"a sealing key has {KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(key)

    def seal(self, plaintext: str, scope: str) -> str:
        nonce = os.urandom(NONCE_BYTES)  # random 96-bit nonces: safe far beyond this store's writes
        sealed = self._aead.encrypt(nonce, plaintext.encode(), scope.encode())
        return SEALED_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode()

    def open(self, value: str, scope: str) -> str:
        if not is_sealed(value):
            raise SealingError(f"{scope} holds a value that is not sealed")
        try:
            raw = base64.urlsafe_b64decode(value[len(SEALED_PREFIX) :])
            return self._aead.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], scope.encode()).decode()
        except (InvalidTag, ValueError) as exc:
            raise SealingError(
                f"{scope} does not open with this state directory's {KEY_FILE} (a different key, "
                "or the value was altered)"
            ) from exc


def is_sealed(value: str | None) -> bool:
    return isinstance(value, str) and value.startswith(SEALED_PREFIX)


def load_or_create_key(path: Path) -> bytes:
    """The key at ``path``; created (0600, atomically) when absent. Refuses a key others could read."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out:
            out.write(secrets.token_bytes(KEY_BYTES))
            out.flush()
            os.fsync(out.fileno())
        # link() fails if another process created the key first: then both use that one.
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(descriptor, "rb") as source:
        info = os.fstat(source.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise SealingError(f"{path} is not a regular file")
        if info.st_mode & 0o077:
            raise SealingError(
                f"{path} is readable by other users (mode {stat.S_IMODE(info.st_mode):o}); "
                f"it must be 0600: chmod 600 {path}"
            )
        if info.st_uid != os.getuid():
            raise SealingError(f"{path} belongs to another user")
        key = source.read(KEY_BYTES + 1)
    if len(key) != KEY_BYTES:
        raise SealingError(f"{path} holds {len(key)} bytes, not a {KEY_BYTES}-byte key")
    return key


def attach(dialect: Dialect, sealer: Sealer) -> None:
    """Give an engine's dialect its sealer: ``Sealed`` columns find it there (one key per store)."""
    dialect.kennel_sealer = sealer  # type: ignore[attr-defined]


def _sealer(dialect: Dialect, scope: str) -> Sealer:
    sealer = getattr(dialect, "kennel_sealer", None)
    if sealer is None:
        raise SealingError(f"{scope} is sealed but this store was opened without its key")
    return sealer


class Sealed(TypeDecorator):
    """A text column stored sealed; ``scope`` ("<table>.<column>") is the associated data."""

    impl = Text
    cache_ok = True

    def __init__(self, scope: str) -> None:
        super().__init__()
        self.scope = scope

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _sealer(dialect, self.scope).seal(value, self.scope)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return _sealer(dialect, self.scope).open(value, self.scope)


# Names that carry credentials by convention. The gateway needs none of them (it signs with keys from
# its store and reads its sealing key from a file), so none reaches it or the processes it starts.
_SECRET_MARKERS = ("SECRET", "TOKEN", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE", "API_KEY", "ACCESS_KEY")


def is_secret_name(name: str) -> bool:
    upper = name.upper()
    return upper.startswith("AWS_") or any(marker in upper for marker in _SECRET_MARKERS)


def without_secrets(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` less every variable that may hold a credential (all ``AWS_*`` ones included)."""
    return {name: value for name, value in env.items() if not is_secret_name(name)}
