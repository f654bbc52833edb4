"""The seeds' notebook, unchanged, end to end: ``examples/dog_breeds/train_and_deploy.ipynb`` executed
headless by ``kennel notebook --execute`` (nbclient, the same kernel start-up hook a user's Jupyter gets)
against a fresh Kennel, as the execution role a notebook instance would have.

It tunes (2 trials), reads the analytics and the best estimator, trains with Debugger rules and the
Profiler on 1 and on 4 instances, deploys the 4-instance job's model with inference2.py and predicts
with JPEG bytes and with a URL. The assertions read the executed notebook's outputs (cells are found by
their tags) and check the cloud's side with the admin's boto3 clients.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from tests.integration.conftest import LiveCloud, start_gateway, stop_gateway

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "dog_breeds"
ROLE = "SageMakerRole"
TRUST = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Principal": {"Service": "sagemaker.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ],
}


def _outputs(notebook: dict) -> dict[str, str]:
    """Each tagged code cell's printed text under its tag, its result (text/plain) under "<tag>:result"."""
    found: dict[str, str] = {}
    for cell in notebook["cells"]:
        tags = cell.get("metadata", {}).get("tags", [])
        if cell["cell_type"] != "code" or not tags:
            continue
        printed, result = [], ""
        for output in cell.get("outputs", []):
            if output["output_type"] == "stream" and output["name"] == "stdout":
                printed.append("".join(output["text"]))
            elif output["output_type"] == "execute_result":
                result = "".join(output["data"].get("text/plain", ""))
        found[tags[0]] = "".join(printed)
        found[f"{tags[0]}:result"] = result
    return found


def _create_role(cloud: LiveCloud) -> None:
    iam = cloud.client("iam")
    iam.create_role(RoleName=ROLE, AssumeRolePolicyDocument=json.dumps(TRUST))
    iam.attach_role_policy(RoleName=ROLE, PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess")


@pytest.mark.slow
@pytest.mark.timeout(420)
def test_seed_notebook_runs_unchanged(tmp_path: Path) -> None:
    pytest.importorskip("nbclient")
    pytest.importorskip("sagemaker")
    work = tmp_path / "work"
    work.mkdir()
    for name in ("train_and_deploy.ipynb", "hpo.py", "inference2.py"):
        shutil.copy(EXAMPLE / name, work / name)
    cloud = start_gateway(tmp_path / "state")
    try:
        _create_role(cloud)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "KENNEL_STATE_DIR"))}
        out = tmp_path / "executed.ipynb"
        started = time.monotonic()
        run = subprocess.run(
            [
                sys.executable, "-m", "kennel.cli", "notebook", str(work / "train_and_deploy.ipynb"),
                "--execute", "--role", ROLE, "--output", str(out), "--cell-timeout", "240",
                "--state-dir", str(cloud.state_dir),
            ],
            capture_output=True, text=True, timeout=330, env=env,
        )  # fmt: skip
        elapsed = time.monotonic() - started
        assert run.returncode == 0, f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
        cells = _outputs(json.loads(out.read_text()))
        _check_outputs(cells)
        _check_cloud(cloud, cells)
        print(f"notebook executed in {elapsed:.0f} s")
    finally:
        stop_gateway(cloud)


def _check_outputs(cells: dict[str, str]) -> None:
    # The kernel is the role, as on a notebook instance; the SDK's default bucket is the account's.
    assert f"RoleArn: arn:aws:iam::000000000000:role/{ROLE}" in cells["setup"]
    assert "Default Bucket: sagemaker-us-east-1-000000000000" in cells["setup"]
    assert "s3://sagemaker-us-east-1-000000000000/dogImages" in cells["upload"]

    tuning_job = re.search(r"Tuning job: (\S+)", cells["tuner-status"]).group(1)
    assert cells["tuner-status"].rstrip().endswith("Completed")
    trials = set(re.findall(rf"{re.escape(tuning_job)}-\d{{3}}-[0-9a-f]{{8}}", cells["analytics:result"]))
    assert len(trials) == 2, cells["analytics:result"]  # the dataframe has one row per trial: max_jobs=2

    best = ast.literal_eval(cells["best-hyperparameters:result"])
    assert best["batch_size"] in ('"32"', '"64"', '"128"')  # categoricals verbatim, as AWS has them
    assert 0.001 <= float(best["learning_rate"]) <= 0.1
    assert best["_tuning_objective_metric"] == '"Test Loss"'
    assert best["sagemaker_program"] == '"hpo.py"'
    chosen = ast.literal_eval(cells["best"].strip())
    assert chosen == {
        "batch_size": int(best["batch_size"].strip('"')),
        "learning_rate": best["learning_rate"],
    }

    assert "Status: Completed" in cells["multi-status"]
    assert "Instances: 4" in cells["multi-status"]
    assert "ProfilerReport: NoIssuesFound" in cells["multi-status"]
    assert re.search(r"s3://sagemaker-us-east-1-000000000000/dog-pytorch-multi-\S+/output/model.tar.gz",
                     cells["model-data"])  # fmt: skip
    for predicted in ("predict-jpeg", "predict-url"):
        assert "Scores: 133" in cells[predicted]  # the seeds' head: 133 breeds
        assert re.fullmatch(r"array\(\[\d+\]\)", cells[f"{predicted}:result"])


def _check_cloud(cloud: LiveCloud, cells: dict[str, str]) -> None:
    sm = cloud.client("sagemaker")
    tuning_job = re.search(r"Tuning job: (\S+)", cells["tuner-status"]).group(1)
    tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=tuning_job)
    assert tuning["TrainingJobStatusCounters"]["Completed"] == 2
    assert tuning["HyperParameterTuningJobConfig"]["ResourceLimits"]["MaxNumberOfTrainingJobs"] == 2
    best = sm.describe_training_job(TrainingJobName=tuning["BestTrainingJob"]["TrainingJobName"])
    assert best["TuningJobArn"] == tuning["HyperParameterTuningJobArn"]

    jobs = {}
    for prefix in ("dog-pytorch-2", "dog-pytorch-multi-"):
        summaries = sm.list_training_jobs(NameContains=prefix)["TrainingJobSummaries"]
        assert len(summaries) == 1, summaries
        jobs[prefix] = summaries[0]["TrainingJobName"]
    deadline = time.monotonic() + 60  # the 1-instance job ran beside the 4-instance one, unwaited
    while True:
        single = sm.describe_training_job(TrainingJobName=jobs["dog-pytorch-2"])
        if single["TrainingJobStatus"] != "InProgress" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert single["TrainingJobStatus"] == "Completed", single.get("FailureReason")
    assert single["ResourceConfig"]["InstanceCount"] == 1
    assert len(single["DebugRuleConfigurations"]) == 4 and single["ProfilerConfig"]
    multi = sm.describe_training_job(TrainingJobName=jobs["dog-pytorch-multi-"])
    assert multi["ResourceConfig"]["InstanceCount"] == 4 and multi["TrainingJobStatus"] == "Completed"

    # The last cell deletes the endpoint, as the seeds did; its model (inference2.py repacked) remains.
    assert sm.list_endpoints()["Endpoints"] == []
    models = sm.list_models()["Models"]
    assert len(models) == 1
    env = sm.describe_model(ModelName=models[0]["ModelName"])["PrimaryContainer"]["Environment"]
    assert env["SAGEMAKER_PROGRAM"] == "inference2.py"
