"""Helpers for tuning-job tests: a quick script whose loss is a known function of its hyperparameters
(printed per epoch), a CreateHyperParameterTuningJob request shaped as the SDK sends it, waiting."""

from __future__ import annotations

import json

from tests.integration.support.training import job_request, poll, upload_code

BUCKET = "sagemaker-tuning-tests"
METRICS = [{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}]
TERMINAL = {"Completed", "Failed", "Stopped"}

# loss = 10 (x - 0.3)^2 + 0.1 (log10 lr + 2)^2 + |depth - 4| / 20 + optimiser penalty + 1 / epoch
QUADRATIC = r"""
import argparse, math, time
p = argparse.ArgumentParser()
p.add_argument("-x", "--x", type=float, default=0.5)  # the toolkit passes one-letter names as -x
p.add_argument("--lr", type=float, default=0.01)
p.add_argument("--depth", type=int, default=3)
p.add_argument("--opt", type=str, default="sgd")
p.add_argument("--epochs", type=int, default=3)
p.add_argument("--sleep", type=float, default=0.0)
args, _ = p.parse_known_args()
base = (10 * (args.x - 0.3) ** 2 + 0.1 * (math.log10(args.lr) + 2) ** 2 + abs(args.depth - 4) / 20
        + {"adam": 0.0, "sgd": 0.2}.get(args.opt, 0.5))
for epoch in range(1, args.epochs + 1):
    time.sleep(args.sleep)
    print(f"epoch {epoch}: Testing Loss: {base + 1.0 / epoch:.6f}", flush=True)
"""

X_RANGE = {"Name": "x", "MinValue": "0", "MaxValue": "1", "ScalingType": "Linear"}
LR_RANGE = {"Name": "lr", "MinValue": "0.0001", "MaxValue": "0.1", "ScalingType": "Auto"}
DEPTH_RANGE = {"Name": "depth", "MinValue": "1", "MaxValue": "8", "ScalingType": "Auto"}
OPT_RANGE = {"Name": "opt", "Values": ['"adam"', '"sgd"', '"rmsprop"']}


def ranges(continuous=(), integer=(), categorical=()) -> dict:
    return {
        "IntegerParameterRanges": list(integer),
        "ContinuousParameterRanges": list(continuous),
        "CategoricalParameterRanges": list(categorical),
    }


def definition(role: str, code_uri: str, static: dict | None = None) -> dict:
    """A HyperParameterTrainingJobDefinition as the SDK builds it from an estimator."""
    job = job_request(
        "unused", role, BUCKET, code_uri, hyperparameters=static or {}, metric_definitions=METRICS
    )
    hps = job["HyperParameters"]
    hps.pop("sagemaker_job_name")
    algorithm = {
        k: v for k, v in job["AlgorithmSpecification"].items() if k != "EnableSageMakerMetricsTimeSeries"
    }
    return {
        "StaticHyperParameters": hps,
        "AlgorithmSpecification": algorithm,
        "RoleArn": role,
        "OutputDataConfig": job["OutputDataConfig"],
        "HyperParameterTuningResourceConfig": {
            "InstanceCount": 1, "InstanceType": "ml.m5.xlarge", "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": 600},
    }  # fmt: skip


def tuning_request(
    name: str, role: str, code_uri: str, *, strategy: str = "Bayesian", max_jobs: int | None = 3,
    parallel: int = 2, parameter_ranges: dict | None = None, static: dict | None = None,
    objective: str = "Minimize", **config,
) -> dict:  # fmt: skip
    limits = {"MaxParallelTrainingJobs": parallel}
    if max_jobs is not None:
        limits["MaxNumberOfTrainingJobs"] = max_jobs
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": strategy,
            "ResourceLimits": limits,
            "TrainingJobEarlyStoppingType": config.pop("early_stopping", "Off"),
            "HyperParameterTuningJobObjective": {"Type": objective, "MetricName": "Test Loss"},
            "ParameterRanges": parameter_ranges or ranges([X_RANGE], categorical=[OPT_RANGE]),
            **config,
        },
        "TrainingJobDefinition": definition(role, code_uri, static),
    }


def code(s3, name: str) -> str:
    return upload_code(s3, BUCKET, name, {"train.py": QUADRATIC})


def wait_tuning(sm, name: str, timeout_s: float = 120.0) -> dict:
    return poll(
        lambda: sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=name),
        lambda job: job["HyperParameterTuningJobStatus"] in TERMINAL,
        timeout_s=timeout_s, interval_s=0.25,
        failure=lambda job: f"{name} did not finish in {timeout_s} s: {json.dumps(job, default=str)[:2000]}",
    )  # fmt: skip


def trials(sm, name: str) -> list[dict]:
    return sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=100
    )["TrainingJobSummaries"]


def expected_loss(hps: dict, epochs: int = 3) -> float:
    import math

    x = float(hps.get("x", 0.5))
    lr = float(hps.get("lr", 0.01))
    depth = int(hps.get("depth", 3))
    opt = json.loads(hps["opt"]) if "opt" in hps else "sgd"
    base = 10 * (x - 0.3) ** 2 + 0.1 * (math.log10(lr) + 2) ** 2 + abs(depth - 4) / 20
    return base + {"adam": 0.0, "sgd": 0.2}.get(opt, 0.5) + 1.0 / epochs
