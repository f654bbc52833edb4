"""Routing, capacity and failures on a two-variant endpoint served by a small scripted model.

The script (``transform_fn`` with a context) echoes CustomAttributes back, can sleep, fail with a
chosen status or crash, and says which process answered, so every case is driven by the request.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import tarfile
import threading
import time
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.sagemaker.endpoints.sandboxed import TOKEN_CODE, model_servers, token

ACCOUNT = "000000000000"
SCRIPT = (
    TOKEN_CODE
    + """
import json
import os
import time


class Refused(Exception):
    status_code = 400


def model_fn(model_dir):
    if os.environ.get("FAIL_TO_LOAD"):
        raise RuntimeError("cannot load weights: checksum mismatch")
    return {"pid": instance_token(), "tag": os.environ.get("VARIANT_TAG")}


def transform_fn(model, body, content_type, accept, context):
    request = json.loads(body or "{}")
    if request.get("sleep"):
        print("sleeping", request["sleep"], "tag", request.get("tag"), flush=True)
        time.sleep(request["sleep"])
    if request.get("refuse"):
        raise Refused("the request was refused: " + request["refuse"])
    if request.get("crash"):
        raise ZeroDivisionError("the model crashed")
    attributes = context.get_request_header(0, "X-Amzn-SageMaker-Custom-Attributes")
    if attributes:
        context.set_response_header(0, "X-Amzn-SageMaker-Custom-Attributes", "echo=" + attributes)
    print("answered", request, flush=True)
    return json.dumps(model), "application/json"
