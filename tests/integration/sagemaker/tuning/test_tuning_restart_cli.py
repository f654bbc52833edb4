"""A tuning job survives a gateway restart (finished trials kept, the search goes on), and every
tuning operation works through the aws CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from tests.integration.conftest import start_gateway, stop_gateway
from tests.integration.support.roles import service_role
from tests.integration.support.training import ensure_bucket, unique
from tests.integration.support.tuning import BUCKET, code, trials, tuning_request, wait_tuning

AWS = str(Path(sys.executable).with_name("aws"))


def _setup(cloud) -> tuple:
    s3 = cloud.client("s3")
    ensure_bucket(s3, BUCKET)
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    return cloud.client("sagemaker"), role, code(s3, unique("tuning-code"))


def test_a_tuning_job_survives_a_restart(tmp_path_factory):
    state = tmp_path_factory.mktemp("kennel-tuning-restart") / "state"
    cloud = start_gateway(state)
    try:
        sm, role, uri = _setup(cloud)
        name = unique("restart")
        sm.create_hyper_parameter_tuning_job(
            **tuning_request(
                name,
                role,
                uri,
                strategy="Random",
                RandomSeed=9,
                max_jobs=3,
                parallel=1,
                static={"epochs": 8, "sleep": 0.2},
            )
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # one trial done, the next one training
            statuses = [s["TrainingJobStatus"] for s in trials(sm, name)]
            if statuses.count("Completed") == 1 and "InProgress" in statuses:
                break
            time.sleep(0.1)
        before = {s["TrainingJobName"]: s for s in trials(sm, name)}
    finally:
        stop_gateway(cloud)
    cloud = start_gateway(state)
    try:
        sm = cloud.client("sagemaker")
        job = wait_tuning(sm, name, timeout_s=90)
        assert job["HyperParameterTuningJobStatus"] == "Completed", job
        after = {s["TrainingJobName"]: s for s in trials(sm, name)}
        done = [n for n, s in before.items() if s["TrainingJobStatus"] == "Completed"]
        assert done and all(after[n]["TrainingJobStatus"] == "Completed" for n in done)  # kept as it was
        assert [after[n]["FinalHyperParameterTuningJobObjectiveMetric"] for n in done] == [
            before[n]["FinalHyperParameterTuningJobObjectiveMetric"] for n in done
        ]
        counters = job["TrainingJobStatusCounters"]
        # The trial cut off by the restart failed as retryable; a replacement kept the budget at 3.
        assert counters["Completed"] == 3 and counters["RetryableError"] == 1, counters
        assert len(after) == 4
    finally:
        stop_gateway(cloud)


def _aws(cloud, *args: str) -> dict:
    done = subprocess.run(
        [AWS, "sagemaker", *args, "--output", "json"],
        env=cloud.cli_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, (args, done.stderr)
    return json.loads(done.stdout) if done.stdout.strip() else {}


def test_every_tuning_operation_with_the_cli(cloud, tmp_path):
    sm, role, uri = _setup(cloud)
    name = unique("cli")
    request = tuning_request(name, role, uri, strategy="Random", max_jobs=2, parallel=1,
                             static={"epochs": 400, "sleep": 0.2})  # fmt: skip
    request_file = tmp_path / "request.json"
    request_file.write_text(json.dumps(request))
    created = _aws(cloud, "create-hyper-parameter-tuning-job", "--cli-input-json", f"file://{request_file}")
    arn = created["HyperParameterTuningJobArn"]
    described = _aws(cloud, "describe-hyper-parameter-tuning-job", "--hyper-parameter-tuning-job-name", name)
    assert described["HyperParameterTuningJobStatus"] == "InProgress"
    listed = _aws(cloud, "list-hyper-parameter-tuning-jobs", "--name-contains", name)
    assert [j["HyperParameterTuningJobArn"] for j in listed["HyperParameterTuningJobSummaries"]] == [arn]
    _aws(cloud, "add-tags", "--resource-arn", arn, "--tags", "Key=stage,Value=cli")
    assert _aws(cloud, "list-tags", "--resource-arn", arn)["Tags"] == [{"Key": "stage", "Value": "cli"}]
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not trials(sm, name):
        time.sleep(0.1)
    summaries = _aws(
        cloud, "list-training-jobs-for-hyper-parameter-tuning-job", "--hyper-parameter-tuning-job-name", name,
        "--sort-by", "CreationTime",
    )["TrainingJobSummaries"]  # fmt: skip
    assert summaries and summaries[0]["TrainingJobName"].startswith(f"{name}-001-")
    _aws(cloud, "stop-hyper-parameter-tuning-job", "--hyper-parameter-tuning-job-name", name)
    assert wait_tuning(sm, name, timeout_s=60)["HyperParameterTuningJobStatus"] == "Stopped"

    # Kennel's own view: the trials as a table and the search as a PNG.
    png = tmp_path / "search.png"
    shown = subprocess.run(
        [sys.executable, "-m", "kennel.cli", "tuning", "describe", name, "--png", str(png),
         "--state-dir", str(cloud.state_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    assert "Stopped" in shown.stdout and f"{name}-001-" in shown.stdout
    assert png.read_bytes().startswith(b"\x89PNG")
    listing = subprocess.run(
        [sys.executable, "-m", "kennel.cli", "tuning", "list", "--state-dir", str(cloud.state_dir)],
        capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "250"},
    )  # fmt: skip
    assert name in listing.stdout
