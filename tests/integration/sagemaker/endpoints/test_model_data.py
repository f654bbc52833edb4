"""ModelDataUrl like AWS: s3:// or https://; local paths only inside KENNEL_ALLOW_LOCAL_MODEL_DATA;
archives extracted within limits, a decompression bomb failing its endpoint fast with a clear reason."""

from __future__ import annotations

import contextlib
import gzip
import io
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.conftest import LiveCloud, start_gateway, stop_gateway
from tests.integration.support.endpoints import create_endpoint

pytestmark = pytest.mark.timeout(300)

SCRIPT = """
import json


def model_fn(model_dir):
    return {"loaded": True}


def transform_fn(model, body, content_type, accept, context):
    return json.dumps(model), "application/json"
"""


def _error(call, **kwargs) -> dict:
    with pytest.raises(ClientError) as failed:
        call(**kwargs)
    return failed.value.response["Error"]


def artifact(root: Path) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(SCRIPT)
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        tar.add(root / "code", arcname="code")
    return root / "model.tar.gz"


def bomb(path: Path, expanded: int = 1 << 30) -> Path:
    """A model.tar.gz of about 1 MB that expands to ``expanded`` bytes of zeros.

    Built from concatenated gzip members (valid gzip: readers go on to the next member), so making
    it costs one compression of 1 MiB rather than of the whole gigabyte."""
    header = tarfile.TarInfo("model.pth")
    header.size = expanded
    chunk = gzip.compress(b"\0" * (1 << 20), compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(header.tobuf(format=tarfile.GNU_FORMAT)))
        for _ in range(expanded >> 20):
            out.write(chunk)
        out.write(gzip.compress(b"\0" * 1024))  # end-of-archive blocks
    return path


def deploy(sm, name: str, url: str) -> None:
    container = {"Image": "pytorch-inference:2.0-cpu", "ModelDataUrl": url}
    create_endpoint(sm, name, container, instance_type="ml.t2.medium")


