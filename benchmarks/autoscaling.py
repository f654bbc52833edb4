"""Endpoint autoscaling under a step load, on a compressed clock, through boto3 only.

A gateway runs with ``KENNEL_TIME_SCALE`` (default 1: one simulated minute per real second) and serves a
tiny ResNet-18 (32 px) endpoint registered with Application Auto Scaling (min 1, max 3) and a
target-tracking policy on SageMakerVariantInvocationsPerInstance. Threads offer a paced step load, then
stop. Figures, all measured in this run:

- detection: from the end of the third high datapoint (3 of 3 periods above the target) to the scaling
  activity's start, and from there to the new instances serving traffic (CurrentInstanceCount rising);
  the ratio of that scale-out to a cold CreateEndpoint of one instance, measured first as the baseline;
- scale-in: from the load's end to the variant back at its minimum, and the requests that failed while
  instances were being drained and stopped (the target is zero) — and over the whole run;
- a timeline PNG (offered load, InvocationsPerInstance, target, instance counts, activities).

    python benchmarks/autoscaling.py [--time-scale 1] [--rate 30] [--target 10] [--out runs/autoscaling]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.demo.loadtest import Clients, StepLoad, step_load
from kennel.demo.timeline import plot
from kennel.ml.artifact import ArtifactMeta, package_model, write_model_dir
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.transforms import Preprocess
from kennel.settings import Settings


def artifact(root: Path) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone="resnet18", num_classes=5, head_hidden=(16,))
    meta = ArtifactMeta(
        model=cfg,
        preprocess=Preprocess(image_size=32),
        classes=[f"00{i}.Breed_{i}" for i in range(1, 6)],
        labels=[f"Breed {i}" for i in range(1, 6)],
    )
    return package_model(write_model_dir(root / "model", build_model(cfg), meta), root / "model.tar.gz")


def deploy(sm, name: str, model_data: Path) -> float:
    """Create the endpoint; returns how long it took to be InService (the cold-start baseline)."""
    sm.create_model(
        ModelName=name,
        PrimaryContainer={"Image": "pytorch-inference:2.0-cpu", "ModelDataUrl": str(model_data)},
        ExecutionRoleArn="arn:aws:iam::000000000000:role/Sm",
    )
    sm.create_endpoint_config(
        EndpointConfigName=name,
        ProductionVariants=[
            {
                "VariantName": "AllTraffic",
                "ModelName": name,
                "InitialInstanceCount": 1,
                "InstanceType": "ml.m5.large",
            }
        ],
    )
    started = time.time()
    sm.create_endpoint(EndpointName=name, EndpointConfigName=name)
    sm.get_waiter("endpoint_in_service").wait(
        EndpointName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 900}
    )
    return time.time() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=1.0, help="real seconds per simulated minute")
    parser.add_argument(
        "--rate", type=float, default=30.0, help="offered requests per second during the step"
    )
    parser.add_argument("--threads", type=int, default=6)
    parser.add_argument(
        "--target", type=float, default=10.0, help="InvocationsPerInstance target (per period)"
    )
    parser.add_argument("--max", type=int, default=3)
    parser.add_argument("--hold-s", type=float, default=8.0, help="load kept on after reaching the maximum")
    parser.add_argument("--out", type=Path, default=Path("runs/autoscaling"))
    args = parser.parse_args()
    period_s = max(1, round(args.time_scale))
    console = Console()
    os.environ["KENNEL_TIME_SCALE"] = str(args.time_scale)  # the gateway below reads it at start-up
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        settings = Settings(
            state_dir=root / "state",
            port=server.free_port(),
            time_scale_s=args.time_scale,
            allow_local_model_data=(root,),  # the model.tar.gz is built under this directory
        )
        running = server.start_detached(settings, follow_caller=True)
        try:
            creds = admin_credentials(settings)
            assert creds is not None
            clients = Clients(settings.endpoint_url, creds.access_key_id, creds.secret_access_key)
            name = "autoscaling-bench"
            # SageMaker refuses an execution role that is missing or does not trust it, as AWS does.
            trust = {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"},
                     "Action": "sts:AssumeRole"}  # fmt: skip
            clients("iam").create_role(
                RoleName="Sm",
                AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": [trust]}),
            )
            cold = deploy(clients("sagemaker"), name, artifact(root))
            console.print(f"cold start {cold:.1f} s")
            plan = StepLoad(
                rate=args.rate, threads=args.threads, target=args.target, max=args.max, hold_s=args.hold_s
            )
            report = step_load(clients, name, plan, period_s, console, cold=cold)
        finally:
            server.stop_pid(running.pid)
    path = plot(
        report.pop("timeline"),
        args.out / "timeline.png",
        title=f"Step load {args.rate:g} req/s, target {args.target:g} per instance per period "
        f"({args.time_scale:g} s per simulated minute)",
    )
    table = Table(title="Endpoint autoscaling (ResNet-18, 32 px, CPU)")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for name, value in report.items():
        table.add_row(name, value)
    console.print(table)
    console.print(f"timeline: {path}")


if __name__ == "__main__":
    main()
