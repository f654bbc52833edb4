"""SageMaker hyperparameter tuning jobs: the API operations.

A composed object owned by the SageMaker provider (``provider.tuning``). CreateHyperParameterTuningJob
checks the request as AWS does (ranges, objective metric, strategy, limits, warm-start parents, and
``iam:PassRole`` for each definition's role), writes the row and leaves the rest to the control loop
(:mod:`.tuning_control`), which launches the trials as real training jobs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from kennel.cloud.errors import ValidationException, error_class
from kennel.cloud.services.base import Context
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import ResourceNotFound, dumps, list_page, sagemaker_arn
from kennel.cloud.services.sagemaker.training import SAGEMAKER_PRINCIPAL
from kennel.cloud.services.sagemaker.tuning_control import ACTIVE, TuningController, tuning_loop
from kennel.cloud.services.sagemaker.tuning_defs import (
    MAX_WARM_START_PARENTS,
    check_config,
    definitions,
    trial_request,
)
from kennel.cloud.services.sagemaker.tuning_views import (
    ACTIVE_TRIAL,
    best,
    counters,
    defs_of,
    echo_definition,
    objective,
    spec_of,
    state_of,
    summary,
    trial_definitions,
)

ResourceInUse = error_class("ResourceInUse", 400)
KIND = "hyper-parameter-tuning-job"
_SORT_JOBS = {
    "Name": lambda row: row["name"],
    "CreationTime": lambda row: row["created"],
    "Status": lambda row: row["status"],
}
_SORT_TRIALS = {
    **_SORT_JOBS,
    "FinalObjectiveMetricValue": lambda row: row["objective"],
}


class TuningJobs:
    def __init__(
        self,
        *,
        store,
        region: str,
        account: str,
        training,
        require_passable: Callable[[Context, str, str, str], Any],
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.region = region
        self.account = account
        self.training = training
        self.require_passable = require_passable
        self.clock = clock
        self.controller = TuningController(store=store, training=training, clock=clock)
        self.loop = tuning_loop(self.controller)

    def start(self) -> None:
        self.loop.start()

    def close(self) -> None:
        self.loop.stop()

    def arn(self, name: str) -> str:
        return sagemaker_arn(self.region, self.account, KIND, name)

    # --- Create -------------------------------------------------------------------------------------
    def create(self, params: dict, ctx: Context) -> dict:
        name = params["HyperParameterTuningJobName"]
        arn = self.arn(name)
        config = params["HyperParameterTuningJobConfig"]
        defs = definitions(params)
        check_config(config, defs)
        self._check_warm_start(params, defs)
        for definition in defs:
            # The trial's CreateTrainingJob checks (script mode, channels, instance count) now, not later.
            probe = {r.name: r.to_wire(r.values[0] if r.values else r.low) for r in definition.ranges}
            self.training.validate(trial_request(definition, f"{name}-001-00000000", probe, []))
        for role in {d.raw["RoleArn"] for d in defs}:
            self.require_passable(ctx, role, SAGEMAKER_PRINCIPAL, arn)
        now = self.clock()
        spec = {k: v for k, v in params.items() if k != "Tags"}
        with self.store.write() as conn:
            if conn.execute(select(t.tuning_jobs.c.name).where(t.tuning_jobs.c.name == name)).first():
                raise ResourceInUse(f'Cannot create already existing hyperparameter tuning job "{arn}".')
            conn.execute(
                t.tuning_jobs.insert().values(
                    name=name, arn=arn, created=now, modified=now, status="InProgress", spec=dumps(spec),
                    state=dumps({"trials": {}, "next_index": 1}), tags=dumps(params.get("Tags", [])),
                )
            )  # fmt: skip
        self.loop.wake()  # the first trials start now, not at the next tick
        return {"HyperParameterTuningJobArn": arn}

    def _check_warm_start(self, params: dict, defs) -> None:
        warm = params.get("WarmStartConfig")
        if not warm:
            return
        parents = warm.get("ParentHyperParameterTuningJobs") or []
        if not 1 <= len(parents) <= MAX_WARM_START_PARENTS:
            raise ValidationException(
                f"WarmStartConfig names {len(parents)} parent tuning jobs; it takes 1 to "
                f"{MAX_WARM_START_PARENTS}."
            )
        for item in parents:
            parent = self.controller.row(item["HyperParameterTuningJobName"])
            if parent is None:
                missing = item["HyperParameterTuningJobName"]
                raise ResourceNotFound(f"Amazon SageMaker can't find a tuning job with name {missing}")
            if parent["status"] in ACTIVE:
                raise ValidationException(
                    f"The parent tuning job {parent['name']} is {parent['status']}; warm start needs parent "
                    "jobs that have finished (Completed, Stopped or Failed)."
                )
            if {d.metric for d in defs_of(parent)} != {d.metric for d in defs}:
                raise ValidationException(
                    f"The parent tuning job {parent['name']} tunes a different objective metric; warm start "
                    "needs the same objective."
                )

    # --- Describe / List ----------------------------------------------------------------------------
    def _require(self, name: str) -> dict:
        row = self.controller.row(name)
        if row is None:
            raise ResourceNotFound(f"Amazon SageMaker can't find a tuning job with name {name}")
        return row

    def describe(self, params: dict, ctx: Context) -> dict:
        row = self._require(params["HyperParameterTuningJobName"])
        spec, state = spec_of(row), state_of(row)
        trials = self.controller.trials(row["arn"])
        status_counts, objective_counts = counters(row, trials)
        defs = defs_of(row)
        out: dict[str, Any] = {
            "HyperParameterTuningJobName": row["name"],
            "HyperParameterTuningJobArn": row["arn"],
            "HyperParameterTuningJobConfig": spec["HyperParameterTuningJobConfig"],
            "HyperParameterTuningJobStatus": row["status"],
            "CreationTime": row["created"],
            "LastModifiedTime": row["modified"],
            "TrainingJobStatusCounters": status_counts,
            "ObjectiveStatusCounters": objective_counts,
            "ConsumedResources": {
                "RuntimeInSeconds": int((state.get("end") or self.clock()) - row["created"])
            },
        }
        if spec.get("TrainingJobDefinition"):
            out["TrainingJobDefinition"] = echo_definition(spec["TrainingJobDefinition"], defs[0])
        else:
            out["TrainingJobDefinitions"] = [
                echo_definition(raw, d) for raw, d in zip(spec["TrainingJobDefinitions"], defs, strict=True)
            ]
        if state.get("end") is not None:
            out["HyperParameterTuningEndTime"] = state["end"]
        if state.get("failure_reason"):
            out["FailureReason"] = state["failure_reason"][:1024]
        if state.get("completion"):
            out["TuningJobCompletionDetails"] = state["completion"]
        top = best(row, trials)
        if top is not None:
            out["BestTrainingJob"] = top
        if spec.get("WarmStartConfig"):
            out["WarmStartConfig"] = spec["WarmStartConfig"]
            if spec["WarmStartConfig"].get("WarmStartType") == "IdenticalDataAndAlgorithm":
                overall = self._overall_best(row, trials, spec["WarmStartConfig"])
                if overall is not None:
                    out["OverallBestTrainingJob"] = overall
        return out

    def _overall_best(self, row: dict, trials: list[dict], warm: dict) -> dict | None:
        """The best trial of this job and its warm-start parents (each judged by its own job)."""
        candidates: list[tuple[float, dict]] = []
        minimize = defs_of(row)[0].minimize
        for job, jobs_trials in [(row, trials)] + [
            (parent, self.controller.trials(parent["arn"]))
            for parent in (
                self.controller.row(item["HyperParameterTuningJobName"])
                for item in warm.get("ParentHyperParameterTuningJobs") or []
            )
            if parent is not None
        ]:
            found = best(job, jobs_trials)
            if found is not None:
                candidates.append((found["FinalHyperParameterTuningJobObjectiveMetric"]["Value"], found))
        if not candidates:
            return None
        return (min if minimize else max)(candidates, key=lambda item: item[0])[1]

    def list(self, params: dict, ctx: Context) -> dict:
        with self.store.read() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(t.tuning_jobs))]
        query = {"SortBy": "Name", "SortOrder": "Ascending", **params}
        page, token = list_page(rows, query, sort_keys=_SORT_JOBS)
        summaries = []
        for row in page:
            spec, state = spec_of(row), state_of(row)
            config = spec["HyperParameterTuningJobConfig"]
            status_counts, objective_counts = counters(row, self.controller.trials(row["arn"]))
            item = {
                "HyperParameterTuningJobName": row["name"],
                "HyperParameterTuningJobArn": row["arn"],
                "HyperParameterTuningJobStatus": row["status"],
                "Strategy": config["Strategy"],
                "CreationTime": row["created"],
                "LastModifiedTime": row["modified"],
                "TrainingJobStatusCounters": status_counts,
                "ObjectiveStatusCounters": objective_counts,
                "ResourceLimits": config["ResourceLimits"],
            }
            if state.get("end") is not None:
                item["HyperParameterTuningEndTime"] = state["end"]
            summaries.append(item)
        out: dict[str, Any] = {"HyperParameterTuningJobSummaries": summaries}
        if token:
            out["NextToken"] = token
        return out

    def list_trials(self, params: dict, ctx: Context) -> dict:
        row = self._require(params["HyperParameterTuningJobName"])
        trials = self.controller.trials(row["arn"])
        by_trial = trial_definitions(row, trials)
        rows = []
        sort_by = params.get("SortBy") or "Name"
        for trial in trials:
            value = objective(trial, by_trial[trial["name"]].metric)
            if sort_by == "FinalObjectiveMetricValue" and value is None:
                continue  # AWS leaves trials without an objective out of this ordering
            rows.append({**trial, "objective": value})
        query = {"SortBy": sort_by, "SortOrder": params.get("SortOrder") or "Ascending"}
        for key in ("StatusEquals", "MaxResults", "NextToken"):
            if params.get(key) is not None:
                query[key] = params[key]
        page, token = list_page(rows, query, sort_keys=_SORT_TRIALS)
        out: dict[str, Any] = {
            "TrainingJobSummaries": [summary(row, trial, by_trial[trial["name"]]) for trial in page]
        }
        if token:
            out["NextToken"] = token
        return out

    # --- Stop ---------------------------------------------------------------------------------------
    def stop(self, params: dict, ctx: Context) -> dict:
        row = self._require(params["HyperParameterTuningJobName"])
        if row["status"] != "InProgress":
            raise ValidationException(
                f"The request was rejected because the tuning job is in status {row['status']}."
            )
        self.controller.request_stop(row["name"])
        self.loop.wake()
        return {}

    def running_trials(self, name: str) -> list[str]:
        row = self._require(name)
        return [r["name"] for r in self.controller.trials(row["arn"]) if r["status"] in ACTIVE_TRIAL]
