"""A Kennel-packaged model served by default: the fastest exact runtime, measured at load on each instance,
answering like eager PyTorch, from one ONNX export shared by every instance and a scale-out."""

from __future__ import annotations

import contextlib
import io
import json
import uuid

import numpy as np
import pytest
from botocore.exceptions import ClientError
from tests.integration.support.endpoints import (
    LABELS,
    deploy,
    jpeg,
    kennel_artifact,
    wait_for_lines,
    wait_in_service,
)
from tests.integration.support.roles import service_role

from kennel.ml.handler import ServingModel, serve_request
from kennel.ml.runtimes import load_predictor

EXACT = ("onnxruntime", "openvino-f32")
EXPORTED = "exported the model to ONNX"


@pytest.fixture(scope="module")
def endpoint(cloud, tmp_path_factory: pytest.TempPathFactory):
    service_role(cloud)
    root = tmp_path_factory.mktemp("runtime")
    tarball = kennel_artifact(root)
    sm = cloud.client("sagemaker")
    name = deploy(sm, f"Exact-{uuid.uuid4().hex[:6]}", str(tarball), count=2)  # no KENNEL_RUNTIME: default
    wait_in_service(sm, name)
    eager = ServingModel(predictor=load_predictor(root / "kennel", "torch"))
    yield {"name": name, "eager": eager}
    with contextlib.suppress(ClientError):
        sm.delete_endpoint(EndpointName=name)


def chosen_runtimes(lines: dict[str, list[str]]) -> list[str]:
    found = []
    for messages in lines.values():
        loaded = [m for m in messages if "kennel-model-server: loaded" in m]
        assert loaded, messages
        found.append(loaded[-1].split("(runtime ", 1)[1].split(" ", 1)[0])
    return found


def test_default_picks_an_exact_runtime_on_every_instance(cloud, endpoint) -> None:
    lines = wait_for_lines(cloud, endpoint["name"], 2, "kennel-model-server: loaded")
    assert len(lines) == 2
    assert all(runtime in EXACT for runtime in chosen_runtimes(lines)), lines
    for messages in lines.values():
        # The measured figures and the decision are in each instance's own log.
        assert any("runtime auto measured" in m and "serving" in m for m in messages), messages


def test_answers_match_eager_torch(cloud, endpoint) -> None:
    rt = cloud.client("sagemaker-runtime")
    eager: ServingModel = endpoint["eager"]
    rng = np.random.default_rng(1)
    for i in range(6):  # least-outstanding routing spreads these over both instances
        body = jpeg(color=tuple(int(c) for c in rng.integers(0, 255, 3)), size=(48 + i, 40))
        reply = rt.invoke_endpoint(EndpointName=endpoint["name"], Body=body, ContentType="image/jpeg")
        got = json.loads(reply["Body"].read())
        want = json.loads(serve_request(eager, body, "image/jpeg")[0])
        # The seeds' shape: one list of raw scores, one per class.
        assert isinstance(got, list) and len(got) == len(LABELS) and all(isinstance(v, float) for v in got)
        scale = max(1.0, max(abs(v) for v in want))
        assert np.max(np.abs(np.array(got) - np.array(want))) <= 1e-4 * scale
    batch = rng.standard_normal((3, 3, 32, 32)).astype(np.float32)
    buffer = io.BytesIO()
    np.save(buffer, batch)
    reply = rt.invoke_endpoint(
        EndpointName=endpoint["name"],
        Body=buffer.getvalue(),
        ContentType="application/x-npy",
        Accept="application/x-npy",
    )
    got = np.load(io.BytesIO(reply["Body"].read()))
    want = eager.predictor.predict(batch)
    assert got.shape == want.shape == (3, len(LABELS))
    assert float(np.max(np.abs(got - want))) <= 1e-4 * max(1.0, float(np.max(np.abs(want))))
    reply = rt.invoke_endpoint(
        EndpointName=endpoint["name"], Body=jpeg(), ContentType="image/jpeg", CustomAttributes="top_k=2"
    )
    rows = json.loads(reply["Body"].read())
    assert [sorted(row) for row in rows] == [["index", "label", "score"]] * 2  # Kennel's top-k shape
    assert rows[0]["label"] in LABELS


def test_the_export_is_made_once_for_the_instances_and_a_scale_out(cloud, endpoint) -> None:
    name = endpoint["name"]
    exports = list(cloud.state_dir.rglob(f"{name}-*.exports"))
    assert len(exports) == 1 and (exports[0] / "model.onnx").is_file()
    sm = cloud.client("sagemaker")
    sm.update_endpoint_weights_and_capacities(
        EndpointName=name,
        DesiredWeightsAndCapacities=[{"VariantName": "AllTraffic", "DesiredInstanceCount": 3}],
    )
    (variant,) = wait_in_service(sm, name)["ProductionVariants"]
    assert variant["CurrentInstanceCount"] == 3
    lines = wait_for_lines(cloud, name, 3, "kennel-model-server: loaded")
    assert len(lines) == 3
    assert all(runtime in EXACT for runtime in chosen_runtimes(lines))
    messages = [m for ms in lines.values() for m in ms]
    assert sum(EXPORTED in m for m in messages) == 1, [m for m in messages if "ONNX" in m]
    # The other two instances, the scale-out among them, found the export instead of making it.
    others = [ms for ms in lines.values() if not any(EXPORTED in m for m in ms)]
    assert len(others) == 2
    assert all(any("using the cached ONNX export" in m for m in ms) for ms in others)
    assert list(cloud.state_dir.rglob(f"{name}-*.exports")) == exports
    assert sorted(p.name for p in exports[0].glob("*.onnx")) == ["model.onnx"]
