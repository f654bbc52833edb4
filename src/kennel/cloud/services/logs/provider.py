"""CloudWatch Logs: log groups and streams here, events in ``events.py``, persistence in ``writer.py``.

The provider is also the cloud's ``LogSink``: ``append`` queues events in memory (creating the group and
stream on first use) and never raises into the endpoint or function that logs.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, func, select, tuple_, update

from kennel.cloud.errors import error_class
from kennel.cloud.services.base import Context, Provider
from kennel.cloud.services.logs import tables as t
from kennel.cloud.services.logs.events import PAGES, EventsMixin
from kennel.cloud.services.logs.writer import EventWriter

log = logging.getLogger("kennel.logs")


class ResourceNotFound(error_class("ResourceNotFoundException")):
    """Logs' model gives this code no HTTP status, and ``error_class`` keeps whichever status the
    first service to name the code chose (Lambda's is 404); AWS Logs answers 400."""

    status = 400


AlreadyExists = error_class("ResourceAlreadyExistsException")
InvalidParameter = error_class("InvalidParameterException")
Validation = error_class("ValidationException")

RETENTION_DAYS = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653}
)
STREAM_OPERATIONS = frozenset({"CreateLogStream", "DeleteLogStream", "PutLogEvents", "GetLogEvents"})
PAGE_LIMIT = 50


