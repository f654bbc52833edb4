"""Lambda over time, on a gateway of its own where one simulated minute lasts 0.3 s: asynchronous
retries, idle environments reaped, and functions surviving a restart of the gateway."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from tests.integration.conftest import start_gateway, stop_gateway
from tests.integration.support.lambda_functions import (
    REPORT,
    call,
    create,
    lambda_client,
    logged,
    make_role,
    tail,
    unique,
)

MINUTE_S = 0.3
IDLE_S = 10 * MINUTE_S  # the provider keeps idle environments for 10 simulated minutes


class Gateway:
    """The module's gateway; the restart test replaces it with a new process on the same state."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.live = self._start()

    def _start(self):
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("KENNEL_TIME_SCALE", str(MINUTE_S))
            return start_gateway(self.state)

    def restart(self) -> None:
        stop_gateway(self.live)
        self.live = self._start()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    holder = Gateway(tmp_path_factory.mktemp("lambda-time") / "state")
    yield holder
    stop_gateway(holder.live)


@pytest.fixture(scope="module")
def role(gateway) -> str:
    return make_role(gateway.live)


def attempts(gateway: Gateway, function: str, tag: str) -> list[float]:
    """When the function logged an attempt of the event tagged ``tag``."""
    return logged(gateway.live, function, f"attempt {tag}")


def wait_for(predicate, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def test_async_event_is_retried_after_a_failure(gateway, role) -> None:
    lam = lambda_client(gateway.live)
    name, tag = create(lam, role), unique("event")
    event = json.dumps({"op": "flaky", "tag": tag, "fail": 1}).encode()
    accepted = lam.invoke(FunctionName=name, InvocationType="Event", Payload=event)
    assert accepted["StatusCode"] == 202
    assert wait_for(lambda: len(attempts(gateway, name, tag)) == 2, 20 * MINUTE_S + 5)
    first, second = attempts(gateway, name, tag)
    assert second - first >= 0.8 * MINUTE_S  # the first retry waits one simulated minute
    time.sleep(3 * MINUTE_S)
    assert len(attempts(gateway, name, tag)) == 2  # it succeeded: no more attempts


def test_retry_attempts_follow_the_event_invoke_config(gateway, role) -> None:
    lam = lambda_client(gateway.live)
    name = create(lam, role)
    defaults, limited = unique("defaults"), unique("limited")
    lam.invoke(FunctionName=name, InvocationType="Event",
               Payload=json.dumps({"op": "flaky", "tag": defaults, "fail": 9}).encode())  # fmt: skip
    # the call and two retries
    assert wait_for(lambda: len(attempts(gateway, name, defaults)) == 3, 20 * MINUTE_S + 5)

    config = lam.put_function_event_invoke_config(FunctionName=name, MaximumRetryAttempts=0)
    assert config["MaximumRetryAttempts"] == 0 and config["FunctionArn"].endswith(f"{name}:$LATEST")
    assert lam.get_function_event_invoke_config(FunctionName=name)["MaximumRetryAttempts"] == 0
    lam.invoke(FunctionName=name, InvocationType="Event",
               Payload=json.dumps({"op": "flaky", "tag": limited, "fail": 9}).encode())  # fmt: skip
    assert wait_for(lambda: len(attempts(gateway, name, limited)) == 1, 10)
    time.sleep(4 * MINUTE_S)
    assert len(attempts(gateway, name, limited)) == 1 and len(attempts(gateway, name, defaults)) == 3
    lam.delete_function_event_invoke_config(FunctionName=name)
    with pytest.raises(lam.exceptions.ResourceNotFoundException):
        lam.get_function_event_invoke_config(FunctionName=name)


def test_idle_environments_are_reaped(gateway, role) -> None:
    lam = lambda_client(gateway.live)
    name = create(lam, role)
    cold = call(lam, name, {"op": "count"}, LogType="Tail")[0]
    warm, body = call(lam, name, {"op": "count"}, LogType="Tail")
    assert REPORT.match(tail(cold)[-1]).group("init") and body == {"count": 2}
    assert REPORT.match(tail(warm)[-1]).group("init") is None
    time.sleep(IDLE_S + 1.5)
    again, body = call(lam, name, {"op": "count"}, LogType="Tail")
    assert body == {"count": 1} and REPORT.match(tail(again)[-1]).group("init")


def test_functions_survive_a_restart(gateway, role) -> None:
    lam = lambda_client(gateway.live)
    name = create(lam, role, Environment={"Variables": {"GREETING": "again"}})
    version = lam.publish_version(FunctionName=name)["Version"]
    lam.create_alias(FunctionName=name, Name="live", FunctionVersion=version)
    lam.put_function_concurrency(FunctionName=name, ReservedConcurrentExecutions=3)
    lam.put_provisioned_concurrency_config(
        FunctionName=name, Qualifier="live", ProvisionedConcurrentExecutions=1
    )
    lam.add_permission(FunctionName=name, StatementId="anyone-here", Action="lambda:InvokeFunction",
                       Principal="000000000000")  # fmt: skip
    before = lam.get_function(FunctionName=name)["Configuration"]

    gateway.restart()
    lam = lambda_client(gateway.live)
    after = lam.get_function(FunctionName=name)["Configuration"]
    assert {k: after[k] for k in ("CodeSha256", "RevisionId", "Environment")} == {
        k: before[k] for k in ("CodeSha256", "RevisionId", "Environment")
    }
    assert lam.get_alias(FunctionName=name, Name="live")["FunctionVersion"] == version
    assert lam.get_function_concurrency(FunctionName=name)["ReservedConcurrentExecutions"] == 3
    assert "anyone-here" in lam.get_policy(FunctionName=name)["Policy"]
    assert wait_for(
        lambda: (
            lam.get_provisioned_concurrency_config(FunctionName=name, Qualifier="live")["Status"] == "READY"
        ),
        30,
    )
    response, body = call(lam, name, {"op": "context"}, Qualifier="live", LogType="Tail")
    assert body["env"]["GREETING"] == "again" and body["env"]["AWS_ENDPOINT_URL"] == gateway.live.endpoint
    assert REPORT.match(tail(response)[-1]).group("init") is None  # served by the re-provisioned environment
