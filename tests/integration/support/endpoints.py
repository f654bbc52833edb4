"""SageMaker endpoints for tests: a tiny Kennel-packaged model, the create-model / endpoint-config /
endpoint steps every endpoint test repeats, waiting for InService, and reading the instances' logs.

The model is tiny (resnet18 at 32 px, 5 classes) so an instance starts in seconds on two cores.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import torch
from PIL import Image

from kennel.ml.artifact import ArtifactMeta, package_model, write_model_dir
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.transforms import Preprocess

ACCOUNT = "000000000000"
IMAGE = "pytorch-inference:2.0-cpu"
SAGEMAKER_ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
LABELS = [f"Breed {i}" for i in range(1, 6)]


def jpeg(color: tuple[int, int, int] = (200, 30, 30), size: tuple[int, int] = (48, 40)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, "JPEG")
    return buffer.getvalue()


def kennel_artifact(root: Path) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=5, head_hidden=(16,))
    meta = ArtifactMeta(
        model=cfg,
        preprocess=Preprocess(image_size=32),
        classes=[f"00{i}.Breed_{i}" for i in range(1, 6)],
        labels=LABELS,
    )
    return package_model(write_model_dir(root / "kennel", build_model(cfg), meta), root / "kennel.tar.gz")


def create_endpoint(
    sm,
    name: str,
    container: dict,
    *,
    role: str | None = None,
    count: int = 1,
    instance_type: str = "ml.m5.large",
    weight: float | None = None,
) -> str:
    """A model (``container`` is its PrimaryContainer), an endpoint config with one AllTraffic variant and an
    endpoint, all three called ``name``; ``role`` and ``weight`` are sent only when given."""
    sm.create_model(
        ModelName=name, PrimaryContainer=container, **({"ExecutionRoleArn": role} if role is not None else {})
    )
    variant = {"VariantName": "AllTraffic", "ModelName": name, "InitialInstanceCount": count,
               "InstanceType": instance_type}  # fmt: skip
    if weight is not None:
        variant["InitialVariantWeight"] = weight
    sm.create_endpoint_config(EndpointConfigName=name, ProductionVariants=[variant])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    return name


def wait_in_service(sm, name: str, *, delay: float = 1, attempts: int = 120) -> dict:
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": delay, "MaxAttempts": attempts}
    )
    return sm.describe_endpoint(EndpointName=name)


def serve(sm, name: str, container: dict, *, delay: float = 1, attempts: int = 120, **variant) -> str:
    """:func:`create_endpoint` (``variant``: its keyword arguments), then wait until it is InService."""
    create_endpoint(sm, name, container, **variant)
    wait_in_service(sm, name, delay=delay, attempts=attempts)
    return name


def deploy(sm, name: str, url: str, *, env: dict | None = None, count: int = 1) -> str:
    """The endpoint tests' usual deployment: the PyTorch image, SageMakerRole, weight 1 (not waited for)."""
    container = {"Image": IMAGE, "ModelDataUrl": url, "Environment": env or {}}
    return create_endpoint(sm, name, container, role=SAGEMAKER_ROLE, count=count, weight=1.0)


def log_lines(cloud, name: str) -> dict[str, list[str]]:
    """Every instance's log lines so far, by stream."""
    logs = cloud.client("logs")
    group = f"/aws/sagemaker/Endpoints/{name}"
    lines: dict[str, list[str]] = {}
    for stream in logs.describe_log_streams(logGroupName=group)["logStreams"]:
        events = logs.get_log_events(logGroupName=group, logStreamName=stream["logStreamName"])["events"]
        lines[stream["logStreamName"]] = [event["message"] for event in events]
    return lines


def wait_for_lines(cloud, name: str, streams: int, needle: str) -> dict[str, list[str]]:
    """Log lines reach CloudWatch Logs through a batched writer: wait until ``streams`` streams have one
    containing ``needle``."""
    deadline = time.monotonic() + 30
    while True:
        lines = log_lines(cloud, name)
        if (
            sum(any(needle in m for m in ms) for ms in lines.values()) >= streams
            or time.monotonic() > deadline
        ):
            return lines
        time.sleep(0.5)
