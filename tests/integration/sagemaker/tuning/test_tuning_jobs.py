"""Hyperparameter tuning jobs through boto3: every trial a real training job, a real search behind it;
strategies, early stopping, stop, restart, warm start, AWS's errors, and the aws CLI."""

from __future__ import annotations

import json
import re
import time

import pytest
from botocore.exceptions import ClientError
from tests.integration.support.roles import service_role
from tests.integration.support.training import ensure_bucket, unique
from tests.integration.support.tuning import (
    BUCKET,
    DEPTH_RANGE,
    LR_RANGE,
    OPT_RANGE,
    X_RANGE,
    code,
    expected_loss,
    ranges,
    trials,
    tuning_request,
    wait_tuning,
)


@pytest.fixture(scope="module")
def env(cloud):
    s3 = cloud.client("s3")
    ensure_bucket(s3, BUCKET)
    role = service_role(cloud)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    return {"sm": cloud.client("sagemaker"), "s3": s3, "role": role, "code": code(s3, unique("tuning-code"))}


def _create(env, name, **kwargs):
    request = tuning_request(name, env["role"], env["code"], **kwargs)
    return env["sm"].create_hyper_parameter_tuning_job(**request, Tags=[{"Key": "team", "Value": "dogs"}])


def test_bayesian_search_runs_trials_as_training_jobs(env):
    sm, name = env["sm"], unique("bayes")
    arn = _create(env, name, max_jobs=3, parallel=2, static={"epochs": 3},
                  parameter_ranges=ranges([X_RANGE, LR_RANGE], [DEPTH_RANGE], [OPT_RANGE]))  # fmt: skip
    assert arn["HyperParameterTuningJobArn"].endswith(f":hyper-parameter-tuning-job/{name}")
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed", job
    assert job["TrainingJobStatusCounters"]["Completed"] == 3
    assert job["ObjectiveStatusCounters"] == {"Succeeded": 3, "Pending": 0, "Failed": 0}
    assert job["ConsumedResources"]["RuntimeInSeconds"] >= 0 and "HyperParameterTuningEndTime" in job
    static = job["TrainingJobDefinition"]["StaticHyperParameters"]
    assert static["_tuning_objective_metric"] == "Test Loss" and static["epochs"] == "3"

    summaries = trials(sm, name)
    assert len(summaries) == 3
    for item in summaries:
        assert re.fullmatch(rf"{name}-00[123]-[0-9a-f]{{8}}", item["TrainingJobName"])
        tuned = item["TunedHyperParameters"]
        assert set(tuned) == {"x", "lr", "depth", "opt"} and tuned["opt"] in OPT_RANGE["Values"]
        value = item["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
        assert value == pytest.approx(expected_loss(tuned), abs=1e-5)  # the last value printed
        trial = sm.describe_training_job(TrainingJobName=item["TrainingJobName"])
        assert trial["TuningJobArn"] == arn["HyperParameterTuningJobArn"]
        assert trial["HyperParameters"]["_tuning_objective_metric"] == "Test Loss"
        assert trial["HyperParameters"]["sagemaker_program"] == '"train.py"'  # static: unchanged
        assert trial["HyperParameters"]["opt"] == tuned["opt"]  # categorical: verbatim
        tags = sm.list_tags(ResourceArn=trial["TrainingJobArn"])["Tags"]
        assert {"Key": "team", "Value": "dogs"} in tags  # the tuning job's tags reach its trials
    best = min(summaries, key=lambda s: s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert job["BestTrainingJob"]["TrainingJobName"] == best["TrainingJobName"]
    listed = {j["TrainingJobName"] for j in sm.list_training_jobs(MaxResults=100)["TrainingJobSummaries"]}
    assert {s["TrainingJobName"] for s in summaries} <= listed

    by_value = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, SortBy="FinalObjectiveMetricValue", SortOrder="Descending"
    )["TrainingJobSummaries"]
    values = [s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in by_value]
    assert values == sorted(values, reverse=True)
    first = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=2
    )
    rest = sm.list_training_jobs_for_hyper_parameter_tuning_job(
        HyperParameterTuningJobName=name, MaxResults=2, NextToken=first["NextToken"]
    )
    names = [s["TrainingJobName"] for s in first["TrainingJobSummaries"] + rest["TrainingJobSummaries"]]
    assert names == sorted(s["TrainingJobName"] for s in summaries) and "NextToken" not in rest
    assert (
        sm.list_training_jobs_for_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=name, StatusEquals="Failed"
        )["TrainingJobSummaries"]
        == []
    )
    listed_jobs = sm.list_hyper_parameter_tuning_jobs(NameContains=name)["HyperParameterTuningJobSummaries"]
    assert [(j["HyperParameterTuningJobName"], j["Strategy"]) for j in listed_jobs] == [(name, "Bayesian")]
    assert sm.list_tags(ResourceArn=arn["HyperParameterTuningJobArn"])["Tags"] == [
        {"Key": "team", "Value": "dogs"}
    ]
    env["parent"] = name

    # Warm start from it: its trials seed the search, and the best of both is OverallBestTrainingJob.
    child = unique("warm")
    space = ranges([X_RANGE, LR_RANGE], [DEPTH_RANGE], [OPT_RANGE])
    request = tuning_request(
        child, env["role"], env["code"], max_jobs=1, parallel=1, static={"epochs": 3}, parameter_ranges=space
    )
    request["WarmStartConfig"] = {
        "ParentHyperParameterTuningJobs": [{"HyperParameterTuningJobName": name}],
        "WarmStartType": "IdenticalDataAndAlgorithm",
    }
    sm.create_hyper_parameter_tuning_job(**request)
    warm = wait_tuning(sm, child)
    assert warm["HyperParameterTuningJobStatus"] == "Completed"
    overall = warm["OverallBestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    own = warm["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"]
    assert overall == min(own, job["BestTrainingJob"]["FinalHyperParameterTuningJobObjectiveMetric"]["Value"])
    assert warm["WarmStartConfig"]["WarmStartType"] == "IdenticalDataAndAlgorithm"


def test_random_is_reproducible_by_seed_and_grid_covers_the_grid(env):
    sm = env["sm"]
    first, second, grid = unique("rand"), unique("rand"), unique("grid")
    for name in (first, second):
        _create(env, name, strategy="Random", max_jobs=2, parallel=2, RandomSeed=42)
    grid_ranges = ranges(categorical=[OPT_RANGE, {"Name": "depth", "Values": ["2", "4"]}])
    _create(env, grid, strategy="Grid", max_jobs=None, parallel=3, parameter_ranges=grid_ranges)
    for name in (first, second, grid):
        assert wait_tuning(sm, name)["HyperParameterTuningJobStatus"] == "Completed"

    def tried(name):
        return [
            s["TunedHyperParameters"] for s in sorted(trials(sm, name), key=lambda s: s["TrainingJobName"])
        ]

    assert tried(first) == tried(second)
    points = {(t["opt"], t["depth"]) for t in tried(grid)}
    assert points == {(o, d) for o in OPT_RANGE["Values"] for d in ("2", "4")}


def test_hyperband_and_auto_early_stopping_stop_clearly_worse_trials(env):
    sm = env["sm"]
    hyperband, auto = unique("hband"), unique("auto")
    _create(env, hyperband, strategy="Hyperband", max_jobs=8, parallel=4, static={"epochs": 9, "sleep": 0.15},
            RandomSeed=11,
            parameter_ranges=ranges([X_RANGE]),
            StrategyConfig={"HyperbandStrategyConfig": {"MinResource": 1, "MaxResource": 9}})  # fmt: skip
    _create(env, auto, strategy="Random", RandomSeed=3, max_jobs=6, parallel=1, early_stopping="Auto",
            static={"epochs": 6, "sleep": 0.1}, parameter_ranges=ranges([X_RANGE]))  # fmt: skip
    for name in (hyperband, auto):
        job = wait_tuning(sm, name, timeout_s=150)
        assert job["HyperParameterTuningJobStatus"] == "Completed", job
        summaries = trials(sm, name)
        stopped = [s for s in summaries if s["TrainingJobStatus"] == "Stopped"]
        completed = [s for s in summaries if s["TrainingJobStatus"] == "Completed"]
        assert stopped and completed, (
            name,
            [(s["TrainingJobStatus"], s["TunedHyperParameters"]) for s in summaries],
        )
        best = job["BestTrainingJob"]["TunedHyperParameters"]["x"]
        for item in stopped:  # a stopped trial was worse than the best: farther from the optimum x=0.3
            assert abs(float(item["TunedHyperParameters"]["x"]) - 0.3) >= abs(float(best) - 0.3)
            series = sm.describe_training_job(TrainingJobName=item["TrainingJobName"])
            assert series["TrainingJobStatus"] == "Stopped"


def test_stop_a_tuning_job_midway(env, cloud):
    sm, logs, name = env["sm"], cloud.client("logs"), unique("stop")
    _create(env, name, strategy="Random", max_jobs=6, parallel=2, static={"epochs": 40, "sleep": 0.25})

    def printing(trial: str) -> bool:  # its script is running: an epoch line reached CloudWatch Logs
        try:
            events = logs.filter_log_events(
                logGroupName="/aws/sagemaker/TrainingJobs", logStreamNamePrefix=trial
            )
        except logs.exceptions.ResourceNotFoundException:  # no job has logged anything yet
            return False
        return any("Testing Loss" in e["message"] for e in events["events"])

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        running = [s["TrainingJobName"] for s in trials(sm, name) if s["TrainingJobStatus"] == "InProgress"]
        if len(running) == 2 and all(printing(trial) for trial in running):
            break
        time.sleep(0.2)
    sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)
    job = wait_tuning(sm, name, timeout_s=60)
    assert job["HyperParameterTuningJobStatus"] == "Stopped"
    assert {s["TrainingJobStatus"] for s in trials(sm, name)} == {"Stopped"}
    assert len(trials(sm, name)) == 2
    with pytest.raises(ClientError, match="ValidationException"):
        sm.stop_hyper_parameter_tuning_job(HyperParameterTuningJobName=name)


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["ContinuousParameterRanges"].append(
            {"Name": "lr", "MinValue": "0.5", "MaxValue": "0.1"}), "ValidationException", "MinValue"),
        (lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["CategoricalParameterRanges"].append(
            {"Name": "c", "Values": [str(i) for i in range(31)]}), "ValidationException", "30"),
        (lambda r: r["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"].update(
            MetricName="Accuracy"), "ValidationException", "not defined"),
        (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Grid"), "ValidationException",
         "categorical ranges only"),
        (lambda r: r["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"].extend(
            {"Name": f"p{i}", "MinValue": "0", "MaxValue": "1"} for i in range(29)),
         "ValidationException", "maximum is 30"),  # 29 integer + x + opt: 31 tuned in all
        (lambda r: r.update(WarmStartConfig={"ParentHyperParameterTuningJobs": [
            {"HyperParameterTuningJobName": "no-such-parent"}], "WarmStartType": "TransferLearning"}),
         "ResourceNotFound", "can't find"),
        (lambda r: r["HyperParameterTuningJobConfig"].update(Strategy="Hyperband"), "ValidationException",
         "MaxResource"),
        (lambda r: r["HyperParameterTuningJobConfig"]["ResourceLimits"].update(MaxParallelTrainingJobs=11),
         "ResourceLimitExceeded", "parallel"),
    ],
)  # fmt: skip
def test_bad_input_gets_aws_errors(env, change, code, message):
    request = tuning_request(unique("bad"), env["role"], env["code"])
    change(request)
    with pytest.raises(ClientError) as caught:
        env["sm"].create_hyper_parameter_tuning_job(**request)
    assert caught.value.response["Error"]["Code"] == code
    assert message in caught.value.response["Error"]["Message"]


