"""What the SageMaker operations share: ARNs, AWS's error wording, and List* filtering and paging."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

from kennel.cloud.errors import ValidationException, error_class
from kennel.cloud.services.paging import Paginator

ResourceLimitExceeded = error_class("ResourceLimitExceeded", 400)
ResourceNotFound = error_class("ResourceNotFound", 400)

# What AWS calls each resource in its "Could not find …" and "Cannot create already existing …" errors.
_WORDS = {"model": "model", "endpoint-config": "endpoint configuration", "endpoint": "endpoint"}

PAGES = Paginator(
    lambda token: ValidationException(
        f"Invalid pagination token {token[:100]!r}: pass NextToken as returned."
    )
)


def sagemaker_arn(region: str, account: str, kind: str, name: str) -> str:
    """AWS lower-cases resource names in SageMaker ARNs (the names themselves keep their case)."""
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name.lower()}"


def not_found(kind: str, arn: str) -> ValidationException:
    return ValidationException(f'Could not find {_WORDS[kind]} "{arn}".')


def already_exists(kind: str, arn: str) -> ValidationException:
    return ValidationException(f'Cannot create already existing {_WORDS[kind]} "{arn}".')


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_default)


def _default(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _epoch(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else float(value)


def list_page(
    rows: list[dict[str, Any]],
    params: dict[str, Any],
    *,
    sort_keys: dict[str, Callable[[dict[str, Any]], Any]],
    name_key: str = "name",
) -> tuple[list[dict[str, Any]], str | None]:
    """Filter (NameContains, Creation/LastModifiedTime Before/After, StatusEquals), sort (SortBy,
    SortOrder; AWS's defaults are CreationTime, Descending) and page (MaxResults, default 10)."""
    contains = (params.get("NameContains") or "").lower()
    found = []
    for row in rows:
        if contains and contains not in row[name_key].lower():
            continue
        if "CreationTimeBefore" in params and not row["created"] < _epoch(params["CreationTimeBefore"]):
            continue
        if "CreationTimeAfter" in params and not row["created"] > _epoch(params["CreationTimeAfter"]):
            continue
        if "LastModifiedTimeBefore" in params and not row["modified"] < _epoch(
            params["LastModifiedTimeBefore"]
        ):
            continue
        if "LastModifiedTimeAfter" in params and not row["modified"] > _epoch(
            params["LastModifiedTimeAfter"]
        ):
            continue
        if "StatusEquals" in params and row.get("status") != params["StatusEquals"]:
            continue
        found.append(row)
    key = sort_keys[params.get("SortBy") or "CreationTime"]
    return PAGES.page(
        found,
        lambda row: (key(row), row[name_key]),
        limit=int(params.get("MaxResults") or 10),
        token=params.get("NextToken"),
        descending=params.get("SortOrder", "Descending") == "Descending",
    )