"""
)


def _artifact(root: Path) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(SCRIPT)
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        tar.add(root / "code", arcname="code")
    return root / "model.tar.gz"


def _model(sm, name: str, url: Path, **env: str) -> str:
    environment = {"SAGEMAKER_MODEL_SERVER_WORKERS": "2", **env}
    sm.create_model(ModelName=name, PrimaryContainer={"ModelDataUrl": str(url), "Environment": environment})
    return name


def _variant(name: str, model: str, count: int, weight: float) -> dict:
    return {
        "VariantName": name,
        "ModelName": model,
        "InitialInstanceCount": count,
        "InstanceType": "ml.t2.medium",
        "InitialVariantWeight": weight,
    }


def _wait(sm, name: str) -> dict:
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
    )
    return sm.describe_endpoint(EndpointName=name)


def _call(rt, name: str, request: dict, **kw) -> tuple[dict, dict]:
    reply = rt.invoke_endpoint(
        EndpointName=name, Body=json.dumps(request), ContentType="application/json", **kw
    )
    return json.loads(reply["Body"].read()), reply


def _pids(state_dir: Path, tag: str) -> set[int]:
    """Model-server processes of this gateway whose model environment says VARIANT_TAG=tag."""
    return model_servers(state_dir, f"VARIANT_TAG={tag}")


@pytest.fixture(scope="module")
def endpoint(cloud, tmp_path_factory: pytest.TempPathFactory):
    sm = cloud.client("sagemaker")
    suffix = uuid.uuid4().hex[:6]
    url = _artifact(tmp_path_factory.mktemp("scripted"))
    a = _model(sm, f"a-{suffix}", url, VARIANT_TAG=f"a-{suffix}")
    b = _model(sm, f"b-{suffix}", url, VARIANT_TAG=f"b-{suffix}")
    name = f"faults-{suffix}"
    variants = [_variant("A", a, 1, 1.0), _variant("B", b, 1, 0.0)]
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=variants)
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    _wait(sm, name)
    yield {"name": name, "a": a, "b": b, "url": url, "suffix": suffix}
    with contextlib.suppress(ClientError):
        sm.delete_endpoint(EndpointName=name)


def test_custom_attributes_travel_both_ways_and_target_variant_picks(cloud, endpoint) -> None:
    rt = cloud.client("sagemaker-runtime")
    body, reply = _call(rt, endpoint["name"], {}, CustomAttributes="trace=abc", TargetVariant="B")
    assert reply["CustomAttributes"] == "echo=trace=abc"
    assert reply["InvokedProductionVariant"] == "B" and body["tag"] == endpoint["b"]
    with pytest.raises(ClientError) as unknown:
        _call(rt, endpoint["name"], {}, TargetVariant="C")
    assert unknown.value.response["Error"]["Code"] == "ValidationError"
    assert 'The variant "C" does not exist' in unknown.value.response["Error"]["Message"]


def test_weights_route_traffic_and_capacity_changes_apply(cloud, endpoint) -> None:
    sm, rt = cloud.client("sagemaker"), cloud.client("sagemaker-runtime")
    name = endpoint["name"]
    assert {_call(rt, name, {})[1]["InvokedProductionVariant"] for _ in range(10)} == {"A"}  # B weighs 0
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[
            {"VariantName": "A", "DesiredWeight": 0.0},
            {"VariantName": "B", "DesiredWeight": 1.0, "DesiredInstanceCount": 2},
        ],
    )
    assert sm.describe_endpoint(EndpointName=name)["EndpointStatus"] == "Updating"
    variants = {v["VariantName"]: v for v in _wait(sm, name)["ProductionVariants"]}
    assert (variants["B"]["CurrentInstanceCount"], variants["B"]["DesiredInstanceCount"]) == (2, 2)
    assert (variants["A"]["CurrentWeight"], variants["B"]["CurrentWeight"]) == (0.0, 1.0)
    answers = [_call(rt, name, {}) for _ in range(12)]
    assert {reply["InvokedProductionVariant"] for _, reply in answers} == {"B"}
    assert len({body["pid"] for body, _ in answers}) == 2  # both B instances take a share
    with pytest.raises(ClientError, match=r'variant\(s\) "\[Z\]" is/are not present'):
        sm.update_endpoint_weights_and_capacities(
            EndpointName=name, DesiredWeightsAndCapacities=[{"VariantName": "Z", "DesiredWeight": 1.0}]
        )


def test_model_errors_carry_the_original_status(cloud, endpoint) -> None:
    rt = cloud.client("sagemaker-runtime")
    with pytest.raises(ClientError) as refused:
        _call(rt, endpoint["name"], {"refuse": "no dogs today"})
    error = refused.value.response
    assert (error["Error"]["Code"], error["ResponseMetadata"]["HTTPStatusCode"]) == ("ModelError", 424)
    assert (error["OriginalStatusCode"], error["OriginalMessage"]) == (
        400,
        "the request was refused: no dogs today",
    )
    with pytest.raises(ClientError) as crashed:
        _call(rt, endpoint["name"], {"crash": True})
    error = crashed.value.response
    assert (
        error["OriginalStatusCode"] == 500
        and "ZeroDivisionError: the model crashed" in error["OriginalMessage"]
    )
    assert "Traceback" in error["OriginalMessage"]
    assert error["Error"]["Message"].startswith("Received server error (500) from primary")


def test_a_killed_instance_fails_its_requests_only_and_is_replaced(cloud, endpoint) -> None:
    sm, rt, logs = cloud.client("sagemaker"), cloud.client("sagemaker-runtime"), cloud.client("logs")
    name = endpoint["name"]
    before = _pids(cloud.state_dir, endpoint["b"])
    assert len(before) == 2
    outcomes: list = []

    tag = uuid.uuid4().hex[:8]

    def slow() -> None:
        client = cloud.client("sagemaker-runtime")
        try:
            outcomes.append(_call(client, name, {"sleep": 3, "tag": tag}, TargetVariant="B")[0]["pid"])
        except ClientError as exc:
            outcomes.append(exc.response)

    threads = [threading.Thread(target=slow) for _ in range(2)]
    for thread in threads:
        thread.start()
    group = f"/aws/sagemaker/Endpoints/{name}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:  # until both are in flight, one per B instance (fewest in flight wins)
        started = logs.filter_log_events(logGroupName=group, filterPattern=tag)["events"]
        if len({e["logStreamName"] for e in started}) == 2:
            break
        time.sleep(0.1)
    victim = min(before)
    os.kill(victim, signal.SIGKILL)
    assert _call(rt, name, {}, TargetVariant="A")[1]["InvokedProductionVariant"] == "A"  # others unaffected
    for thread in threads:
        thread.join(30)
    failed = [o for o in outcomes if isinstance(o, dict)]
    assert len(failed) == 1 and [o for o in outcomes if isinstance(o, str)] == [
        token(p) for p in before - {victim}
    ]
    assert failed[0]["Error"]["Code"] == "ModelError"
    assert "exited with code -9" in failed[0]["Error"]["Message"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        variant = {
            v["VariantName"]: v for v in sm.describe_endpoint(EndpointName=name)["ProductionVariants"]
        }["B"]
        if variant["CurrentInstanceCount"] == 2 and len(_pids(cloud.state_dir, endpoint["b"])) == 2:
            break
        time.sleep(0.5)
    after = _pids(cloud.state_dir, endpoint["b"])
    assert len(after) == 2 and victim not in after
    assert {_call(rt, name, {}, TargetVariant="B")[0]["pid"] for _ in range(8)} <= {token(p) for p in after}
    notes = logs.filter_log_events(logGroupName=group, filterPattern="replacement")["events"]
    assert any("exited with code -9; starting a replacement" in e["message"] for e in notes)


def test_a_model_that_cannot_load_fails_the_endpoint(cloud, endpoint) -> None:
    sm, rt = cloud.client("sagemaker"), cloud.client("sagemaker-runtime")
    broken = _model(sm, f"broken-{endpoint['suffix']}", endpoint["url"], FAIL_TO_LOAD="1")
    sm.create_endpoint_config(
        EndpointConfigName=broken, ProductionVariants=[_variant("AllTraffic", broken, 1, 1)]
    )
    sm.create_endpoint(EndpointName=broken, EndpointConfigName=broken)
    try:
        with pytest.raises(Exception, match="Failed"):
            _wait(sm, broken)
        described = sm.describe_endpoint(EndpointName=broken)
        assert described["EndpointStatus"] == "Failed"
        assert "cannot load weights: checksum mismatch" in described["FailureReason"]
        assert "Variant AllTraffic" in described["FailureReason"]
        with pytest.raises(ClientError, match="is not in service"):
            _call(rt, broken, {})
        with pytest.raises(ClientError, match="Cannot update in-progress endpoint"):
            sm.update_endpoint(EndpointName=broken, EndpointConfigName=endpoint["name"])
    finally:
        sm.delete_endpoint(EndpointName=broken)
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName=broken)


def test_more_instances_than_the_machine_may_host_are_refused(cloud, endpoint) -> None:
    sm = cloud.client("sagemaker")
    big = f"big-{endpoint['suffix']}"
    sm.create_endpoint_config(
        EndpointConfigName=big, ProductionVariants=[_variant("AllTraffic", endpoint["a"], 50, 1)]
    )
    with pytest.raises(ClientError) as refused:
        sm.create_endpoint(EndpointName=big, EndpointConfigName=big)
    assert refused.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert "at most 8 model-server instances" in refused.value.response["Error"]["Message"]
    with pytest.raises(ClientError, match="Could not find endpoint"):
        sm.describe_endpoint(EndpointName=big)
    with pytest.raises(ClientError) as scaled:
        sm.update_endpoint_weights_and_capacities(
            EndpointName=endpoint["name"],
            DesiredWeightsAndCapacities=[{"VariantName": "A", "DesiredInstanceCount": 40}],
        )
    assert scaled.value.response["Error"]["Code"] == "ResourceLimitExceeded"
    assert sm.describe_endpoint(EndpointName=endpoint["name"])["EndpointStatus"] == "InService"
