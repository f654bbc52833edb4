"""`kennel down && kennel up` keeps endpoints: their instances stop with the gateway and come back."""

from __future__ import annotations

import json
import os
import tarfile
import time
from pathlib import Path

from tests.integration.conftest import start_gateway, stop_gateway
from tests.integration.sagemaker.endpoints.sandboxed import TOKEN_CODE, model_servers, token
from tests.integration.support.endpoints import serve

SCRIPT = (
    TOKEN_CODE
    + """
import json, os

def model_fn(model_dir):
    return instance_token()

def transform_fn(pid, body, content_type, accept):
    return json.dumps({"pid": pid, "echo": json.loads(body)}), "application/json"
"""
)


def _instances(state_dir: Path) -> set[str | None]:
    """The running model servers, by the token each wrote (see ``sandboxed.py``)."""
    return {token(pid) for pid in model_servers(state_dir)}


def _invoke(cloud, name: str) -> dict:
    reply = cloud.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=name, Body=json.dumps({"n": 1}), ContentType="application/json"
    )
    return json.loads(reply["Body"].read())


def test_endpoints_survive_a_restart(tmp_path: Path) -> None:
    code = tmp_path / "model" / "code"
    code.mkdir(parents=True)
    (code / "inference.py").write_text(SCRIPT)
    with tarfile.open(tmp_path / "model.tar.gz", "w:gz") as tar:
        tar.add(code, arcname="code")
    state = tmp_path / "state"
    cloud = start_gateway(state)
    try:
        sm = cloud.client("sagemaker")
        container = {"ModelDataUrl": str(tmp_path / "model.tar.gz")}
        serve(sm, "echo", container, instance_type="ml.t2.medium", attempts=60)
        first = _invoke(cloud, "echo")["pid"]
        assert _instances(state) == {first}
        # Deleting the config and the model must not matter: the endpoint keeps what it deployed.
        sm.delete_endpoint_config(EndpointConfigName="echo")
        sm.delete_model(ModelName="echo")
    finally:
        stop_gateway(cloud)
    deadline = time.monotonic() + 10
    while _instances(state) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _instances(state) == set()  # the instances went down with the gateway
    cloud = start_gateway(state)
    try:
        sm = cloud.client("sagemaker")
        assert sm.describe_endpoint(EndpointName="echo")["EndpointStatus"] in ("SystemUpdating", "InService")
        sm.get_waiter("endpoint_in_service").wait(
            EndpointName="echo", WaiterConfig={"Delay": 1, "MaxAttempts": 60}
        )
        described = sm.describe_endpoint(EndpointName="echo")
        assert described["ProductionVariants"][0]["CurrentInstanceCount"] == 1
        answer = _invoke(cloud, "echo")
        assert answer["echo"] == {"n": 1} and answer["pid"] != first and answer["pid"] in _instances(state)
        sm.delete_endpoint(EndpointName="echo")
        deadline = time.monotonic() + 10
        while _instances(state) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _instances(state) == set()
    finally:
        stop_gateway(cloud)
        for pid in model_servers(state):
            os.kill(pid, 9)
