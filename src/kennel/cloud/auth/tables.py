"""IAM state in the store. Times are epoch seconds (float); documents are JSON text as submitted.

Secret access keys and session tokens are ``Sealed``: encrypted at rest, opened on read.
"""

from __future__ import annotations

from sqlalchemy import Boolean, Column, Float, ForeignKey, Integer, String, Table, Text

from kennel.cloud.sealing import Sealed
from kennel.cloud.statestore import metadata

users = Table(
    "iam_users",
    metadata,
    Column("name", String, primary_key=True),
    Column("user_id", String, nullable=False, unique=True),
    Column("path", String, nullable=False, default="/"),
    Column("created", Float, nullable=False),
    Column("boundary_arn", String, nullable=True),
)

access_keys = Table(
    "iam_access_keys",
    metadata,
    Column("access_key_id", String, primary_key=True),
    Column("secret", Sealed("iam_access_keys.secret"), nullable=False),
    Column("user_name", String, ForeignKey("iam_users.name", ondelete="CASCADE"), nullable=False),
    Column("status", String, nullable=False, default="Active"),
    Column("created", Float, nullable=False),
    Column("last_used", Float, nullable=True),
    Column("last_used_service", String, nullable=True),
    Column("last_used_region", String, nullable=True),
)

roles = Table(
    "iam_roles",
    metadata,
    Column("name", String, primary_key=True),
    Column("role_id", String, nullable=False, unique=True),
    Column("path", String, nullable=False, default="/"),
    Column("trust_policy", Text, nullable=False),
    Column("description", String, nullable=True),
    Column("max_session_duration", Integer, nullable=False, default=3600),
    Column("created", Float, nullable=False),
    Column("last_used", Float, nullable=True),
    Column("last_used_region", String, nullable=True),
    Column("boundary_arn", String, nullable=True),
)

policies = Table(
    "iam_policies",
    metadata,
    Column("arn", String, primary_key=True),
    Column("name", String, nullable=False),
    Column("policy_id", String, nullable=False, unique=True),
    Column("path", String, nullable=False, default="/"),
    Column("description", String, nullable=True),
    Column("default_version", String, nullable=False),
    Column("aws_managed", Boolean, nullable=False, default=False),
    Column("created", Float, nullable=False),
    Column("updated", Float, nullable=False),
)

policy_versions = Table(
    "iam_policy_versions",
    metadata,
    Column("policy_arn", String, ForeignKey("iam_policies.arn", ondelete="CASCADE"), primary_key=True),
    Column("version_id", String, primary_key=True),
    Column("document", Text, nullable=False),
    Column("created", Float, nullable=False),
)

attachments = Table(
    "iam_attachments",
    metadata,
    Column("principal_type", String, primary_key=True),  # "user" | "role"
    Column("principal_name", String, primary_key=True),
    Column("policy_arn", String, ForeignKey("iam_policies.arn"), primary_key=True),
)

inline_policies = Table(
    "iam_inline_policies",
    metadata,
    Column("principal_type", String, primary_key=True),
    Column("principal_name", String, primary_key=True),
    Column("policy_name", String, primary_key=True),
    Column("document", Text, nullable=False),
)

sessions = Table(
    "sts_sessions",
    metadata,
    Column("access_key_id", String, primary_key=True),
    Column("secret", Sealed("sts_sessions.secret"), nullable=False),
    Column("session_token", Sealed("sts_sessions.session_token"), nullable=False),
    Column("role_name", String, nullable=False),
    Column("session_name", String, nullable=False),
    Column("source_arn", String, nullable=False),
    Column("created", Float, nullable=False),
    Column("expires", Float, nullable=False),
    # Session policies passed to AssumeRole (schema 3): the inline document as submitted and a JSON list
    # of managed policy ARNs. Both NULL: the session has the role's permissions, unrestricted.
    Column("session_policy", Text, nullable=True),
    Column("session_policy_arns", Text, nullable=True),
)

audit = Table(
    "iam_audit",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("time", Float, nullable=False, index=True),
    Column("principal_arn", String, nullable=False, index=True),
    Column("identity_arn", String, nullable=False, index=True),  # user or role ARN behind a session
    Column("action", String, nullable=False),
    Column("resource", String, nullable=False),
    Column("decision", String, nullable=False),  # Allow | ExplicitDeny | ImplicitDeny
    Column("source_ip", String, nullable=True),
    Column("region", String, nullable=True),
    Column("request_id", String, nullable=True),
)