class LogsProvider(EventsMixin, Provider):
    service = "logs"

    def __init__(self, cloud, *, clock=time.time) -> None:
        super().__init__(cloud)
        self.clock = clock
        self.writer = EventWriter(cloud.store, clock)
        self._sink_errors = 0

    def start(self) -> None:
        self.writer.start()

    def close(self) -> None:
        self.writer.close()

    # ----- LogSink ------------------------------------------------------------------------------------
    def append(self, group: str, stream: str, events: Sequence[tuple[float, str]]) -> None:
        try:
            # Conversion happens in the writer thread; the caller pays for one queue append.
            self.writer.push((group, stream, True, list(events), int(self.clock() * 1000)))
        except Exception:  # telemetry must never break the caller; say so once, then count
            self._sink_errors += 1
            if self._sink_errors == 1:
                log.exception("dropping log events for %s/%s", group, stream)

    # ----- names, ARNs, lookups -----------------------------------------------------------------------
    def group_arn(self, region: str, account: str, group: str) -> str:
        return f"arn:aws:logs:{region}:{account}:log-group:{group}"

    def resource_arn(self, operation: str, params: dict, ctx: Context) -> str:
        if operation in ("ListTagsForResource", "TagResource", "UntagResource"):
            return params.get("resourceArn") or "*"
        if operation == "DescribeLogGroups":
            return self.group_arn(ctx.region, ctx.account, "*")
        group = _name_from(params.get("logGroupName") or params.get("logGroupIdentifier"))
        if not group:
            return "*"
        arn = self.group_arn(ctx.region, ctx.account, group)
        if operation in STREAM_OPERATIONS and params.get("logStreamName"):
            return f"{arn}:log-stream:{params['logStreamName']}"
        # AWS authorises log-group operations (DescribeLogStreams, FilterLogEvents, PutRetentionPolicy …)
        # against the group's ARN with ":*", the form DescribeLogGroups reports as "arn": a policy on
        # "log-group:NAME:*" grants them, one on "log-group:NAME" alone does not.
        return f"{arn}:*"

    def group_name(self, params: dict) -> str:
        name, identifier = params.get("logGroupName"), params.get("logGroupIdentifier")
        if name and identifier:
            raise InvalidParameter("LogGroup name and LogGroup ARN are mutually exclusive parameters.")
        if not (name or identifier):
            raise InvalidParameter("Either logGroupName or logGroupIdentifier must be specified.")
        return _name_from(name or identifier)

    def group_id(self, group: str) -> int:
        self.writer.flush()  # a group or stream the sink created a moment ago exists for the API too
        with self.cloud.store.read() as conn:
            found = conn.execute(select(t.groups.c.id).where(t.groups.c.name == group)).scalar()
        if found is None:
            raise ResourceNotFound("The specified log group does not exist.")
        return found

    def stream_ids(self, group: str, stream: str) -> tuple[int, int]:
        group_id = self.group_id(group)
        with self.cloud.store.read() as conn:
            found = conn.execute(
                select(t.streams.c.id).where(
                    and_(t.streams.c.group_id == group_id, t.streams.c.name == stream)
                )
            ).scalar()
        if found is None:
            raise ResourceNotFound("The specified log stream does not exist.")
        return group_id, found

    def stream_retention(self, group: str, stream: str) -> int | None:
        """The group's retention in days, after checking that the group and the stream exist."""
        self.stream_ids(group, stream)
        with self.cloud.store.read() as conn:
            return conn.execute(select(t.groups.c.retention_days).where(t.groups.c.name == group)).scalar()

    # ----- log groups ---------------------------------------------------------------------------------
    def create_log_group(self, params: dict, ctx: Context) -> dict:
        name = params["logGroupName"]
        if name.startswith("aws/"):
            raise InvalidParameter("Log group names can't start with the string aws/.")
        tags = params.get("tags") or {}
        _check_tags(tags)
        self.writer.flush()
        with self.cloud.store.write(bump=False) as conn:
            if conn.execute(select(t.groups.c.id).where(t.groups.c.name == name)).first() is not None:
                raise AlreadyExists("The specified log group already exists")
            conn.execute(
                t.groups.insert().values(
                    name=name, created=_ms(ctx), kms_key_id=params.get("kmsKeyId"), tags=json.dumps(tags),
                    log_group_class=params.get("logGroupClass") or "STANDARD",
                    deletion_protection=bool(params.get("deletionProtectionEnabled")),
                )
            )  # fmt: skip
        return {}

    def delete_log_group(self, params: dict, ctx: Context) -> dict:
        name = params["logGroupName"]
        with self.writer.deleting(name), self.cloud.store.write(bump=False) as conn:
            row = conn.execute(
                select(t.groups.c.id, t.groups.c.deletion_protection).where(t.groups.c.name == name)
            ).first()
            if row is None:
                raise ResourceNotFound("The specified log group does not exist.")
            if row.deletion_protection:
                raise Validation(f"Log group {name} has deletion protection enabled and cannot be deleted.")
            conn.execute(delete(t.events).where(t.events.c.group_id == row.id))
            conn.execute(delete(t.streams).where(t.streams.c.group_id == row.id))
            conn.execute(delete(t.groups).where(t.groups.c.id == row.id))
        return {}

    def describe_log_groups(self, params: dict, ctx: Context) -> dict:
        prefix, pattern = params.get("logGroupNamePrefix"), params.get("logGroupNamePattern")
        identifiers = params.get("logGroupIdentifiers")
        if prefix and pattern:
            raise InvalidParameter("LogGroup name prefix and LogGroup name pattern are mutually exclusive.")
        if identifiers and (prefix or pattern):
            raise InvalidParameter("logGroupIdentifiers cannot be combined with a name prefix or pattern.")
        limit = params.get("limit") or PAGE_LIMIT
        stored = (
            select(func.coalesce(func.sum(t.streams.c.stored_bytes), 0))
            .where(t.streams.c.group_id == t.groups.c.id)
            .scalar_subquery()
        )
        query = select(t.groups, stored.label("stored_bytes")).order_by(t.groups.c.name).limit(limit + 1)
        if prefix:
            query = query.where(func.substr(t.groups.c.name, 1, len(prefix)) == prefix)  # LIKE ignores case
        if pattern:
            query = query.where(func.instr(func.lower(t.groups.c.name), pattern.lower()) > 0)
        if identifiers:
            query = query.where(t.groups.c.name.in_([_name_from(i) for i in identifiers]))
        if params.get("logGroupClass"):
            query = query.where(t.groups.c.log_group_class == params["logGroupClass"])
        after = PAGES.decode_token(params.get("nextToken"), like=(str,))
        if after is not None:
            query = query.where(t.groups.c.name > after[0])
        self.writer.flush()
        with self.cloud.store.read() as conn:
            rows = conn.execute(query).all()
        page, token = PAGES.cut(rows, limit, key=lambda row: (row.name,))
        result: dict[str, Any] = {"logGroups": [self._group_out(ctx, row) for row in page]}
        if token:
            result["nextToken"] = token
        return result

    def _group_out(self, ctx: Context, row) -> dict:
        arn = self.group_arn(ctx.region, ctx.account, row.name)
        out = {"logGroupName": row.name, "creationTime": row.created, "metricFilterCount": 0,
               "arn": f"{arn}:*", "logGroupArn": arn, "storedBytes": row.stored_bytes,
               "logGroupClass": row.log_group_class,
               "deletionProtectionEnabled": bool(row.deletion_protection)}  # fmt: skip
        if row.retention_days is not None:
            out["retentionInDays"] = row.retention_days
        if row.kms_key_id:
            out["kmsKeyId"] = row.kms_key_id
        return out

    def put_retention_policy(self, params: dict, ctx: Context) -> dict:
        days = params["retentionInDays"]
        if days not in RETENTION_DAYS:
            raise InvalidParameter(
                f"1 validation error detected: Value '{days}' at 'retentionInDays' failed to satisfy "
                f"constraint: Member must satisfy enum value set: {sorted(RETENTION_DAYS)}"
            )
        self._set_group(params["logGroupName"], retention_days=days)
        return {}

    def delete_retention_policy(self, params: dict, ctx: Context) -> dict:
        self._set_group(params["logGroupName"], retention_days=None)
        return {}

    def _set_group(self, name: str, **values: Any) -> None:
        self.writer.flush()
        with self.cloud.store.write(bump=False) as conn:
            changed = conn.execute(update(t.groups).where(t.groups.c.name == name).values(**values)).rowcount
        if not changed:
            raise ResourceNotFound("The specified log group does not exist.")

    # ----- tags ---------------------------------------------------------------------------------------
    def _tags(self, name: str) -> dict[str, str]:
        self.writer.flush()
        with self.cloud.store.read() as conn:
            text = conn.execute(select(t.groups.c.tags).where(t.groups.c.name == name)).scalar()
        if text is None:
            raise ResourceNotFound("The specified log group does not exist.")
        return json.loads(text)

    def list_tags_log_group(self, params: dict, ctx: Context) -> dict:
        return {"tags": self._tags(params["logGroupName"])}

    def list_tags_for_resource(self, params: dict, ctx: Context) -> dict:
        return {"tags": self._tags(_group_from_arn(params["resourceArn"]))}

    def tag_resource(self, params: dict, ctx: Context) -> dict:
        name = _group_from_arn(params["resourceArn"])
        tags = {**self._tags(name), **params["tags"]}
        _check_tags(tags)
        self._set_group(name, tags=json.dumps(tags))
        return {}

    def untag_resource(self, params: dict, ctx: Context) -> dict:
        name = _group_from_arn(params["resourceArn"])
        tags = {k: v for k, v in self._tags(name).items() if k not in set(params["tagKeys"])}
        self._set_group(name, tags=json.dumps(tags))
        return {}

    # ----- log streams --------------------------------------------------------------------------------
    def create_log_stream(self, params: dict, ctx: Context) -> dict:
        group, stream = params["logGroupName"], params["logStreamName"]
        group_id = self.group_id(group)
        with self.cloud.store.write(bump=False) as conn:
            exists = conn.execute(
                select(t.streams.c.id).where(
                    and_(t.streams.c.group_id == group_id, t.streams.c.name == stream)
                )
            ).first()
            if exists is not None:
                raise AlreadyExists("The specified log stream already exists")
            conn.execute(t.streams.insert().values(group_id=group_id, name=stream, created=_ms(ctx)))
        return {}

    def delete_log_stream(self, params: dict, ctx: Context) -> dict:
        group, stream = params["logGroupName"], params["logStreamName"]
        with self.writer.deleting(group, stream):
            _, stream_id = self.stream_ids(group, stream)
            with self.cloud.store.write(bump=False) as conn:
                conn.execute(delete(t.events).where(t.events.c.stream_id == stream_id))
                conn.execute(delete(t.streams).where(t.streams.c.id == stream_id))
        return {}

    def describe_log_streams(self, params: dict, ctx: Context) -> dict:
        group = self.group_name(params)
        by_time = params.get("orderBy") == "LastEventTime"
        prefix = params.get("logStreamNamePrefix")
        if by_time and prefix:
            raise InvalidParameter("Cannot order by LastEventTime with a logStreamNamePrefix.")
        descending = bool(params.get("descending"))
        limit = params.get("limit") or PAGE_LIMIT
        group_id = self.group_id(group)
        last = func.coalesce(t.streams.c.last_event, -1)  # streams without events sort before all others
        keys = (last, t.streams.c.name) if by_time else (t.streams.c.name,)
        query = select(t.streams).where(t.streams.c.group_id == group_id)
        if prefix:
            query = query.where(func.substr(t.streams.c.name, 1, len(prefix)) == prefix)
        after = PAGES.decode_token(params.get("nextToken"), like=(int, str) if by_time else (str,))
        if after is not None:
            query = query.where(
                tuple_(*keys) < tuple_(*after) if descending else tuple_(*keys) > tuple_(*after)
            )
        query = query.order_by(*(key.desc() for key in keys) if descending else keys).limit(limit + 1)
        with self.cloud.store.read() as conn:
            rows = conn.execute(query).all()

        def key(row) -> tuple:  # the row's values of ``keys``, as the next page compares them
            return (
                (row.last_event if row.last_event is not None else -1, row.name) if by_time else (row.name,)
            )

        page, token = PAGES.cut(rows, limit, key)
        arn = self.group_arn(ctx.region, ctx.account, group)
        result: dict[str, Any] = {"logStreams": [_stream_out(arn, row) for row in page]}
        if token:
            result["nextToken"] = token
        return result


