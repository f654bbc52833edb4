"""The demo's data and training steps, as the seeds did them: the dataset to S3, then SageMaker training
jobs that run Kennel's trainer in script mode on sandboxed "instances" (one, or several as one DDP job);
a job's model.tar.gz (Kennel's serving layout: weights, metadata, code/inference.py) is what the
endpoint deploys, and its output.tar.gz carries the training curves and confusion matrix. The tuning
job's trials (``kennel.demo.tuning``) use the same script, metrics and channel."""

from __future__ import annotations

import contextlib
import io
import json
import tarfile
import time
from pathlib import Path

from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from kennel.demo.loadtest import Clients

ACCOUNT = "000000000000"
BUCKET = f"sagemaker-us-east-1-{ACCOUNT}"  # the SageMaker SDK's default bucket name
ROLE = "DogBreedsSageMaker"
IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/pytorch-training:1.4.0-cpu-py3"
ENTRY = "from kennel.ml.train import main\n\nraise SystemExit(main())\n"
# The lines kennel.ml.train prints, as the seeds' estimators declared them; "Validation Loss" is also
# the tuning job's objective.
METRICS = [
    {"Name": "Train Loss", "Regex": r"Train Loss: ([0-9.]+)"},
    {"Name": "Validation Loss", "Regex": r"Validation Loss: ([0-9.]+)"},
    {"Name": "Test Accuracy", "Regex": r"Testing Accuracy: ([0-9.]+)"},
]
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def prepare(clients: Clients, data: Path, console: Console, *, prefix: str = "dogImages") -> str:
    """The execution role and the default bucket; the dataset uploaded under ``prefix``/ (the seeds'
    dogImages/). A channel is a prefix: whatever else lies under it becomes training data too, so a
    caller sharing the bucket with other work passes a prefix of its own."""
    iam, s3 = clients("iam"), clients("s3")
    # Either may exist already when the cloud is shared (the integration tests run the steps too).
    with contextlib.suppress(iam.exceptions.EntityAlreadyExistsException):
        iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=BUCKET)  # waits for SeaweedFS if it is still starting
    files = sorted(p for p in data.rglob("*") if p.is_file())
    started = time.time()
    for path in files:
        s3.upload_file(str(path), BUCKET, f"{prefix}/{path.relative_to(data).as_posix()}")
    console.print(f"{len(files)} files → s3://{BUCKET}/{prefix}/ in {time.time() - started:.1f} s")
    return f"s3://{BUCKET}/{prefix}"


def _source() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        info = tarfile.TarInfo("train_entry.py")
        info.size = len(ENTRY)
        tar.addfile(info, io.BytesIO(ENTRY.encode()))
    return buffer.getvalue()


def upload_source(clients: Clients, prefix: str) -> dict[str, str]:
    """The entry script as the SDK uploads it; returns the framework hyperparameters that name it."""
    key = f"{prefix}/source/sourcedir.tar.gz"
    clients("s3").put_object(Bucket=BUCKET, Key=key, Body=_source())
    return {
        "sagemaker_program": '"train_entry.py"',
        "sagemaker_submit_directory": json.dumps(f"s3://{BUCKET}/{key}"),
    }


def encode(hyperparameters: dict[str, str]) -> dict[str, str]:
    """JSON-encoded values, as the SDK sends a framework estimator's hyperparameters."""
    return {k: json.dumps(v) for k, v in hyperparameters.items()}


def algorithm() -> dict:
    """AlgorithmSpecification shared by the training jobs and the tuning job's trials."""
    return {"TrainingImage": IMAGE, "TrainingInputMode": "File", "MetricDefinitions": METRICS}


def channel_config(channel: str) -> list[dict]:
    source = {"S3DataType": "S3Prefix", "S3Uri": channel, "S3DataDistributionType": "FullyReplicated"}
    return [{"ChannelName": "training", "DataSource": {"S3DataSource": source}}]


