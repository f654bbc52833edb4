"""CloudWatch Logs through the live gateway with boto3 (and one aws CLI call)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

ACCOUNT = "000000000000"
DAY_MS = 86_400_000
AWS = str(Path(sys.executable).with_name("aws"))


def _group(logs, **tags: str) -> str:
    name = f"/kennel/test/{uuid.uuid4().hex[:10]}"
    logs.create_log_group(logGroupName=name, **({"tags": tags} if tags else {}))
    return name


def _code(info: pytest.ExceptionInfo) -> str:
    return info.value.response["Error"]["Code"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def test_log_group_lifecycle_tags_and_retention(cloud) -> None:
    logs = cloud.client("logs")
    name = _group(logs, team="ml")
    with pytest.raises(ClientError) as dup:
        logs.create_log_group(logGroupName=name)
    assert _code(dup) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as reserved:
        logs.create_log_group(logGroupName="aws/mine")
    assert _code(reserved) == "InvalidParameterException"
    logs.put_retention_policy(logGroupName=name, retentionInDays=7)
    with pytest.raises(ClientError) as bad_days:
        logs.put_retention_policy(logGroupName=name, retentionInDays=8)
    assert _code(bad_days) == "InvalidParameterException"
    (group,) = logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"]
    arn = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{name}"
    assert group["retentionInDays"] == 7 and group["arn"] == f"{arn}:*" and group["logGroupArn"] == arn
    assert group["storedBytes"] == 0 and group["creationTime"] <= _now_ms()
    assert logs.list_tags_log_group(logGroupName=name)["tags"] == {"team": "ml"}
    logs.tag_resource(resourceArn=arn, tags={"stage": "dev"})
    logs.untag_resource(resourceArn=arn, tagKeys=["team"])
    assert logs.list_tags_for_resource(resourceArn=arn)["tags"] == {"stage": "dev"}
    logs.delete_retention_policy(logGroupName=name)
    assert "retentionInDays" not in logs.describe_log_groups(logGroupNamePrefix=name)["logGroups"][0]
    logs.delete_log_group(logGroupName=name)
    with pytest.raises(ClientError) as gone:
        logs.delete_log_group(logGroupName=name)
    assert _code(gone) == "ResourceNotFoundException"
    assert gone.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as missing:
        logs.put_retention_policy(logGroupName=name, retentionInDays=1)
    assert _code(missing) == "ResourceNotFoundException"


def test_describe_log_groups_pagination_and_filters(cloud) -> None:
    logs = cloud.client("logs")
    prefix = f"/kennel/page-{uuid.uuid4().hex[:6]}"
    names = [f"{prefix}/{letter}" for letter in "edcba"]
    for name in names:
        logs.create_log_group(logGroupName=name)
    first = logs.describe_log_groups(logGroupNamePrefix=prefix, limit=2)
    assert [g["logGroupName"] for g in first["logGroups"]] == sorted(names)[:2]
    pages = logs.get_paginator("describe_log_groups").paginate(
        logGroupNamePrefix=prefix, PaginationConfig={"PageSize": 2}
    )
    assert [g["logGroupName"] for page in pages for g in page["logGroups"]] == sorted(names)
    assert logs.describe_log_groups(logGroupNamePrefix=prefix.upper())["logGroups"] == []  # case-sensitive
    pattern = logs.describe_log_groups(logGroupNamePattern=prefix.split("-")[1].upper())["logGroups"]
    assert len(pattern) == 5
    with pytest.raises(ClientError) as both:
        logs.describe_log_groups(logGroupNamePrefix=prefix, logGroupNamePattern="x")
    assert _code(both) == "InvalidParameterException"
    with pytest.raises(ClientError) as token:
        logs.describe_log_groups(nextToken="not-a-token")
    assert _code(token) == "InvalidParameterException"


def test_log_streams_ordering_statistics_and_pagination(cloud) -> None:
    logs = cloud.client("logs")
    group = _group(logs)
    now = _now_ms()
    for index, stream in enumerate(["b", "a", "c", "d"]):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        if stream != "d":
            logs.put_log_events(
                logGroupName=group,
                logStreamName=stream,
                logEvents=[
                    {"timestamp": now - 1000 * (10 - index), "message": "x" * 10},
                    {"timestamp": now - 1000 * (5 - index), "message": "y" * 5},
                ],
            )
    with pytest.raises(ClientError) as dup:
        logs.create_log_stream(logGroupName=group, logStreamName="a")
    assert _code(dup) == "ResourceAlreadyExistsException"
    with pytest.raises(ClientError) as no_group:
        logs.create_log_stream(logGroupName=f"{group}-missing", logStreamName="a")
    assert _code(no_group) == "ResourceNotFoundException"
    streams = logs.describe_log_streams(logGroupName=group)["logStreams"]
    assert [s["logStreamName"] for s in streams] == ["a", "b", "c", "d"]
    a = streams[0]
    assert a["firstEventTimestamp"] == now - 9000 and a["lastEventTimestamp"] == now - 4000
    assert a["storedBytes"] == 15 and a["lastIngestionTime"] >= a["creationTime"]
    assert a["arn"] == f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}:log-stream:a"
    assert "firstEventTimestamp" not in streams[3]
    by_time = logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", descending=True)
    assert [s["logStreamName"] for s in by_time["logStreams"]] == ["c", "a", "b", "d"]
    pages = logs.get_paginator("describe_log_streams").paginate(
        logGroupName=group, orderBy="LastEventTime", PaginationConfig={"PageSize": 1}
    )
    assert [s["logStreamName"] for p in pages for s in p["logStreams"]] == ["d", "b", "a", "c"]
    desc = logs.describe_log_streams(logGroupName=group, descending=True, limit=3)
    assert [s["logStreamName"] for s in desc["logStreams"]] == ["d", "c", "b"]
    rest = logs.describe_log_streams(logGroupName=group, descending=True, nextToken=desc["nextToken"])
    assert [s["logStreamName"] for s in rest["logStreams"]] == ["a"] and "nextToken" not in rest
    assert len(logs.describe_log_streams(logGroupName=group, logStreamNamePrefix="c")["logStreams"]) == 1
    with pytest.raises(ClientError) as mixed:
        logs.describe_log_streams(logGroupName=group, orderBy="LastEventTime", logStreamNamePrefix="a")
    assert _code(mixed) == "InvalidParameterException"
    assert logs.describe_log_groups(logGroupNamePrefix=group)["logGroups"][0]["storedBytes"] == 45
    logs.delete_log_stream(logGroupName=group, logStreamName="a")
    with pytest.raises(ClientError) as gone:
        logs.get_log_events(logGroupName=group, logStreamName="a")
    assert _code(gone) == "ResourceNotFoundException"


def test_put_log_events_rejections_like_aws(cloud) -> None:
    logs = cloud.client("logs")
    group = _group(logs)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    now = _now_ms()

    def put(*stamps: int, **extra) -> dict:
        events = [{"timestamp": stamp, "message": f"m{i}"} for i, stamp in enumerate(stamps)]
        return logs.put_log_events(logGroupName=group, logStreamName="s", logEvents=events, **extra)

    accepted = put(now - 2, now - 1, sequenceToken="ignored-as-aws-does")
    assert "rejectedLogEventsInfo" not in accepted and accepted["nextSequenceToken"]
    old = now - 15 * DAY_MS
    assert put(old, old + 1, old + 2)["rejectedLogEventsInfo"] == {"tooOldLogEventEndIndex": 2}
    assert put(now, now + 3 * 3_600_000)["rejectedLogEventsInfo"] == {"tooNewLogEventStartIndex": 1}
    logs.put_retention_policy(logGroupName=group, retentionInDays=1)
    expired = put(now - DAY_MS - 60_000, now - DAY_MS - 50_000, now - 3_600_000)
    assert expired["rejectedLogEventsInfo"] == {"expiredLogEventEndIndex": 1}
    for stamps, words in (((now, now - 1), "chronological"), ((now - 2 * DAY_MS, now), "24 hours")):
        with pytest.raises(ClientError, match=words) as refused:
            put(*stamps)
        assert _code(refused) == "InvalidParameterException"
    with pytest.raises(ClientError, match="Upload too large") as big:
        logs.put_log_events(
            logGroupName=group,
            logStreamName="s",
            logEvents=[{"timestamp": now, "message": "x" * 600_000}] * 2,
        )
    assert _code(big) == "InvalidParameterException"
    with pytest.raises(ClientError) as missing:
        logs.put_log_events(
            logGroupName=group, logStreamName="nope", logEvents=[{"timestamp": now, "message": "m"}]
        )
    assert _code(missing) == "ResourceNotFoundException"
    stored = logs.get_log_events(logGroupName=group, logStreamName="s", startFromHead=True)["events"]
    assert [e["message"] for e in stored] == ["m2", "m0", "m1", "m0"]  # time order, not arrival


def test_get_log_events_tokens_walk_both_ways(cloud) -> None:
    logs = cloud.client("logs")
    group = _group(logs)
    logs.create_log_stream(logGroupName=group, logStreamName="s")
    base = _now_ms() - 60_000
    logs.put_log_events(
        logGroupName=group,
        logStreamName="s",
        logEvents=[{"timestamp": base + i * 10, "message": f"e{i}"} for i in range(10)],
    )

    def get(**kwargs) -> dict:
        return logs.get_log_events(logGroupName=group, logStreamName="s", limit=4, **kwargs)

    page = get(startFromHead=True)
    seen = [e["message"] for e in page["events"]]
    assert seen == ["e0", "e1", "e2", "e3"]
    token = page["nextForwardToken"]
    assert token.startswith("f/") and page["nextBackwardToken"].startswith("b/")
    while True:
        page = get(nextToken=token)
        if page["nextForwardToken"] == token:  # AWS's end-of-stream signal: the same token back
            assert page["events"] == []
            break
        seen += [e["message"] for e in page["events"]]
        token = page["nextForwardToken"]
    assert seen == [f"e{i}" for i in range(10)]
    tail = get()
    assert [e["message"] for e in tail["events"]] == ["e6", "e7", "e8", "e9"]
    back = get(nextToken=tail["nextBackwardToken"])
    assert [e["message"] for e in back["events"]] == ["e2", "e3", "e4", "e5"]
    assert [e["message"] for e in get(nextToken=back["nextForwardToken"])["events"]] == [
        "e6",
        "e7",
        "e8",
        "e9",
    ]
    window = get(startTime=base + 20, endTime=base + 50, startFromHead=True)["events"]
    assert [e["message"] for e in window] == ["e2", "e3", "e4"]  # endTime is exclusive
    logs.put_log_events(
        logGroupName=group, logStreamName="s", logEvents=[{"timestamp": base + 500, "message": "new"}]
    )
    assert [e["message"] for e in get(nextToken=token)["events"]] == ["new"]  # followers see new events
    with pytest.raises(ClientError) as bad:
        get(nextToken="f/123")
    assert _code(bad) == "InvalidParameterException"


def test_filter_log_events_patterns_streams_and_pages(cloud) -> None:
    logs = cloud.client("logs")
    group = _group(logs)
    base = _now_ms() - 60_000
    lines = {
        "api-1": [
            "ERROR timeout on db",
            "INFO ok",
            json.dumps({"level": "ERROR", "latency": 250, "user": {"id": 7}}),
        ],
        "api-2": ["WARN slow request", "ERROR disk full", json.dumps({"level": "INFO", "latency": 20})],
        "worker": ["ERROR worker crashed", "DEBUG tick"],
    }
    for offset, (stream, messages) in enumerate(lines.items()):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
        logs.put_log_events(
            logGroupName=group,
            logStreamName=stream,
            logEvents=[{"timestamp": base + i * 10 + offset, "message": m} for i, m in enumerate(messages)],
        )

    def messages(**kwargs) -> list[str]:
        return [e["message"] for e in logs.filter_log_events(logGroupName=group, **kwargs)["events"]]

    assert len(messages()) == 8
    assert messages(filterPattern="ERROR") == [
        "ERROR timeout on db",
        "ERROR worker crashed",
        "ERROR disk full",
        lines["api-1"][2],
    ]
    assert messages(filterPattern='"disk full"') == ["ERROR disk full"]
    assert messages(filterPattern="?WARN ?DEBUG") == ["WARN slow request", "DEBUG tick"]
    assert messages(filterPattern="ERROR -worker -disk -level") == ["ERROR timeout on db"]
    assert messages(filterPattern='{ $.level = "ERROR" }') == [lines["api-1"][2]]
    assert messages(filterPattern="{ $.latency > 100 || $.user.id != 7 }") == [lines["api-1"][2]]
    assert messages(filterPattern="{ $.level != ERROR }") == [lines["api-2"][2]]
    assert messages(filterPattern="ERROR", logStreamNamePrefix="api") == [
        "ERROR timeout on db",
        "ERROR disk full",
        lines["api-1"][2],
    ]
    assert messages(logStreamNames=["worker"], startTime=base + 5, endTime=base + 12) == ["DEBUG tick"]
    first = logs.filter_log_events(logGroupName=group, limit=3)
    assert len(first["events"]) == 3 and first["searchedLogStreams"] == []
    assert first["events"][0]["logStreamName"] == "api-1" and first["events"][0]["eventId"]
    pages = logs.get_paginator("filter_log_events").paginate(
        logGroupName=group, PaginationConfig={"PageSize": 3}
    )
    assert len([e for page in pages for e in page["events"]]) == 8
    for kwargs in ({"filterPattern": "[ip, user]"}, {"logStreamNames": ["a"], "logStreamNamePrefix": "a"}):
        with pytest.raises(ClientError) as refused:
            logs.filter_log_events(logGroupName=group, **kwargs)
        assert _code(refused) == "InvalidParameterException"
    with pytest.raises(ClientError) as missing:
        logs.filter_log_events(logGroupName=f"{group}-nope")
    assert _code(missing) == "ResourceNotFoundException"


def test_stream_level_permissions_use_log_stream_arns(cloud) -> None:
    logs, iam = cloud.client("logs"), cloud.client("iam")
    group = _group(logs)
    for stream in ("mine", "theirs"):
        logs.create_log_stream(logGroupName=group, logStreamName=stream)
    user = f"logger-{uuid.uuid4().hex[:8]}"
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    resource = f"arn:aws:logs:us-east-1:{ACCOUNT}:log-group:{group}:log-stream:mine"
    iam.put_user_policy(
        UserName=user,
        PolicyName="put",
        PolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [{"Effect": "Allow", "Action": "logs:PutLogEvents", "Resource": resource}],
            }
        ),
    )
    limited = cloud.client("logs", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    event = [{"timestamp": _now_ms(), "message": "hi"}]
    limited.put_log_events(logGroupName=group, logStreamName="mine", logEvents=event)
    with pytest.raises(ClientError) as denied:
        limited.put_log_events(logGroupName=group, logStreamName="theirs", logEvents=event)
    assert _code(denied) == "AccessDeniedException"


def test_cli_describe_log_groups(cloud) -> None:
    logs = cloud.client("logs")
    name = _group(logs)
    done = subprocess.run(
        [AWS, "logs", "describe-log-groups", "--log-group-name-prefix", name, "--output", "json"],
        env=cloud.cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert [g["logGroupName"] for g in json.loads(done.stdout)["logGroups"]] == [name]