def _stream_out(group_arn: str, row) -> dict:
    out = {"logStreamName": row.name, "creationTime": row.created, "storedBytes": row.stored_bytes,
           "arn": f"{group_arn}:log-stream:{row.name}"}  # fmt: skip
    for key, value in (("firstEventTimestamp", row.first_event), ("lastEventTimestamp", row.last_event),
                       ("lastIngestionTime", row.last_ingestion)):  # fmt: skip
        if value is not None:
            out[key] = value
    return out


def _ms(ctx: Context) -> int:
    return int(ctx.now.timestamp() * 1000)


def _name_from(identifier: str | None) -> str:
    """A log group name from a name or an ARN (``…:log-group:NAME`` with an optional ``:*``)."""
    if not identifier or not identifier.startswith("arn:"):
        return identifier or ""
    _, found, rest = identifier.partition(":log-group:")
    if not found or not rest:
        raise InvalidParameter(f"{identifier} is not a log group ARN.")
    return rest[:-2] if rest.endswith(":*") else rest


def _group_from_arn(arn: str) -> str:
    if ":log-group:" not in arn:
        raise InvalidParameter(f"{arn} is not a log group ARN; only log groups carry tags in Kennel.")
    return _name_from(arn)


def _check_tags(tags: dict[str, str]) -> None:
    if len(tags) > 50:
        raise InvalidParameter("A log group can have at most 50 tags.")
    for key, value in tags.items():
        if not 1 <= len(key) <= 128 or len(value) > 256 or key.startswith("aws:"):
            raise InvalidParameter(f"Invalid tag {key!r}: keys are 1-128 characters, not aws:, values ≤ 256.")