def train(clients: Clients, channel: str, hyperparameters: dict[str, str], console: Console, *,
          name: str, instances: int = 1, distributed: bool = False) -> dict:  # fmt: skip
    """One training job, followed with a progress line and its log; returns DescribeTrainingJob.

    ``distributed``: the hosts are one DDP job (the SDK's ``torch_distributed``; torchrun per host)
    instead of N independent copies of the script."""
    sm, logs = clients("sagemaker"), clients("logs")
    hps = {**encode(hyperparameters), **upload_source(clients, name)}
    if distributed:
        hps["sagemaker_torch_distributed_enabled"] = "true"
    sm.create_training_job(
        TrainingJobName=name,
        RoleArn=f"arn:aws:iam::{ACCOUNT}:role/{ROLE}",
        AlgorithmSpecification=algorithm(),
        HyperParameters=hps,
        InputDataConfig=channel_config(channel),
        OutputDataConfig={"S3OutputPath": f"s3://{BUCKET}/"},
        ResourceConfig={"InstanceType": "ml.m5.xlarge", "InstanceCount": instances, "VolumeSizeInGB": 30},
        StoppingCondition={"MaxRuntimeInSeconds": 3600},
    )
    started, seen = time.time(), set[str]()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=True) as progress:
        task = progress.add_task(name)
        while True:
            job = sm.describe_training_job(TrainingJobName=name)
            progress.update(task, description=f"training job {name}: {job['SecondaryStatus']}")
            _print_new_lines(logs, name, seen, progress.console, tagged=instances > 1)
            if job["TrainingJobStatus"] in ("Completed", "Failed", "Stopped"):
                break
            time.sleep(0.5)
    _print_new_lines(logs, name, seen, console, tagged=instances > 1)
    if job["TrainingJobStatus"] != "Completed":
        raise RuntimeError(
            f"training job {name} ended {job['TrainingJobStatus']}: {job.get('FailureReason')}"
        )
    metrics = ", ".join(f"{m['MetricName']} {m['Value']:.3f}" for m in job.get("FinalMetricDataList", []))
    console.print(f"{name}: Completed in {time.time() - started:.0f} s ({metrics})")
    console.print(f"model_data: {job['ModelArtifacts']['S3ModelArtifacts']}")
    return job


def _print_new_lines(logs, name: str, seen: set[str], console: Console, *, tagged: bool) -> None:
    """Progress lines not shown yet. Seen events are remembered by id, not counted: with several
    hosts, a line of one host may arrive after later lines of another."""
    try:
        events = logs.filter_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
        )
    except logs.exceptions.ResourceNotFoundException:
        return
    for event in events["events"]:
        if event["eventId"] in seen:
            continue
        seen.add(event["eventId"])
        line = event["message"]
        if line.startswith(("Epoch ", "Validation Accuracy", "Testing")):
            host = f"[{event['logStreamName'].split('/')[1].rsplit('-', 1)[0]}] " if tagged else ""
            console.print(f"  {host}{line}", highlight=False, markup=False)


def fetch_outputs(clients: Clients, job: dict, workdir: Path) -> Path:
    """model.tar.gz to <workdir>, output.tar.gz's plots and report into <workdir>/output."""
    s3 = clients("s3")
    bucket, key = job["ModelArtifacts"]["S3ModelArtifacts"][len("s3://") :].split("/", 1)
    archive = workdir / "model.tar.gz"
    s3.download_file(bucket, key, str(archive))
    output = workdir / "output"
    output.mkdir(parents=True, exist_ok=True)
    body = s3.get_object(Bucket=bucket, Key=key.replace("model.tar.gz", "output.tar.gz"))["Body"].read()
    with tarfile.open(fileobj=io.BytesIO(body), mode="r:gz") as tar:
        for member in tar.getmembers():
            name = Path(member.name)
            if member.isfile() and not name.is_absolute() and ".." not in name.parts:
                (output / name).parent.mkdir(parents=True, exist_ok=True)
                (output / name).write_bytes(tar.extractfile(member).read())  # type: ignore[union-attr]
    return archive
