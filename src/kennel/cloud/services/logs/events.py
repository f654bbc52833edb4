"""PutLogEvents, GetLogEvents and FilterLogEvents: the event-level half of the Logs provider.

GetLogEvents tokens name a position between events — ``f/<pos>`` reads forward from there, ``b/<pos>``
backward — where a position is (timestamp, event id) written as fixed-width digits. A page that finds
nothing hands back the token it was given, which is how AWS tells a follower it reached the end. They stay
apart from the paginator (``kennel.cloud.services.paging``) that the Describe* operations and
FilterLogEvents use: they move both ways from a position, and a follower compares them for equality.
"""

from __future__ import annotations

import itertools
import time
from typing import Any

from sqlalchemy import and_, select, tuple_

from kennel.cloud.errors import error_class
from kennel.cloud.services.base import Context
from kennel.cloud.services.logs import tables as t
from kennel.cloud.services.logs.filter import FilterPatternError, compile_pattern
from kennel.cloud.services.logs.writer import DAY_MS
from kennel.cloud.services.paging import Paginator

InvalidParameter = error_class("InvalidParameterException")

# CloudWatch Logs' paginator: DescribeLogGroups, DescribeLogStreams and FilterLogEvents.
PAGES = Paginator(lambda _token: InvalidParameter("The specified nextToken is invalid."))

MAX_BATCH_EVENTS = 10_000
MAX_BATCH_BYTES = 1_048_576
EVENT_OVERHEAD_BYTES = 26  # what AWS adds to each message when sizing a batch or a page
MAX_PAGE_BYTES = 1_048_576
TOO_OLD_MS = 14 * DAY_MS
TOO_NEW_MS = 2 * 3_600_000
MAX_SPAN_MS = DAY_MS
FILTER_CHUNK = 2_000
FILTER_SCAN_LIMIT = 200_000  # rows one FilterLogEvents call examines before it returns a nextToken
_TS_DIGITS, _ID_DIGITS = 16, 20


