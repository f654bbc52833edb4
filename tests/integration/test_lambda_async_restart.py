"""Asynchronous invocations are durable: an event accepted (202) but not yet run survives a restart
of the gateway and runs afterwards, exactly once."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.integration.conftest import start_gateway, stop_gateway
from tests.integration.test_lambda_support import create, lambda_client, make_role, package

pytestmark = pytest.mark.timeout(240)

WRITER = """
import json, os

def handler(event, context):
    with open(event["path"], "a") as out:
        out.write(context.aws_request_id + "\\n")
    return "written"
"""


def test_queued_event_survives_a_restart(tmp_path: Path) -> None:
    state, marker = tmp_path / "state", tmp_path / "ran.txt"
    cloud = start_gateway(state)
    try:
        lam = lambda_client(cloud)
        name = create(lam, make_role(cloud), zip=package(WRITER))
        lam.get_waiter("function_active_v2").wait(FunctionName=name)
        # Reserved concurrency 0 throttles every attempt: the event waits in the queue, backing off.
        lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=0)
        accepted = lam.invoke(
            FunctionName=name, InvocationType="Event", Payload=json.dumps({"path": str(marker)}).encode()
        )
        assert accepted["StatusCode"] == 202
        request_id = accepted["ResponseMetadata"]["RequestId"]
        time.sleep(1.5)
        assert not marker.exists()
    finally:
        stop_gateway(cloud)

    cloud = start_gateway(state)
    try:
        lam = lambda_client(cloud)
        lam.delete_function_concurrency(FunctionName=name)
        deadline = time.monotonic() + 60
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # a second run, if there were one, would have landed by now
        assert marker.read_text().splitlines() == [request_id]
    finally:
        stop_gateway(cloud)
