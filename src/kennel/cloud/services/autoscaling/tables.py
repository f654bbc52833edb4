"""Application Auto Scaling state in the store. Times are epoch seconds (float).

A scalable target is keyed by (namespace, resource id, dimension), as in AWS; policies, scheduled
actions and activities refer to it by that key. ``cooldowns`` keeps what the last policy-driven
activities leave for the next decision, so a restart does not forget a cooldown in progress.
"""

from __future__ import annotations

from sqlalchemy import Column, Float, Index, Integer, String, Table, Text

from kennel.cloud.statestore import metadata

targets = Table(
    "aas_targets",
    metadata,
    Column("namespace", String, primary_key=True),
    Column("resource_id", String, primary_key=True),
    Column("dimension", String, primary_key=True),
    Column("arn", String, nullable=False),
    Column("min_capacity", Integer, nullable=False),
    Column("max_capacity", Integer, nullable=False),
    Column("role_arn", String, nullable=False),
    Column("suspended", Text, nullable=False),  # JSON SuspendedState
    Column("created", Float, nullable=False),
    Column("cooldowns", Text, nullable=False),  # JSON of policy.Cooldowns
)

policies = Table(
    "aas_policies",
    metadata,
    Column("arn", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("namespace", String, nullable=False),
    Column("resource_id", String, nullable=False),
    Column("dimension", String, nullable=False),
    Column("policy_type", String, nullable=False),
    Column("config", Text, nullable=False),  # JSON of the policy configuration as given
    Column("alarms", Text, nullable=False),  # JSON [{AlarmName, AlarmARN}] of managed alarms
    Column("created", Float, nullable=False),
    Index("aas_policies_key", "namespace", "resource_id", "dimension", "name", unique=True),
)

scheduled = Table(
    "aas_scheduled_actions",
    metadata,
    Column("arn", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("namespace", String, nullable=False),
    Column("resource_id", String, nullable=False),
    Column("dimension", String, nullable=False),
    Column("schedule", String, nullable=False),
    Column("timezone", String, nullable=True),
    Column("start", Float, nullable=True),
    Column("end", Float, nullable=True),
    Column("min_capacity", Integer, nullable=True),
    Column("max_capacity", Integer, nullable=True),
    Column("created", Float, nullable=False),
    Column("last_run", Float, nullable=True),
    Index("aas_scheduled_key", "namespace", "resource_id", "dimension", "name", unique=True),
)

activities = Table(
    "aas_activities",
    metadata,
    Column("seq", Integer, primary_key=True, autoincrement=True),
    Column("activity_id", String, nullable=False, unique=True),
    Column("namespace", String, nullable=False),
    Column("resource_id", String, nullable=False),
    Column("dimension", String, nullable=False),
    Column("description", Text, nullable=False),
    Column("cause", Text, nullable=False),
    Column("start", Float, nullable=False),
    Column("end", Float, nullable=True),
    Column("status", String, nullable=False),
    Column("status_message", Text, nullable=True),
    Column("details", Text, nullable=True),
    Column("not_scaled", Text, nullable=True),  # JSON NotScaledReasons; NULL for activities that scaled
    Column("capacity", Integer, nullable=True),  # the desired capacity a scaling activity sets
    Index("aas_activities_key", "namespace", "resource_id", "dimension", "seq"),
)
