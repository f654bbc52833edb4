"""How tuning jobs and their trials read on the wire: trial summaries, counters, the best trial.

Pure functions of store rows (a tuning job's row, its trials' training-job rows), shared by the API
and the control loop.
"""

from __future__ import annotations

import json
from typing import Any

from kennel.cloud.services.sagemaker.tuning_defs import OBJECTIVE_HP, Definition, definitions

ACTIVE_TRIAL = ("InProgress", "Stopping")
# A trial that failed because Kennel stopped under it (no checkpoint to resume): AWS's
# RetryableError; it does not use up MaxNumberOfTrainingJobs, a replacement is launched.
RETRYABLE_PREFIX = "InternalServerError"


def spec_of(row: dict) -> dict:
    return json.loads(row["spec"])


def state_of(row: dict) -> dict:
    return json.loads(row["state"] or "{}")


def defs_of(row: dict) -> list[Definition]:
    return definitions(spec_of(row))


def definition_for(defs: list[Definition], name: str | None) -> Definition:
    return next((d for d in defs if d.name == name), defs[0])


def objective(trial: dict, metric: str) -> float | None:
    """The trial's objective: the last value its metric regex matched (AWS's rule), or None."""
    for item in state_of(trial).get("final_metrics") or []:
        if item["MetricName"] == metric:
            return float(item["Value"])
    return None


def series(trial: dict, metric: str) -> list[float]:
    """Every value of the objective the trial printed, in order (one per epoch for a per-epoch metric)."""
    return [float(value) for _, value in (state_of(trial).get("metric_series") or {}).get(metric, [])]


def retryable(trial: dict) -> bool:
    return trial["status"] == "Failed" and (state_of(trial).get("failure_reason") or "").startswith(
        RETRYABLE_PREFIX
    )


def objective_status(trial: dict, metric: str) -> str:
    if trial["status"] in ACTIVE_TRIAL:
        return "Pending"
    if trial["status"] == "Failed" or objective(trial, metric) is None:
        return "Failed"
    return "Succeeded"


def summary(tuning: dict, trial: dict, definition: Definition) -> dict:
    """HyperParameterTrainingJobSummary of one trial."""
    spec, state = spec_of(trial), state_of(trial)
    out: dict[str, Any] = {
        "TrainingJobName": trial["name"],
        "TrainingJobArn": trial["arn"],
        "TuningJobName": tuning["name"],
        "CreationTime": trial["created"],
        "TrainingJobStatus": trial["status"],
        "TunedHyperParameters": definition.tuned(spec.get("HyperParameters") or {}),
        "ObjectiveStatus": objective_status(trial, definition.metric),
    }
    if definition.name:
        out["TrainingJobDefinitionName"] = definition.name
    if state.get("training_start") is not None:
        out["TrainingStartTime"] = state["training_start"]
    if state.get("training_end") is not None:
        out["TrainingEndTime"] = state["training_end"]
    if state.get("failure_reason"):
        out["FailureReason"] = state["failure_reason"][:1024]
    value = objective(trial, definition.metric)
    if value is not None:
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {
            "Type": "Minimize" if definition.minimize else "Maximize",
            "MetricName": definition.metric,
            "Value": value,
        }
    return out


def trial_definitions(tuning: dict, trials: list[dict]) -> dict[str, Definition]:
    defs = defs_of(tuning)
    launched = state_of(tuning).get("trials") or {}
    return {
        t["name"]: definition_for(defs, (launched.get(t["name"]) or {}).get("definition")) for t in trials
    }


def better(a: float, b: float, minimize: bool) -> bool:
    return a < b if minimize else a > b


def best(tuning: dict, trials: list[dict], *, completed_only: bool = True) -> dict | None:
    """The trial with the best objective (Completed trials; AWS's BestTrainingJob)."""
    by_trial = trial_definitions(tuning, trials)
    chosen: tuple[float, dict] | None = None
    for trial in trials:
        if completed_only and trial["status"] != "Completed":
            continue
        definition = by_trial[trial["name"]]
        value = objective(trial, definition.metric)
        if value is None:
            continue
        if chosen is None or better(value, chosen[0], definition.minimize):
            chosen = (value, trial)
    return summary(tuning, chosen[1], by_trial[chosen[1]["name"]]) if chosen else None


def counters(tuning: dict, trials: list[dict]) -> tuple[dict, dict]:
    """TrainingJobStatusCounters and ObjectiveStatusCounters."""
    by_trial = trial_definitions(tuning, trials)
    status = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0}
    objectives = {"Succeeded": 0, "Pending": 0, "Failed": 0}
    for trial in trials:
        if trial["status"] in ACTIVE_TRIAL:
            status["InProgress"] += 1
        elif trial["status"] == "Failed":
            status["RetryableError" if retryable(trial) else "NonRetryableError"] += 1
        else:
            status[trial["status"]] = status.get(trial["status"], 0) + 1
        objectives[objective_status(trial, by_trial[trial["name"]].metric)] += 1
    return status, objectives


def echo_definition(raw: dict, definition: Definition) -> dict:
    """A definition as DescribeHyperParameterTuningJob echoes it: the SDK's attach() deletes
    ``_tuning_objective_metric`` from its static hyperparameters unconditionally, so it is there."""
    out = dict(raw)
    out["StaticHyperParameters"] = {**definition.static, OBJECTIVE_HP: definition.metric}
    return out
