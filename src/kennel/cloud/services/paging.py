"""The one paginator for every List* and Describe* operation: opaque tokens that name the last key
returned.

An offset breaks when rows are inserted or deleted between two pages (an item is seen twice, or one is
skipped); a token that carries the last item's sort key resumes after that key whatever changed since.
The key must be unique within the listing (a sort value plus a name or id as tie-break) and made of
JSON scalars (str, int, float, bool), since it travels inside the token.

Each service builds one ``Paginator`` with its own error for a token it did not issue (CloudWatch's
InvalidNextToken, IAM's InvalidInput, ...). It pages in two ways that share the token format:

* ``page`` takes the whole listing in memory, orders it by the key and returns one page.
* When the query is filtered and ordered in SQL, ``decode_token`` gives the key to compare in the
  WHERE clause (``key > after``, or ``<`` when descending), the query reads ``limit + 1`` rows in key
  order, and ``cut`` returns the page and the next token. ``encode_token`` is there for cursors that are
  not the last row returned (a scan that stops after examining, not returning, a row).

A token may also be bound to a ``scope`` (a fingerprint of the request, an owning resource's id): a
token presented with another scope is refused, which is how a token from one request cannot steer
another.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
Scalar = str | int | float | bool
Key = tuple[Scalar, ...]


def _kind(value: Any) -> str | None:
    """Which values may be compared with ``value``: ints and floats together, bool and str alone."""
    if isinstance(value, bool):  # before int: bool is an int subclass, but True > 0.5 is no key order
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "str"
    return None


_KIND_OF_TYPE: dict[type, str] = {bool: "bool", int: "number", float: "number", str: "str"}


@dataclass(frozen=True)
class Paginator:
    """Pages with tokens naming the last key returned; ``invalid`` builds the service's error for a
    token it did not issue (it is handed that token, to quote it)."""

    invalid: Callable[[str], Exception]

    # ----- the token -----------------------------------------------------------------------------------
    def encode_token(self, key: Sequence[Scalar], scope: str | None = None) -> str:
        body: dict[str, Any] = {"after": list(key)}
        if scope is not None:
            body["scope"] = scope
        raw = json.dumps(body, separators=(",", ":")).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")  # padding adds nothing to an opaque token

    def decode_token(
        self, token: str | None, *, like: Sequence[type], scope: str | None = None
    ) -> Key | None:
        """The key a token resumes after (None when there is no token), checked to have the arity and
        types ``like`` names, so a forged one fails here rather than in a SQL comparison."""
        if not token:
            return None
        key = self._read(token, scope)
        if tuple(_kind(v) for v in key) != tuple(_KIND_OF_TYPE.get(t) for t in like):
            raise self.invalid(token)
        return key

    def _read(self, token: str, scope: str | None) -> Key:
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
            body = json.loads(raw.decode())
        except (binascii.Error, ValueError, UnicodeError, RecursionError):  # RecursionError: deep nesting
            raise self.invalid(token) from None
        after = body.get("after") if isinstance(body, dict) else None
        if not isinstance(after, list) or not after or any(_kind(v) is None for v in after):
            raise self.invalid(token)
        if body.get("scope") != scope:
            raise self.invalid(token)
        return tuple(after)

    # ----- pages ---------------------------------------------------------------------------------------
    def cut(
        self,
        rows: Sequence[T],
        limit: int,
        key: Callable[[T], Sequence[Scalar]],
        scope: str | None = None,
    ) -> tuple[list[T], str | None]:
        """The first ``limit`` of ``rows`` (read in key order, after the cursor, up to ``limit + 1`` of
        them) and the token for the next page, None when nothing follows."""
        page = list(rows[:limit])
        more = len(rows) > limit and page
        return page, (self.encode_token(key(page[-1]), scope) if more else None)

    def page(
        self,
        items: Sequence[T],
        key: Callable[[T], Sequence[Scalar]],
        *,
        limit: int,
        token: str | None,
        descending: bool = False,
        scope: str | None = None,
    ) -> tuple[list[T], str | None]:
        """One page of ``items`` in ``key`` order (reversed when ``descending``), and the next token."""
        keyed = sorted(
            ((tuple(key(item)), item) for item in items), key=lambda pair: pair[0], reverse=descending
        )
        if token:
            after = self._read(token, scope)
            shape = tuple(_kind(v) for v in after)
            if any(tuple(_kind(v) for v in k) != shape for k, _ in keyed):
                raise self.invalid(token)  # a key of another listing: comparing it would mean nothing
            keyed = [(k, item) for k, item in keyed if (k < after if descending else k > after)]
        return self.cut([item for _, item in keyed], limit, key, scope)
