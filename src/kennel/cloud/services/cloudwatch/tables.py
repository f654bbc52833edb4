"""CloudWatch metric state in the store. Times are epoch seconds (int).

``cw_metrics`` is the catalogue ListMetrics reads: one row per (namespace, name, dimension set).
``cw_buckets`` holds statistic buckets of ``resolution`` seconds starting at ``ts``. Several rows may
cover the same second (each background flush writes what arrived since the last one, and late data
for an already-flushed second is simply another row): every reader merges them, so nothing is ever
read-modify-written on the hot path.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, LargeBinary, String, Table, Text

from kennel.cloud.statestore import metadata

metrics = Table(
    "cw_metrics",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("namespace", String, nullable=False),
    Column("name", String, nullable=False),
    Column("dimensions", Text, nullable=False),  # JSON [[name, value], ...] sorted by name
    Column("last_put", Float, nullable=False),  # when data was last published (RecentlyActive)
    Index("cw_metrics_identity", "namespace", "name", "dimensions", unique=True),
)

buckets = Table(
    "cw_buckets",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("metric_id", Integer, nullable=False),
    Column("unit", String, nullable=False),
    Column("resolution", Integer, nullable=False),  # 1, then 60 / 300 / 3600 after roll-ups
    Column("ts", Integer, nullable=False),
    Column("sum", Float, nullable=False),
    Column("count", Float, nullable=False),
    Column("min", Float, nullable=False),
    Column("max", Float, nullable=False),
    Column("samples", LargeBinary, nullable=True),  # packed (value, weight) doubles; NULL: unknown
    Index("cw_buckets_by_metric", "metric_id", "ts"),
    Index("cw_buckets_by_age", "resolution", "ts"),
)