class EventsMixin:
    # ----- PutLogEvents -------------------------------------------------------------------------------
    def put_log_events(self, params: dict, ctx: Context) -> dict:
        group, stream = self.group_name(params), params["logStreamName"]
        events = params["logEvents"]
        if not events:
            raise InvalidParameter("logEvents must contain at least one event.")
        if len(events) > MAX_BATCH_EVENTS:
            raise InvalidParameter(f"The batch contains {len(events)} events; at most 10000 are allowed.")
        size = sum(len(e["message"].encode("utf-8")) + EVENT_OVERHEAD_BYTES for e in events)
        if size > MAX_BATCH_BYTES:
            raise InvalidParameter(f"Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}")
        stamps = [int(e["timestamp"]) for e in events]
        if any(later < earlier for earlier, later in itertools.pairwise(stamps)):
            raise InvalidParameter(
                "Log events in a single PutLogEvents request must be in chronological order."
            )
        if stamps[-1] - stamps[0] > MAX_SPAN_MS:
            raise InvalidParameter(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours."
            )
        retention = self.stream_retention(group, stream)
        now = int(ctx.now.timestamp() * 1000)
        rejected: dict[str, int] = {}
        accepted: list[tuple[int, int, str]] = []
        for index, (stamp, event) in enumerate(zip(stamps, events, strict=True)):
            if stamp > now + TOO_NEW_MS:
                rejected.setdefault("tooNewLogEventStartIndex", index)
            elif stamp < now - TOO_OLD_MS:
                rejected["tooOldLogEventEndIndex"] = index
            elif retention is not None and stamp < now - retention * DAY_MS:
                rejected["expiredLogEventEndIndex"] = index
            else:
                accepted.append((stamp, now, event["message"]))
        if accepted:
            self.writer.add(group, stream, accepted, autocreate=False)
            self.writer.flush()
        # Sequence tokens are accepted and ignored, as AWS does now; the one returned only ever grows.
        result: dict[str, Any] = {"nextSequenceToken": f"{time.time_ns():056d}"}
        if rejected:
            result["rejectedLogEventsInfo"] = rejected
        return result

    # ----- GetLogEvents -------------------------------------------------------------------------------
    def get_log_events(self, params: dict, ctx: Context) -> dict:
        group = self.group_name(params)
        _, stream_id = self.stream_ids(group, params["logStreamName"])
        limit = params.get("limit") or 10_000
        conditions = [t.events.c.stream_id == stream_id]
        start, end = params.get("startTime"), params.get("endTime")
        if start is not None:
            conditions.append(t.events.c.timestamp >= start)
        if end is not None:
            conditions.append(t.events.c.timestamp < end)  # GetLogEvents' endTime is exclusive
        token = params.get("nextToken")
        position = tuple_(t.events.c.timestamp, t.events.c.id)
        if token is not None:
            direction, pos = _parse_position(token)
            conditions.append(position > tuple_(*pos) if direction == "f" else position < tuple_(*pos))
            forward = direction == "f"
        else:
            direction, pos = "", (start or 0, 0)
            forward = bool(params.get("startFromHead"))
        columns = (t.events.c.timestamp, t.events.c.id, t.events.c.ingested, t.events.c.message)
        order = (
            (t.events.c.timestamp, t.events.c.id)
            if forward
            else (t.events.c.timestamp.desc(), t.events.c.id.desc())
        )
        with self.cloud.store.read() as conn:
            rows = conn.execute(select(*columns).where(and_(*conditions)).order_by(*order).limit(limit)).all()
        rows = _within_bytes(rows, 3)
        if not forward:
            rows.reverse()
        if rows:
            first, last = rows[0], rows[-1]
            return {
                "events": [{"timestamp": r[0], "message": r[3], "ingestionTime": r[2]} for r in rows],
                "nextForwardToken": _position_token("f", last[0], last[1]),
                "nextBackwardToken": _position_token("b", first[0], first[1]),
            }
        if direction == "f":  # at the end going forward: the same token back, and a way to step back
            return {"events": [], "nextForwardToken": token,
                    "nextBackwardToken": _position_token("b", pos[0], pos[1] + 1)}  # fmt: skip
        if direction == "b":
            return {"events": [], "nextBackwardToken": token,
                    "nextForwardToken": _position_token("f", pos[0], max(pos[1] - 1, 0))}  # fmt: skip
        return {"events": [], "nextForwardToken": _position_token("f", pos[0], 0),
                "nextBackwardToken": _position_token("b", pos[0], 0)}  # fmt: skip

    # ----- FilterLogEvents ----------------------------------------------------------------------------
    def filter_log_events(self, params: dict, ctx: Context) -> dict:
        group = self.group_name(params)
        names, prefix = params.get("logStreamNames"), params.get("logStreamNamePrefix")
        if names and prefix:
            raise InvalidParameter("logStreamNames and logStreamNamePrefix cannot both be specified.")
        try:
            matches = compile_pattern(params.get("filterPattern"))
        except FilterPatternError as exc:
            raise InvalidParameter(f"Invalid filter pattern: {exc}") from None
        group_id = self.group_id(group)
        with self.cloud.store.read() as conn:
            stream_names = dict(
                conn.execute(
                    select(t.streams.c.id, t.streams.c.name).where(t.streams.c.group_id == group_id)
                ).all()
            )
        conditions = [t.events.c.group_id == group_id]
        if names or prefix:
            wanted = [
                sid
                for sid, name in stream_names.items()
                if (name in names if names else name.startswith(prefix))
            ]
            if not wanted:
                return {"events": [], "searchedLogStreams": []}
            conditions.append(t.events.c.stream_id.in_(wanted))
        if params.get("startTime") is not None:
            conditions.append(t.events.c.timestamp >= params["startTime"])
        if params.get("endTime") is not None:
            conditions.append(
                t.events.c.timestamp <= params["endTime"]
            )  # inclusive here, unlike GetLogEvents
        # The token is the last event examined, not the last returned (a scan may stop on a non-match),
        # and it is bound to the group it scanned.
        cursor = PAGES.decode_token(params.get("nextToken"), like=(int, int), scope=str(group_id))
        limit = params.get("limit") or 10_000
        found: list[dict[str, Any]] = []
        budget, examined = MAX_PAGE_BYTES, 0
        position = tuple_(t.events.c.timestamp, t.events.c.id)
        columns = (
            t.events.c.timestamp,
            t.events.c.id,
            t.events.c.stream_id,
            t.events.c.ingested,
            t.events.c.message,
        )
        while True:
            where = and_(*conditions, position > tuple_(*cursor)) if cursor else and_(*conditions)
            query = (
                select(*columns)
                .where(where)
                .order_by(t.events.c.timestamp, t.events.c.id)
                .limit(FILTER_CHUNK)
            )
            with self.cloud.store.read() as conn:
                rows = conn.execute(query).all()
            for stamp, event_id, stream_id, ingested, message in rows:
                examined += 1
                cursor = (stamp, event_id)
                if not matches(message):
                    continue
                budget -= len(message.encode("utf-8")) + EVENT_OVERHEAD_BYTES
                found.append({"logStreamName": stream_names.get(stream_id, ""), "timestamp": stamp,
                              "message": message, "ingestionTime": ingested,
                              "eventId": f"{stamp:019d}{event_id:037d}"})  # fmt: skip
                if len(found) >= limit or budget <= 0:
                    return _filter_page(found, PAGES.encode_token(cursor, str(group_id)))
            if len(rows) < FILTER_CHUNK:
                return _filter_page(found, None)
            if examined >= FILTER_SCAN_LIMIT:  # AWS too answers long scans with partial pages and a token
                return _filter_page(found, PAGES.encode_token(cursor, str(group_id)))


def _filter_page(found: list[dict[str, Any]], token: str | None) -> dict:
    # searchedLogStreams has been deprecated by AWS, which now always returns it empty.
    page: dict[str, Any] = {"events": found, "searchedLogStreams": []}
    if token is not None:
        page["nextToken"] = token
    return page


def _within_bytes(rows: list, message_index: int) -> list:
    """The longest leading run of rows whose messages fit in one response page."""
    total = 0
    for count, row in enumerate(rows):
        total += len(row[message_index].encode("utf-8")) + EVENT_OVERHEAD_BYTES
        if total > MAX_PAGE_BYTES:
            return list(rows[: max(count, 1)])
    return list(rows)


def _position_token(direction: str, stamp: int, event_id: int) -> str:
    return f"{direction}/{max(stamp, 0):0{_TS_DIGITS}d}{max(event_id, 0):0{_ID_DIGITS}d}"


def _parse_position(token: str) -> tuple[str, tuple[int, int]]:
    direction, _, digits = token.partition("/")
    if direction not in ("f", "b") or len(digits) != _TS_DIGITS + _ID_DIGITS or not digits.isdigit():
        raise InvalidParameter("The specified nextToken is invalid.")
    return direction, (int(digits[:_TS_DIGITS]), int(digits[_TS_DIGITS:]))
