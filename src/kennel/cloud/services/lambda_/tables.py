"""Lambda state in the store. Times are epoch seconds; configurations and documents are JSON text.

Deployment packages live beside the store (``<state>/lambda/code/<sha256>.zip`` and its extraction),
addressed by content so versions sharing code share the files. A version's configuration holds its
environment variables, so it is ``Sealed`` (encrypted at rest, opened on read).
"""

from __future__ import annotations

from sqlalchemy import Column, Float, ForeignKey, Integer, LargeBinary, String, Table, Text

from kennel.cloud.sealing import Sealed
from kennel.cloud.statestore import metadata


def _function() -> Column:
    return Column(
        "function", String, ForeignKey("lambda_functions.name", ondelete="CASCADE"), primary_key=True
    )


functions = Table(
    "lambda_functions",
    metadata,
    Column("name", String, primary_key=True),
    Column("created", Float, nullable=False),
    Column("reserved", Integer, nullable=True),  # reserved concurrency; NULL = none
    Column("next_version", Integer, nullable=False, default=1),
    Column("tags", Text, nullable=False, default="{}"),
)

versions = Table(
    "lambda_versions",
    metadata,
    _function(),
    Column("version", String, primary_key=True),  # "$LATEST" or "1", "2", …
    Column("config", Sealed("lambda_versions.config"), nullable=False),
    Column("code_sha", String, nullable=False),  # hex SHA-256 of the zip
    Column("code_size", Integer, nullable=False),
    Column("modified", Float, nullable=False),
    Column("revision", String, nullable=False),
)

aliases = Table(
    "lambda_aliases",
    metadata,
    _function(),
    Column("name", String, primary_key=True),
    Column("version", String, nullable=False),
    Column("description", String, nullable=False, default=""),
    Column("routing", Text, nullable=True),  # {"AdditionalVersionWeights": {...}} as JSON
    Column("revision", String, nullable=False),
)

provisioned = Table(
    "lambda_provisioned",
    metadata,
    _function(),
    Column("qualifier", String, primary_key=True),
    Column("requested", Integer, nullable=False),
    Column("modified", Float, nullable=False),
)

policies = Table(
    "lambda_policies",
    metadata,
    _function(),
    Column("qualifier", String, primary_key=True),  # "" for the unqualified function
    Column("document", Text, nullable=False),
    Column("revision", String, nullable=False),
)

event_configs = Table(
    "lambda_event_configs",
    metadata,
    _function(),
    Column("qualifier", String, primary_key=True),
    Column("max_retries", Integer, nullable=True),
    Column("max_age", Integer, nullable=True),
    Column("modified", Float, nullable=False),
)

# Asynchronous invocations accepted and not yet finished (kennel.runtime.functions.events.Journal).
# No foreign key: an event for a deleted function is dropped when it runs (Result.GONE), as on AWS.
async_events = Table(
    "lambda_async_events",
    metadata,
    Column("request_id", String, primary_key=True),
    Column("function", String, nullable=False),
    Column("qualifier", String, nullable=True),
    Column("payload", LargeBinary, nullable=False),
    Column("enqueued", Float, nullable=False),  # epoch seconds
    Column("due", Float, nullable=False),  # epoch seconds of the next attempt
    Column("attempts", Integer, nullable=False),
    Column("requeues", Integer, nullable=False),
)
