"""KENNEL_PRECISION through a real endpoint: bf16 served where the gate passes (answers agree with
eager), refused where the logits are nearly tied, and with KENNEL_PRECISION_STRICT=true the endpoint
fails with the gate's figures as its FailureReason."""

from __future__ import annotations

import contextlib
import io
import uuid
from collections.abc import Iterator

import numpy as np
import pytest
import torch
from botocore.exceptions import ClientError, WaiterError
from tests.integration.sagemaker.endpoints.precision_models import SIZE, gate_model_dir
from tests.integration.support.endpoints import deploy, wait_for_lines, wait_in_service
from tests.integration.support.roles import service_role

from kennel.ml.artifact import package_model
from kennel.ml.runtimes import load_predictor
from kennel.ml.transforms import Preprocess, normalize


@pytest.fixture(scope="module")
def artifacts(cloud, tmp_path_factory: pytest.TempPathFactory) -> dict:
    service_role(cloud)
    root = tmp_path_factory.mktemp("precision")
    out = {}
    for kind in ("apart", "tied"):
        model_dir = gate_model_dir(root / kind, tied=kind == "tied")
        out[kind] = {"dir": model_dir, "tar": str(package_model(model_dir, root / f"{kind}.tar.gz"))}
    return out


def _batch() -> np.ndarray:
    pixels = np.random.default_rng(5).integers(0, 256, (4, 3, SIZE, SIZE), dtype=np.uint8)
    return normalize(torch.from_numpy(pixels), Preprocess(image_size=SIZE)).numpy()


def _invoke(runtime, name: str, batch: np.ndarray) -> np.ndarray:
    buffer = io.BytesIO()
    np.save(buffer, batch, allow_pickle=False)
    answer = runtime.invoke_endpoint(
        EndpointName=name, Body=buffer.getvalue(), ContentType="application/x-npy", Accept="application/x-npy"
    )
    return np.load(io.BytesIO(answer["Body"].read()))


@contextlib.contextmanager
def _endpoint(sm, prefix: str, tarball: str, env: dict[str, str]) -> Iterator[str]:
    """A deployed endpoint's name, deleted afterwards whatever the test found."""
    name = deploy(sm, f"{prefix}-{uuid.uuid4().hex[:6]}", tarball, env=env)
    try:
        yield name
    finally:
        with contextlib.suppress(ClientError):
            sm.delete_endpoint(EndpointName=name)


def _bf16_cpu() -> bool:
    with open("/proc/cpuinfo") as handle:
        return any(flag in handle.read() for flag in ("avx512_bf16", "amx_bf16"))


def test_gated_bf16_serves_and_agrees_with_eager(cloud, artifacts) -> None:
    if not _bf16_cpu():
        pytest.skip("no native bf16 on this CPU: the gate refuses bf16 (covered by the unit tests)")
    sm, runtime = cloud.client("sagemaker"), cloud.client("sagemaker-runtime")
    with _endpoint(sm, "Bf16", artifacts["apart"]["tar"], {"KENNEL_PRECISION": "bf16"}) as name:
        wait_in_service(sm, name)
        lines = wait_for_lines(cloud, name, 1, "precision gate passed")
        assert any(
            "serving openvino-bf16" in m and "agreement 100.0 %" in m for ms in lines.values() for m in ms
        )
        batch = _batch()
        served = _invoke(runtime, name, batch)
        eager = load_predictor(artifacts["apart"]["dir"], "torch").predict(batch)
        assert (served.argmax(1) == eager.argmax(1)).all()


def test_strict_gate_fails_the_endpoint_with_its_figures(cloud, artifacts) -> None:
    sm = cloud.client("sagemaker")
    env = {"KENNEL_PRECISION": "bf16", "KENNEL_PRECISION_STRICT": "true"}
    with _endpoint(sm, "Strict", artifacts["tied"]["tar"], env) as name:
        with contextlib.suppress(WaiterError):
            wait_in_service(sm, name)
        described = sm.describe_endpoint(EndpointName=name)
        assert described["EndpointStatus"] == "Failed"
        reason = described["FailureReason"]
        assert "precision gate refused bf16" in reason and "KENNEL_PRECISION_STRICT" in reason
        if _bf16_cpu():  # the figures themselves: the tied logits flip under bf16
            assert "agreement too low" in reason and "validation images" in reason


def test_without_strict_a_refused_gate_serves_exact(cloud, artifacts) -> None:
    sm, runtime = cloud.client("sagemaker"), cloud.client("sagemaker-runtime")
    with _endpoint(sm, "Soft", artifacts["tied"]["tar"], {"KENNEL_PRECISION": "bf16"}) as name:
        wait_in_service(sm, name)
        lines = wait_for_lines(cloud, name, 1, "precision gate refused bf16")
        assert any("precision gate refused bf16" in m for ms in lines.values() for m in ms)
        batch = _batch()
        eager = load_predictor(artifacts["tied"]["dir"], "torch").predict(batch)
        np.testing.assert_allclose(
            _invoke(runtime, name, batch), eager, rtol=0, atol=1e-4 * max(1, abs(eager).max())
        )
