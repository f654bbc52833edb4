"""A training job cut off by a gateway restart resumes from its checkpoint; one without a
CheckpointConfig is failed with a reason that says why."""

from __future__ import annotations

import json
import time

from tests.integration.conftest import start_gateway, stop_gateway
from tests.integration.support.roles import service_role
from tests.integration.support.training import ensure_bucket, job_request, read_model, upload_code, wait_done

BUCKET = "sagemaker-restart-tests"

RESUMABLE = r"""
import json, os, time
ckpt = "/opt/ml/checkpoints/step.json"
start = json.load(open(ckpt))["step"] if os.path.exists(ckpt) else 0
print(f"resumed from {start}", flush=True)
for step in range(start, 8):
    json.dump({"step": step + 1}, open(ckpt, "w"))
    print(f"step {step}", flush=True)
    time.sleep(0.5)
json.dump({"first_step": start}, open("/opt/ml/model/run.json", "w"))
"""


def _logged(logs, name: str, text: str) -> bool:
    try:
        events = logs.filter_log_events(
            logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=f"{name}/"
        )
    except logs.exceptions.ResourceNotFoundException:
        return False  # no job has logged anything yet
    return any(text in e["message"] for e in events["events"])


def test_jobs_resume_from_checkpoints_after_a_restart(tmp_path):
    state = tmp_path / "state"
    cloud = start_gateway(state)
    try:
        s3 = cloud.client("s3")
        ensure_bucket(s3, BUCKET)
        role = service_role(cloud)
        cloud.client("iam").attach_role_policy(
            RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
        )
        sm, logs = cloud.client("sagemaker"), cloud.client("logs")
        code = upload_code(s3, BUCKET, "resumable", {"train.py": RESUMABLE})
        sm.create_training_job(**job_request(
            "resumable", role, BUCKET, code,
            CheckpointConfig={"S3Uri": f"s3://{BUCKET}/checkpoints/resumable"},
        ))  # fmt: skip
        sm.create_training_job(**job_request("fragile", role, BUCKET, code))
        deadline = time.monotonic() + 60
        while not (_logged(logs, "resumable", "step 2") and _logged(logs, "fragile", "step 1")):
            assert time.monotonic() < deadline, "the jobs never got going"
            time.sleep(0.2)
    finally:
        stop_gateway(cloud)
    cloud = start_gateway(state)
    try:
        sm, s3 = cloud.client("sagemaker"), cloud.client("s3")
        resumed = wait_done(sm, "resumable", timeout_s=120)
        assert resumed["TrainingJobStatus"] == "Completed", resumed.get("FailureReason")
        assert (
            json.loads(read_model(s3, resumed["ModelArtifacts"]["S3ModelArtifacts"])["run.json"])[
                "first_step"
            ]
            >= 2
        )
        messages = [t["StatusMessage"] for t in resumed["SecondaryStatusTransitions"]]
        assert any("Resuming from the checkpoint" in m for m in messages)
        fragile = wait_done(sm, "fragile", timeout_s=30)
        assert fragile["TrainingJobStatus"] == "Failed"
        assert "no CheckpointConfig to resume from" in fragile["FailureReason"]
    finally:
        stop_gateway(cloud)
