"""Every training-job operation through the aws CLI (v1), and Kennel's own `kennel jobs` commands."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.integration.support.cli import aws
from tests.integration.support.roles import service_role
from tests.integration.support.training import ensure_bucket, job_request, unique, upload_code, wait_done

BUCKET = "sagemaker-cli-tests"
SCRIPT = """
import signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
print("Testing Loss: 0.25", flush=True)
time.sleep(float(sys.argv[-1]) if len(sys.argv) > 1 else 0)
"""


def kennel(cloud, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "kennel.cli", *args, "--state-dir", str(cloud.state_dir)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_training_jobs_with_the_aws_cli_and_kennel_jobs(cloud, tmp_path: Path) -> None:
    s3 = cloud.client("s3")
    ensure_bucket(s3, BUCKET)
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    name = unique("cli")
    code = upload_code(s3, BUCKET, name, {"train.py": SCRIPT})
    request = job_request(
        name, role, BUCKET, code, hyperparameters={"sleep": 0},
        metric_definitions=[{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}],
        Tags=[{"Key": "team", "Value": "dogs"}],
    )  # fmt: skip
    (tmp_path / "job.json").write_text(json.dumps(request))
    created = aws(
        cloud, "sagemaker", "create-training-job", "--cli-input-json", f"file://{tmp_path / 'job.json'}"
    )
    assert created["TrainingJobArn"].endswith(f"training-job/{name}")
    wait_done(cloud.client("sagemaker"), name)
    described = aws(cloud, "sagemaker", "describe-training-job", "--training-job-name", name)
    assert described["TrainingJobStatus"] == "Completed"
    assert described["FinalMetricDataList"][0]["Value"] == 0.25
    listed = aws(cloud, "sagemaker", "list-training-jobs", "--name-contains", name)
    assert [j["TrainingJobName"] for j in listed["TrainingJobSummaries"]] == [name]
    arn = created["TrainingJobArn"]
    aws(cloud, "sagemaker", "add-tags", "--resource-arn", arn, "--tags", "Key=stage,Value=dev")
    tags = aws(cloud, "sagemaker", "list-tags", "--resource-arn", arn)["Tags"]
    assert {t["Key"] for t in tags} == {"team", "stage"}
    aws(cloud, "sagemaker", "delete-tags", "--resource-arn", arn, "--tag-keys", "team")
    assert aws(cloud, "sagemaker", "list-tags", "--resource-arn", arn)["Tags"] == [
        {"Key": "stage", "Value": "dev"}
    ]

    slow = unique("cli-slow")
    request = job_request(slow, role, BUCKET, code, hyperparameters={"sleep": 60})
    cloud.client("sagemaker").create_training_job(**request)
    for _ in range(100):
        if (
            cloud.client("sagemaker").describe_training_job(TrainingJobName=slow)["SecondaryStatus"]
            == "Training"
        ):
            break
        __import__("time").sleep(0.1)
    aws(cloud, "sagemaker", "stop-training-job", "--training-job-name", slow)
    assert wait_done(cloud.client("sagemaker"), slow)["TrainingJobStatus"] == "Stopped"

    listing = kennel(cloud, "jobs", "list")
    assert listing.returncode == 0, listing.stderr
    assert name in listing.stdout and slow in listing.stdout
    shown = kennel(cloud, "jobs", "describe", name, "--wait")
    assert shown.returncode == 0 and "Test Loss = 0.25" in shown.stdout and "Completed" in shown.stdout
    logs = kennel(cloud, "jobs", "logs", name)
    assert "algo-1 Testing Loss: 0.25" in logs.stdout