def test_unknown_and_duplicate_jobs(env):
    sm = env["sm"]
    with pytest.raises(ClientError, match="ResourceNotFound"):
        sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName="nope-nope")
    parent = env.get("parent")
    if parent:
        with pytest.raises(ClientError, match="ResourceInUse"):
            sm.create_hyper_parameter_tuning_job(**tuning_request(parent, env["role"], env["code"]))
    assert json.dumps(sm.list_hyper_parameter_tuning_jobs(MaxResults=1), default=str)


def test_several_definitions_a_target_and_passrole(env, cloud):
    sm = env["sm"]
    # TrainingJobDefinitions: trials alternate between the definitions, each with its own ranges.
    name = unique("multi")
    base = tuning_request(name, env["role"], env["code"], strategy="Random", max_jobs=2, parallel=2)
    config = base["HyperParameterTuningJobConfig"]
    objective = config.pop("HyperParameterTuningJobObjective")
    space = config.pop("ParameterRanges")
    definitions = []
    for label, opt in (("adam-def", '"adam"'), ("sgd-def", '"sgd"')):
        item = dict(base["TrainingJobDefinition"], DefinitionName=label, TuningObjective=objective)
        item["HyperParameterRanges"] = {**space, "CategoricalParameterRanges": []}
        item["StaticHyperParameters"] = {**item["StaticHyperParameters"], "opt": opt}
        definitions.append(item)
    del base["TrainingJobDefinition"]
    sm.create_hyper_parameter_tuning_job(**base, TrainingJobDefinitions=definitions)
    job = wait_tuning(sm, name)
    assert job["HyperParameterTuningJobStatus"] == "Completed"
    assert [d["DefinitionName"] for d in job["TrainingJobDefinitions"]] == ["adam-def", "sgd-def"]
    assert sorted(s["TrainingJobDefinitionName"] for s in trials(sm, name)) == ["adam-def", "sgd-def"]

    # TargetObjectiveMetricValue: the first trial reaches it, so the search ends after one.
    target = unique("target")
    _create(env, target, strategy="Random", max_jobs=5, parallel=1,
            TuningJobCompletionCriteria={"TargetObjectiveMetricValue": 100.0})  # fmt: skip
    done = wait_tuning(sm, target)
    assert done["HyperParameterTuningJobStatus"] == "Completed" and len(trials(sm, target)) == 1
    assert "NumberOfTrainingJobsObjectiveNotImproving" in done["TuningJobCompletionDetails"]

    # A caller who may create tuning jobs but not pass the role is refused at Create.
    iam, user = cloud.client("iam"), unique("tuner")
    iam.create_user(UserName=user)
    iam.put_user_policy(UserName=user, PolicyName="tuning", PolicyDocument=json.dumps({
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "sagemaker:*", "Resource": "*"}],
    }))  # fmt: skip
    key = iam.create_access_key(UserName=user)["AccessKey"]
    as_user = cloud.client("sagemaker", key=key["AccessKeyId"], secret=key["SecretAccessKey"])
    with pytest.raises(ClientError) as denied:
        as_user.create_hyper_parameter_tuning_job(
            **tuning_request(unique("nopass"), env["role"], env["code"])
        )
    assert denied.value.response["Error"]["Code"] == "AccessDeniedException"
    assert "iam:PassRole" in denied.value.response["Error"]["Message"]
