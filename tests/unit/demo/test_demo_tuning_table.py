"""The demo's tuning step, its pure parts: the recipe's requests, trials read from the API, ranking
(best first), the table's rows."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from kennel.demo import training
from kennel.demo.recipe import BATCH_SIZE, LEARNING_RATE, RESNET18
from kennel.demo.tuning import Trial, plain, ranked, request, rows, short, trial_of

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def summary(name: str, status: str, value: float | None, lr: str = "0.001", batch: str = "32",
            seconds: float | None = 20.0) -> dict:  # fmt: skip
    item = {
        "TrainingJobName": name,
        "TrainingJobStatus": status,
        "TunedHyperParameters": {LEARNING_RATE: lr, BATCH_SIZE: batch},
    }
    if value is not None:
        item["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "MetricName": "Validation Loss",
            "Value": value,
        }
    if seconds is not None:
        item["TrainingStartTime"], item["TrainingEndTime"] = T0, T0 + timedelta(seconds=seconds)
    return item


def test_trial_of_reads_a_summary_and_unquotes_categorical_values():
    trial = trial_of(summary("hpo-001-aa", "Completed", 0.7, batch='"64"', seconds=21.5))
    assert trial == Trial("hpo-001-aa", "Completed", {LEARNING_RATE: "0.001", BATCH_SIZE: "64"}, 0.7, 21.5)
    running = trial_of(summary("hpo-002-bb", "InProgress", None, seconds=None))
    assert running.objective is None and running.seconds is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [('"32"', "32"), ("32", "32"), ("0.0004", "0.0004"), ('"adam"', "adam"), ("adam", "adam"), ("", "")],
)
def test_plain(raw, expected):
    assert plain(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("0.00039203922924637373", "0.000392"),
        ("16", "16"),
        ("0.002", "0.002"),
        ("2.0", "2"),
        ("adam", "adam"),
    ],
)
def test_short(raw, expected):
    assert short(raw) == expected


def test_ranked_puts_the_best_completed_trial_first():
    trials = [
        trial_of(summary("hpo-001", "Completed", 1.3)),
        trial_of(summary("hpo-002", "Failed", None)),
        trial_of(summary("hpo-003", "Stopped", 0.1)),  # better value, but not completed
        trial_of(summary("hpo-004", "Completed", 0.7)),
        trial_of(summary("hpo-005", "InProgress", None, seconds=None)),
        trial_of(summary("hpo-006", "Completed", 0.7)),  # a tie: started later, ranked later
    ]
    assert [t.name for t in ranked(trials)] == [
        "hpo-004",
        "hpo-006",
        "hpo-001",
        "hpo-003",
        "hpo-002",
        "hpo-005",
    ]
    assert [t.name for t in ranked(trials, minimize=False)][:3] == ["hpo-001", "hpo-004", "hpo-006"]
    assert ranked([]) == []


def test_rows_mark_the_best_and_format_values():
    trials = ranked([
        trial_of(summary("hpo-001", "Completed", 1.25, lr="0.009257222359298533", batch="16", seconds=29.4)),
        trial_of(summary("hpo-002", "Completed", 0.70412, lr="0.00039203922924637373", batch="64")),
        trial_of(summary("hpo-003", "Failed", None, seconds=None)),
    ])  # fmt: skip
    assert rows(trials, [BATCH_SIZE, LEARNING_RATE], best="hpo-002") == [
        ["1", "hpo-002 ★", "Completed", "64", "0.000392", "0.7041", "20"],
        ["2", "hpo-001", "Completed", "16", "0.00926", "1.2500", "29"],
        ["3", "hpo-003", "Failed", "32", "0.001", "-", "-"],
    ]
    short_names = rows(trials, [BATCH_SIZE], best="hpo-002", job="hpo")
    assert [row[1] for row in short_names] == ["002 ★", "001", "003"]


def test_request_searches_the_recipes_space_over_the_demo_training_job():
    source = {"sagemaker_program": '"train_entry.py"', "sagemaker_submit_directory": '"s3://b/k"'}
    made = request("dog-breeds-hpo", RESNET18, "s3://bucket/dogImages", source)
    config = made["HyperParameterTuningJobConfig"]
    assert config["Strategy"] == "Bayesian"
    assert config["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "Validation Loss"}
    assert config["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 3, "MaxParallelTrainingJobs": 1}
    (rate,) = config["ParameterRanges"]["ContinuousParameterRanges"]
    assert rate["Name"] == LEARNING_RATE and rate["ScalingType"] == "Logarithmic"
    assert float(rate["MinValue"]) < float(rate["MaxValue"])
    (batch,) = config["ParameterRanges"]["CategoricalParameterRanges"]
    assert batch == {"Name": BATCH_SIZE, "Values": ["16", "32", "64"]}
    definition = made["TrainingJobDefinition"]
    static = definition["StaticHyperParameters"]
    assert {LEARNING_RATE, BATCH_SIZE}.isdisjoint(static)  # the search's to set
    assert json.loads(static["image-size"]) == RESNET18.trial["image-size"]
    assert static["sagemaker_program"] == '"train_entry.py"'
    metrics = {m["Name"] for m in definition["AlgorithmSpecification"]["MetricDefinitions"]}
    assert RESNET18.objective in metrics
    assert definition["RoleArn"].endswith(f":role/{training.ROLE}")


def test_recipe_training_hyperparameters_take_the_tuned_values():
    tuned = {LEARNING_RATE: "0.0004", BATCH_SIZE: "16"}
    values = RESNET18.training_hyperparameters(tuned)
    assert values[LEARNING_RATE] == "0.0004" and values[BATCH_SIZE] == "16"
    assert values["image-size"] == RESNET18.full["image-size"] and values["epochs"] == RESNET18.full["epochs"]
    assert RESNET18.training_hyperparameters(tuned, epochs=2)["epochs"] == "2"
    assert RESNET18.training_hyperparameters({})[LEARNING_RATE] == RESNET18.defaults[LEARNING_RATE]


def test_the_default_recipe_is_transfer_learning_whose_trials_rank_what_the_jobs_run() -> None:
    from kennel.demo.recipe import DEFAULT_RECIPE, LITE0, RECIPES

    assert DEFAULT_RECIPE is LITE0 and set(RECIPES) == {"lite0", "resnet18"}
    trial, job = LITE0.trial_hyperparameters(), LITE0.training_hyperparameters({})
    assert (trial["pretrained"], trial["freeze"]) == ("true", "backbone")
    assert trial["image-size"] == job["image-size"]  # one feature cache key, one ranking
    low, high = LITE0.learning_rate
    assert low < float(LITE0.defaults[LEARNING_RATE]) < high
