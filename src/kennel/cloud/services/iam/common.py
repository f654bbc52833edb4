"""Shared IAM helpers: error codes, pagination, timestamps, policy-document checks."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from kennel.cloud.errors import error_class
from kennel.cloud.policy.policy import MalformedPolicyDocument, PolicyKind, parse_policy
from kennel.cloud.services.paging import Paginator, Scalar

NoSuchEntity = error_class("NoSuchEntity", 404)
EntityAlreadyExists = error_class("EntityAlreadyExists", 409)
DeleteConflict = error_class("DeleteConflict", 409)
LimitExceeded = error_class("LimitExceeded", 409)
MalformedPolicy = error_class("MalformedPolicyDocument", 400)
InvalidInput = error_class("InvalidInput", 400)

PAGES = Paginator(lambda _marker: InvalidInput("Invalid Marker."))

MAX_POLICY_BYTES = {"managed": 6144, "role-inline": 10240, "user-inline": 2048, "trust": 2048}


def when(epoch: float | None) -> datetime | None:
    return datetime.fromtimestamp(epoch, UTC) if epoch is not None else None


def check_document(document: str, kind: PolicyKind, limit_key: str) -> str:
    """Validate a policy document as IAM does on write; returns it unchanged."""
    limit = MAX_POLICY_BYTES[limit_key]
    # IAM does not count whitespace; a document over the quota even so is refused before it is parsed.
    if len(document) - sum(map(document.count, " \t\r\n")) > limit:
        raise LimitExceeded(f"Cannot exceed quota for PolicySize: {limit}")
    try:
        parse_policy(document, kind=kind)
    except MalformedPolicyDocument as exc:
        compact = _compact(document)
        if compact is not None and len(compact) > limit:  # the quota is reported before the syntax
            raise LimitExceeded(f"Cannot exceed quota for PolicySize: {limit}") from None
        raise MalformedPolicy(str(exc)) from exc
    compact = _compact(document)
    if compact is not None and len(compact) > limit:
        raise LimitExceeded(f"Cannot exceed quota for PolicySize: {limit}")
    return document


def _compact(text: str) -> str | None:
    """The document as IAM measures it (no whitespace, escapes as json.dumps writes them)."""
    try:
        return json.dumps(json.loads(text), separators=(",", ":"))
    except (ValueError, RecursionError):
        return None


def paginate(
    items: list,
    params: dict,
    *,
    key: Callable[[Any], Sequence[Scalar]],
    descending: bool = False,
    default_max: int = 100,
) -> tuple[list, dict]:
    """IAM's Marker/MaxItems/IsTruncated pagination, in ``key`` order (unique per item)."""
    limit = int(params.get("MaxItems") or default_max)
    page, marker = PAGES.page(items, key, limit=limit, token=params.get("Marker"), descending=descending)
    extra: dict = {"IsTruncated": marker is not None}
    if marker is not None:
        extra["Marker"] = marker
    return page, extra
