"""CloudWatch Logs state in the store. Times are epoch milliseconds (int), as the Logs API speaks them.

Events carry integer group and stream ids rather than names: rows stay small, and a group deleted and
created again under the same name can never see its predecessor's events.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Index, Integer, String, Table, Text

from kennel.cloud.statestore import metadata

groups = Table(
    "logs_groups",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String, nullable=False, unique=True),
    Column("created", Integer, nullable=False),
    Column("retention_days", Integer, nullable=True),
    Column("kms_key_id", String, nullable=True),
    Column("log_group_class", String, nullable=False, default="STANDARD"),
    Column("deletion_protection", Boolean, nullable=False, default=False),
    Column("tags", Text, nullable=False, default="{}"),  # JSON object
    sqlite_autoincrement=True,  # ids are never reused, so a new group cannot inherit stray rows
)

streams = Table(
    "logs_streams",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("group_id", Integer, nullable=False),
    Column("name", String, nullable=False),
    Column("created", Integer, nullable=False),
    Column("first_event", Integer, nullable=True),
    Column("last_event", Integer, nullable=True),
    Column("last_ingestion", Integer, nullable=True),
    Column("stored_bytes", Integer, nullable=False, default=0),
    Column("uploads", Integer, nullable=False, default=0),
    Index("logs_streams_by_group", "group_id", "name", unique=True),
    sqlite_autoincrement=True,
)

events = Table(
    "logs_events",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),  # insertion order breaks timestamp ties
    Column("group_id", Integer, nullable=False),
    Column("stream_id", Integer, nullable=False),
    Column("timestamp", Integer, nullable=False),
    Column("ingested", Integer, nullable=False),
    Column("message", Text, nullable=False),
    # GetLogEvents walks one stream in time order; FilterLogEvents walks a whole group in time order.
    Index("logs_events_by_stream", "stream_id", "timestamp", "id"),
    Index("logs_events_by_group", "group_id", "timestamp", "id"),
)
