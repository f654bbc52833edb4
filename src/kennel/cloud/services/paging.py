"""One paginator for List* operations: opaque tokens that carry the last item's sort key.

Offsets break when rows are inserted between two pages (an item is seen twice or skipped); a token
that names the last key returned resumes after that key whatever was added since.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kennel.cloud.errors import ValidationException

T = TypeVar("T")


def encode_token(key: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(key), separators=(",", ":")).encode()).decode()


def _invalid(token: str) -> ValidationException:
    return ValidationException(f"Invalid pagination token {token[:100]!r}: pass NextToken as returned.")


def decode_token(token: str) -> list:
    try:
        key = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
    except (ValueError, UnicodeError):
        raise _invalid(token) from None
    if not isinstance(key, list):
        raise _invalid(token)
    return key


def paginate(
    items: Sequence[T],
    key: Callable[[T], Sequence[Any]],
    *,
    limit: int,
    token: str | None = None,
    descending: bool = False,
) -> tuple[list[T], str | None]:
    """A page of ``items`` ordered by ``key`` (which must be unique, e.g. (sort value, name)), and the
    token for the next page (None at the end)."""
    ordered = sorted(items, key=lambda item: list(key(item)), reverse=descending)
    if token:
        after = decode_token(token)
        try:
            if descending:
                ordered = [item for item in ordered if list(key(item)) < after]
            else:
                ordered = [item for item in ordered if list(key(item)) > after]
        except TypeError:
            raise _invalid(token) from None
    page = ordered[:limit]
    more = len(ordered) > limit
    return page, (encode_token(key(page[-1])) if more and page else None)


def _identity(item: Any) -> str:
    """A row's identity for resuming after it: a digest of its values (rows and dicts alike)."""
    values = (
        tuple(item.values()) if isinstance(item, dict) else tuple(item) if not isinstance(item, str) else item
    )
    return hashlib.sha256(repr(values).encode()).hexdigest()[:16]


def page_after(
    items: Sequence[T], limit: int, token: str | None, *, invalid: Callable[[], Exception]
) -> tuple[list[T], str | None]:
    """A page of ``items`` (already in the operation's order) and the token for the next one.

    The token names the last item returned (by a digest of its values) and its position; the next
    page starts after wherever that item is now, so rows inserted before it do not repeat or push
    others out of sight. If it is gone, the position is used. ``invalid`` builds the service's error
    for a token it did not issue."""
    start = 0
    if token:
        try:
            state = json.loads(base64.urlsafe_b64decode(token.encode()).decode())
            after, at = state["after"], int(state["at"])
        except (ValueError, UnicodeError, KeyError, TypeError):
            raise invalid() from None
        if at < 0:
            raise invalid()
        found = next((i for i, item in enumerate(items) if _identity(item) == after), None)
        start = found + 1 if found is not None else at
    chunk = list(items[start : start + limit])
    if start + limit >= len(items) or not chunk:
        return chunk, None
    marker = {"after": _identity(chunk[-1]), "at": start + len(chunk)}
    return chunk, base64.urlsafe_b64encode(json.dumps(marker, separators=(",", ":")).encode()).decode()
