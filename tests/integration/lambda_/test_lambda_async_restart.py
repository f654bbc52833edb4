"""Asynchronous invocations are durable: an event accepted (202) but not yet run survives a restart
of the gateway and runs afterwards, exactly once."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import pytest
from tests.integration.conftest import start_gateway, stop_gateway
from tests.integration.support.lambda_functions import create, lambda_client, logged, make_role, package

pytestmark = pytest.mark.timeout(240)

WRITER = """
def handler(event, context):
    print("ran", event["tag"], context.aws_request_id)  # the sandbox lets it tell the test only this way
    return "written"
"""


def test_queued_event_survives_a_restart(tmp_path: Path) -> None:
    state, tag = tmp_path / "state", uuid.uuid4().hex
    cloud = start_gateway(state)
    try:
        lam = lambda_client(cloud)
        name = create(lam, make_role(cloud), zip=package(WRITER))
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        # Reserved concurrency 0 throttles every attempt: the event waits in the queue, backing off.
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        accepted = lam.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"tag": tag}).encode()
        )
        assert accepted["StatusCode"] == 202
        request_id = accepted["ResponseMetadata"]["RequestId"]
        time.sleep(1.5)
        assert not logged(cloud, name, tag)
    finally:
        stop_gateway(cloud)

    cloud = start_gateway(state)
    try:
        lam = lambda_client(cloud)
        lam.delete_function_concurrency(FunctionName=name)
        deadline = time.monotonic() + 60
        while not logged(cloud, name, tag) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a second run, if there were one, would have landed by now
        runs = cloud.client("logs").filter_log_events(logGroupName=f"/aws/lambda/{name}", filterPattern=tag)
        assert [event["message"].split()[-1] for event in runs["events"]] == [request_id]
    finally:
        stop_gateway(cloud)
