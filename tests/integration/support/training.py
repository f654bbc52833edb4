"""Helpers for training-job tests: code archives in S3, a job request as the SDK sends it, waiting."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
import uuid
from pathlib import Path

SEED_TRAINING = Path(__file__).parent / "seed_training"  # training scripts in the seeds' style
TERMINAL = {"Completed", "Failed", "Stopped"}
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.4.0-cpu-py3"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def source_tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def ensure_bucket(s3, bucket: str) -> None:
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)


def upload_code(s3, bucket: str, job: str, files: dict[str, str]) -> str:
    key = f"{job}/source/sourcedir.tar.gz"
    s3.put_object(Bucket=bucket, Key=key, Body=source_tar(files))
    return f"s3://{bucket}/{key}"


def job_request(
    name: str, role_arn: str, bucket: str, code_uri: str, *, entry_point: str = "train.py",
    hyperparameters: dict | None = None, channels: dict[str, str] | None = None, instance_count: int = 1,
    metric_definitions: list | None = None, max_runtime: int = 3600, **extra,
) -> dict:  # fmt: skip
    """A CreateTrainingJob request shaped as the SageMaker SDK v2 sends it (values JSON-encoded)."""
    hps = {k: json.dumps(v) for k, v in (hyperparameters or {}).items()}
    hps.update(
        sagemaker_program=json.dumps(entry_point),
        sagemaker_submit_directory=json.dumps(code_uri),
        sagemaker_container_log_level="20",
        sagemaker_job_name=json.dumps(name),
        sagemaker_region=json.dumps("us-east-1"),
    )
    algorithm = {
        "TrainingImage": IMAGE,
        "TrainingInputMode": "File",
        "EnableSageMakerMetricsTimeSeries": True,
    }
    if metric_definitions:
        algorithm["MetricDefinitions"] = metric_definitions
    request = {
        "TrainingJobName": name,
        "AlgorithmSpecification": algorithm,
        "RoleArn": role_arn,
        "InputDataConfig": [
            {
                "ChannelName": ch,
                "DataSource": {
                    "S3DataSource": {
                        "S3DataType": "S3Prefix",
                        "S3Uri": uri,
                        "S3DataDistributionType": "FullyReplicated",
                    }
                },
            }
            for ch, uri in (channels or {}).items()
        ],
        "OutputDataConfig": {"S3OutputPath": f"s3://{bucket}/"},
        "ResourceConfig": {
            "InstanceType": "ml.m5.xlarge",
            "InstanceCount": instance_count,
            "VolumeSizeInGB": 30,
        },
        "StoppingCondition": {"MaxRuntimeInSeconds": max_runtime},
        "HyperParameters": hps,
    }
    if not request["InputDataConfig"]:
        del request["InputDataConfig"]  # AWS wants at least one channel when the key is there
    request.update(extra)
    return request


def poll(fetch, done, *, timeout_s: float, interval_s: float, failure) -> dict:
    """``fetch()`` until ``done(answer)``; past ``timeout_s`` an AssertionError with ``failure(answer)``."""
    deadline = time.monotonic() + timeout_s
    while True:
        answer = fetch()
        if done(answer):
            return answer
        if time.monotonic() > deadline:
            raise AssertionError(failure(answer))
        time.sleep(interval_s)


def wait_done(sm, name: str, timeout_s: float = 180.0) -> dict:
    return poll(
        lambda: sm.describe_training_job(TrainingJobName=name),
        lambda job: job["TrainingJobStatus"] in TERMINAL,
        timeout_s=timeout_s, interval_s=0.2,
        failure=lambda job: f"{name} did not finish in {timeout_s} s: {job['SecondaryStatus']}",
    )  # fmt: skip


def wait_for(sm, name: str, secondary: str, timeout_s: float = 60.0) -> dict:
    return poll(
        lambda: sm.describe_training_job(TrainingJobName=name),
        lambda job: job["SecondaryStatus"] == secondary or job["TrainingJobStatus"] in TERMINAL,
        timeout_s=timeout_s, interval_s=0.1,
        failure=lambda job: f"{name} never reached {secondary}",
    )  # fmt: skip


def read_model(s3, uri: str) -> dict[str, bytes]:
    bucket, key = uri[len("s3://") :].split("/", 1)
    body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}  # type: ignore[union-attr]


def host_logs(logs, name: str, lines: int = 40) -> str:
    """The last lines of every host's log stream of a job: what a failed test shows to explain it."""
    out = []
    streams = logs.describe_log_streams(
        logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
    )["logStreams"]
    for stream in streams:
        events = logs.get_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamName=stream["logStreamName"]
        )["events"]
        out.append(f"--- {stream['logStreamName']}")
        out += [event["message"] for event in events[-lines:]]
    return "\n".join(out)
