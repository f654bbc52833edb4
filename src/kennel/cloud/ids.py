"""Identifiers shaped like AWS's: IAM unique ids, access keys, secrets, request ids."""

from __future__ import annotations

import secrets
import string
import uuid

_BASE32 = string.ascii_uppercase + "234567"
_SECRET = string.ascii_letters + string.digits + "+/"


def unique_id(prefix: str) -> str:
    """``AIDA…`` users, ``AROA…`` roles, ``ANPA…`` policies: 4-letter prefix + 17 characters."""
    return prefix + "".join(secrets.choice(_BASE32) for _ in range(17))


def access_key_id(temporary: bool = False) -> str:
    return ("ASIA" if temporary else "AKIA") + "".join(secrets.choice(_BASE32) for _ in range(16))


def secret_access_key() -> str:
    return "".join(secrets.choice(_SECRET) for _ in range(40))


def session_token() -> str:
    return "".join(secrets.choice(_SECRET) for _ in range(356))


def request_id() -> str:
    return str(uuid.uuid4())