def settled(sm, name: str, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        described = sm.describe_endpoint(EndpointName=name)
        if described["EndpointStatus"] not in ("Creating", "Updating"):
            return described
        time.sleep(0.2)
    raise AssertionError(f"{name} still {described['EndpointStatus']}")


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    """A gateway with the default settings: no local model data at all."""
    live = start_gateway(
        tmp_path_factory.mktemp("strict") / "state", extra_env={"KENNEL_ALLOW_LOCAL_MODEL_DATA": ""}
    )
    yield live
    stop_gateway(live)


def test_local_paths_are_refused_by_default(strict: LiveCloud, tmp_path: Path) -> None:
    sm = strict.client("sagemaker")
    model = artifact(tmp_path)
    for url in ("file:///etc/hostname", "/etc/hostname", f"file://{model}", str(model)):
        error = _error(sm.create_model, ModelName=f"m-{uuid.uuid4().hex[:6]}",
                       PrimaryContainer={"Image": "img", "ModelDataUrl": url})  # fmt: skip
        assert error["Code"] == "ValidationException", (url, error)
        # AWS's own answer: the URL does not match the shape's pattern (s3:// or https:// only).
        assert (
            "failed to satisfy constraint: Member must satisfy regular expression pattern" in error["Message"]
        )
    # https:// is accepted at CreateModel (it is fetched, from public addresses only, at deployment).
    name = f"web-{uuid.uuid4().hex[:6]}"
    sm.create_model(
        ModelName=name, PrimaryContainer={"Image": "img", "ModelDataUrl": "https://example.com/m.tar.gz"}
    )
    assert (
        sm.describe_model(ModelName=name)["PrimaryContainer"]["ModelDataUrl"]
        == "https://example.com/m.tar.gz"
    )


def test_https_model_data_on_a_private_address_fails_the_endpoint(strict: LiveCloud) -> None:
    sm = strict.client("sagemaker")
    name = f"ssrf-{uuid.uuid4().hex[:6]}"
    deploy(sm, name, f"https://127.0.0.1:{strict.endpoint.rsplit(':', 1)[1]}/model.tar.gz")
    try:
        described = settled(sm, name)
        assert described["EndpointStatus"] == "Failed"
        assert (
            "loopback" in described["FailureReason"]
            and "Could not access model data" in described["FailureReason"]
        )
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_local_paths_only_inside_the_allowed_directories(cloud: LiveCloud, tmp_path: Path) -> None:
    sm = cloud.client("sagemaker")
    model = artifact(tmp_path / "ok")
    (tmp_path / "link.tar.gz").symlink_to("/etc/hostname")
    refused = {
        "file:///etc/hostname": "is outside the directories",
        "/etc/hostname": "is outside the directories",
        f"{tmp_path}/../../../../etc/hostname": "must not contain '..'",
        f"file://{tmp_path}/ok/../ok/model.tar.gz": "must not contain '..'",
        str(tmp_path / "link.tar.gz"): "is outside the directories",  # resolved before the check
        "file://localhost/etc/hostname": "must be an absolute path",
    }
    for url, reason in refused.items():
        error = _error(sm.create_model, ModelName=f"m-{uuid.uuid4().hex[:6]}",
                       PrimaryContainer={"Image": "img", "ModelDataUrl": url})  # fmt: skip
        assert error["Code"] == "ValidationException" and reason in error["Message"], (url, error)

    name = f"local-{uuid.uuid4().hex[:6]}"
    deploy(sm, name, f"file://{model}")
    try:
        described = settled(sm, name)
        assert described["EndpointStatus"] == "InService", described.get("FailureReason")
        reply = cloud.client("sagemaker-runtime").invoke_endpoint(EndpointName=name, Body=b"{}",
                                                                  ContentType="application/json")  # fmt: skip
        assert reply["Body"].read() == b'{"loaded": true}'
    finally:
        sm.delete_endpoint(EndpointName=name)


def test_an_archive_bomb_fails_the_endpoint_fast(cloud: LiveCloud, tmp_path: Path) -> None:
    sm = cloud.client("sagemaker")
    archive = bomb(tmp_path / "model.tar.gz")
    assert archive.stat().st_size < 4 << 20
    name = f"bomb-{uuid.uuid4().hex[:6]}"
    models = cloud.state_dir / "sagemaker" / "models"
    # The session's gateway serves other tests' models too: count only what this deployment adds.
    before = sum(p.stat().st_size for p in models.rglob("*") if p.is_file()) if models.exists() else 0
    started = time.monotonic()
    deploy(sm, name, str(archive))
    try:
        described = settled(sm, name)
        elapsed = time.monotonic() - started
        assert described["EndpointStatus"] == "Failed"
        reason = described["FailureReason"]
        assert "exceeds Kennel's extraction limits" in reason and "times its size" in reason, reason
        assert elapsed < 30, elapsed
        written = sum(p.stat().st_size for p in models.rglob("*") if p.is_file()) - before
        assert written < 100 << 20  # refused from its header: nothing near a gigabyte was written
    finally:
        with contextlib.suppress(ClientError):
            sm.delete_endpoint(EndpointName=name)


def test_too_many_members_fail_the_endpoint(cloud: LiveCloud, tmp_path: Path) -> None:
    sm = cloud.client("sagemaker")
    archive = tmp_path / "model.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        for index in range(10_001):
            tar.addfile(tarfile.TarInfo(f"f/{index}"), io.BytesIO(b""))
    name = f"many-{uuid.uuid4().hex[:6]}"
    deploy(sm, name, str(archive))
    try:
        described = settled(sm, name)
        assert described["EndpointStatus"] == "Failed"
        assert "more than the limit of 10000 members" in described["FailureReason"]
    finally:
        with contextlib.suppress(ClientError):
            sm.delete_endpoint(EndpointName=name)
