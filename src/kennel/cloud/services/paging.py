"""One paginator for List* operations: opaque tokens that carry the last item's sort key.

Offsets break when rows are inserted between two pages (an item is seen twice or skipped); a token
that names the last key returned resumes after that key whatever was added since.
"""

from __future__ import annotations

import base64
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
