"""The tuning controller stepped by hand against a real store and fake training jobs: launches within
the limits, finishes, rebuilds after a "restart", stops a trial early from live values, gives up on a
job whose steps keep failing."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select, update

from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import dumps
from kennel.cloud.services.sagemaker.tuning import TuningJobs
from kennel.cloud.services.sagemaker.tuning_control import MAX_STEP_ERRORS
from kennel.cloud.statestore import StateStore

METRIC = "loss"


class FakeRunner:
    def __init__(self) -> None:
        self.observers: list = []
        self.stopped: list[str] = []

    def stop(self, name: str, why: str = "Stopped") -> None:
        self.stopped.append(name)


class FakeTraining:
    """Trials become rows; the test decides when and how they end."""

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.runner = FakeRunner()

    def validate(self, request: dict) -> None:
        pass

    def launch_trial(self, request: dict, tuning_job_arn: str) -> dict:
        name = request["TrainingJobName"]
        with self.store.write() as conn:
            conn.execute(t.training_jobs.insert().values(
                name=name, arn=f"arn:aws:sagemaker:us-east-1:000000000000:training-job/{name}",
                created=len(self.names()), modified=0.0, status="InProgress", secondary="Training",
                spec=dumps(request), state="{}", tuning_job_arn=tuning_job_arn, tags="[]",
            ))  # fmt: skip
        return {}

    def names(self) -> list[str]:
        with self.store.read() as conn:
            return sorted(r[0] for r in conn.execute(select(t.training_jobs.c.name)))

    def finish(self, name: str, status: str, values: list[float]) -> None:
        state = {"training_end": float(len(values)) + len(name)}
        if values:
            state["final_metrics"] = [{"MetricName": METRIC, "Value": values[-1], "Timestamp": 0.0}]
            state["metric_series"] = {METRIC: [[float(i), v] for i, v in enumerate(values)]}
        with self.store.write() as conn:
            conn.execute(update(t.training_jobs).where(t.training_jobs.c.name == name).values(
                status=status, state=json.dumps(state)))  # fmt: skip


def _request(name: str, **config) -> dict:
    limits = {
        "MaxNumberOfTrainingJobs": config.pop("max_jobs", 3),
        "MaxParallelTrainingJobs": config.pop("parallel", 2),
    }
    return {
        "HyperParameterTuningJobName": name,
        "HyperParameterTuningJobConfig": {
            "Strategy": config.pop("strategy", "Random"), "RandomSeed": 1, "ResourceLimits": limits,
            "HyperParameterTuningJobObjective": {"Type": "Minimize", "MetricName": METRIC},
            "ParameterRanges": {
                "ContinuousParameterRanges": [{"Name": "x", "MinValue": "0", "MaxValue": "1"}]
            },
            **config,
        },
        "TrainingJobDefinition": {
            "AlgorithmSpecification": {"TrainingImage": "img", "TrainingInputMode": "File",
                                       "MetricDefinitions": [{"Name": METRIC, "Regex": "loss=([0-9.]+)"}]},
            "RoleArn": "arn:aws:iam::000000000000:role/r", "OutputDataConfig": {"S3OutputPath": "s3://b/"},
            "StoppingCondition": {"MaxRuntimeInSeconds": 60},
            "HyperParameterTuningResourceConfig": {"InstanceType": "ml.m5.xlarge", "InstanceCount": 1},
        },
    }  # fmt: skip


@pytest.fixture
def world(tmp_path):
    store = StateStore(tmp_path / "kennel.db")
    training = FakeTraining(store)

    def jobs() -> TuningJobs:
        return TuningJobs(store=store, region="us-east-1", account="000000000000", training=training,
                          require_passable=lambda *args: None, clock=lambda: 100.0)  # fmt: skip

    yield jobs, training
    store.close()


def _describe(tuning: TuningJobs, name: str) -> dict:
    return tuning.describe({"HyperParameterTuningJobName": name}, None)


def test_launches_within_limits_then_completes_with_the_best(world):
    jobs, training = world
    tuning = jobs()
    tuning.create(_request("job"), None)
    tuning.controller.step("job")
    first, second = training.names()
    assert first.startswith("job-001-") and second.startswith("job-002-")
    tuning.controller.step("job")
    assert len(training.names()) == 2  # MaxParallelTrainingJobs
    training.finish(first, "Completed", [3.0, 2.0])
    tuning.controller.step("job")
    assert len(training.names()) == 3  # MaxNumberOfTrainingJobs reached with this one
    for name in training.names()[1:]:
        training.finish(name, "Completed", [5.0] if name == second else [])
    tuning.controller.step("job")
    described = _describe(tuning, "job")
    assert described["HyperParameterTuningJobStatus"] == "Completed"
    assert described["BestTrainingJob"]["TrainingJobName"] == first
    assert described["ObjectiveStatusCounters"] == {"Succeeded": 2, "Pending": 0, "Failed": 1}


def test_a_new_controller_rebuilds_and_carries_on(world):
    jobs, training = world
    before = jobs()
    before.create(_request("job", max_jobs=3, parallel=1), None)
    before.controller.step("job")
    (first,) = training.names()
    training.finish(first, "Completed", [1.0])
    before.controller.step("job")
    running = training.names()[1]
    after = jobs()  # as after a restart: nothing in memory
    after.controller.step("job")
    assert training.names() == [first, running]  # the running trial was re-attached, not replaced
    training.finish(running, "Completed", [0.5])
    after.controller.step("job")
    assert training.names()[2].startswith("job-003-")


def test_live_values_stop_a_clearly_worse_trial(world):
    jobs, training = world
    tuning = jobs()
    tuning.create(_request("job", max_jobs=5, parallel=1, TrainingJobEarlyStoppingType="Auto"), None)
    for _ in range(3):
        tuning.controller.step("job")
        training.finish(training.names()[-1], "Completed", [1.0, 0.5, 0.25])
    tuning.controller.step("job")
    worse = training.names()[-1]
    observe = training.runner.observers[0]
    observe(worse, METRIC, 0.9, 0.0)  # better than the median of 1.0 at epoch 1
    tuning.controller.step("job")
    assert training.runner.stopped == []
    observe(worse, METRIC, 0.9, 1.0)  # epoch 2: worse than every running average (0.75)
    tuning.controller.step("job")
    assert training.runner.stopped == [worse]


def test_a_job_whose_steps_keep_failing_is_failed(world, monkeypatch):
    jobs, _ = world
    tuning = jobs()
    tuning.create(_request("job"), None)
    tuning.controller.step("job")

    def broken(*args):
        raise RuntimeError("boom")

    monkeypatch.setattr(tuning.controller, "_snapshot", broken)
    for _ in range(MAX_STEP_ERRORS):
        with pytest.raises(RuntimeError):
            tuning.controller.step("job")
        tuning.controller.step_failed("job", RuntimeError("boom"))
    described = _describe(tuning, "job")
    assert described["HyperParameterTuningJobStatus"] == "Failed"
    assert "RuntimeError: boom" in described["FailureReason"]
