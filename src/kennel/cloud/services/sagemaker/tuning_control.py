"""The tuning control loop: one background thread per provider steps every active tuning job.

A step reads the job and its trials from the store, feeds the objective values running trials have
printed since the last step to the search (which may stop a trial: Hyperband, Auto early stopping),
tells the search about trials that finished, and asks :func:`progress.decide` what next: launch
trials, stop the running ones, or finish. The search itself lives in memory and is rebuilt from the
store whenever it is missing (a restart): finished trials are replayed, running ones re-attached, a
warm start's parent trials seeded first. A step that raises is logged and retried on the next tick;
the loop goes on with the other jobs (a job failing 30 steps in a row is marked Failed).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select, update

from kennel.cloud.errors import AwsError
from kennel.cloud.services.sagemaker import tables as t
from kennel.cloud.services.sagemaker.common import dumps
from kennel.cloud.services.sagemaker.tuning_defs import (
    Definition,
    hyperband_resources,
    max_trials,
    trial_request,
)
from kennel.cloud.services.sagemaker.tuning_views import (
    ACTIVE_TRIAL,
    definition_for,
    defs_of,
    objective,
    retryable,
    series,
    spec_of,
    state_of,
)
from kennel.runtime.loop import ControlLoop
from kennel.runtime.tuning.progress import Decision, Snapshot, decide, not_improving
from kennel.runtime.tuning.study import Finished, Search, SearchConfig

log = logging.getLogger("kennel.tuning")

ACTIVE = ("InProgress", "Stopping")
TICK_S = 0.25
MAX_STEP_ERRORS = 30


@dataclass
class Live:
    """What a tuning job keeps in memory between steps (all of it can be rebuilt from the store)."""

    defs: list[Definition]
    searches: dict[str | None, Search]
    told: set[str] = field(default_factory=set)
    stop_sent: set[str] = field(default_factory=set)
    errors: int = 0


class TuningController:
    def __init__(self, *, store, training, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.training = training
        self.clock = clock
        self._lock = threading.RLock()
        self._live: dict[str, Live] = {}
        self._pending: dict[str, list[float]] = {}  # trial -> objective values not yet judged
        self._owners: dict[str, str] = {}  # trial -> its objective metric
        training.runner.observers.append(self._observe)

    # --- store --------------------------------------------------------------------------------------
    def row(self, name: str) -> dict | None:
        with self.store.read() as conn:
            found = conn.execute(select(t.tuning_jobs).where(t.tuning_jobs.c.name == name)).first()
        return dict(found._mapping) if found else None

    def trials(self, arn: str) -> list[dict]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.training_jobs).where(t.training_jobs.c.tuning_job_arn == arn))
            return sorted((dict(r._mapping) for r in rows), key=lambda r: r["created"])

    def active_names(self) -> list[str]:
        with self.store.read() as conn:
            rows = conn.execute(select(t.tuning_jobs.c.name).where(t.tuning_jobs.c.status.in_(ACTIVE)))
            return [r[0] for r in rows]

    def change(self, name: str, mutate: Callable[[dict], None], **columns) -> None:
        """Read-modify-write of a tuning job's state, under the lock the API's Stop also takes."""
        with self._lock, self.store.write() as conn:
            text = conn.execute(select(t.tuning_jobs.c.state).where(t.tuning_jobs.c.name == name)).one()[0]
            state = json.loads(text or "{}")
            mutate(state)
            conn.execute(
                update(t.tuning_jobs)
                .where(t.tuning_jobs.c.name == name)
                .values(state=dumps(state), modified=self.clock(), **columns)
            )

    # --- live objective values ----------------------------------------------------------------------
    def _observe(self, job: str, metric: str, value: float, when: float) -> None:
        if self._owners.get(job) == metric:
            with self._lock:
                self._pending.setdefault(job, []).append(value)

    # --- stop ---------------------------------------------------------------------------------------
    def request_stop(self, name: str) -> None:
        self.change(name, lambda state: state.update(stop_requested=True), status="Stopping")
        tuning = self.row(name)
        for trial in self.trials(tuning["arn"]):
            if trial["status"] == "InProgress":
                self.training.runner.stop(trial["name"])

    # --- one step -----------------------------------------------------------------------------------
    def step(self, name: str) -> None:
        tuning = self.row(name)
        if tuning is None or tuning["status"] not in ACTIVE:
            self._live.pop(name, None)
            return
        trials = self.trials(tuning["arn"])
        live = self._live.get(name)
        if live is None:
            live = self._live[name] = self._rebuild(tuning, trials)
        launched = state_of(tuning).get("trials") or {}

        def definition(trial_name: str) -> Definition:
            return definition_for(live.defs, (launched.get(trial_name) or {}).get("definition"))

        for trial in trials:
            if trial["status"] in ACTIVE_TRIAL:
                self._judge(live, trial["name"], definition(trial["name"]))
        for trial in sorted(trials, key=lambda r: state_of(r).get("training_end") or 0):
            if trial["status"] not in ACTIVE_TRIAL and trial["name"] not in live.told:
                self._tell(live, trial, definition(trial["name"]))
        decision = decide(self._snapshot(tuning, trials, live))
        if decision.stop_running:
            for trial in trials:
                if trial["status"] == "InProgress" and trial["name"] not in live.stop_sent:
                    live.stop_sent.add(trial["name"])
                    self.training.runner.stop(trial["name"])
        if decision.finish:
            return self._finish(tuning, trials, live, decision)
        for _ in range(decision.launch):
            if not self._launch(tuning, live):
                break
        live.errors = 0

    def _judge(self, live: Live, trial: str, definition: Definition) -> None:
        with self._lock:
            values = self._pending.pop(trial, [])
        search = live.searches[definition.name]
        for value in values:
            if search.report(trial, value) and trial not in live.stop_sent:
                log.info("tuning: stopping trial %s early (objective %s)", trial, value)
                live.stop_sent.add(trial)
                self.training.runner.stop(trial)

    def _tell(self, live: Live, trial: dict, definition: Definition) -> None:
        live.told.add(trial["name"])
        with self._lock:
            self._pending.pop(trial["name"], None)
            self._owners.pop(trial["name"], None)
        value = objective(trial, definition.metric)
        state = {"Completed": "complete", "Stopped": "pruned"}.get(trial["status"], "failed")
        live.searches[definition.name].tell(trial["name"], value, state, series(trial, definition.metric))

    def _snapshot(self, tuning: dict, trials: list[dict], live: Live) -> Snapshot:
        spec, state = spec_of(tuning), state_of(tuning)
        config = spec["HyperParameterTuningJobConfig"]
        limits = config["ResourceLimits"]
        criteria = config.get("TuningJobCompletionCriteria") or {}
        first = live.defs[0]
        finished = [r for r in trials if r["status"] not in ACTIVE_TRIAL]
        ordered = sorted(finished, key=lambda r: state_of(r).get("training_end") or 0)
        values = [v for v in (objective(r, first.metric) for r in ordered) if v is not None]
        retries = sum(1 for r in trials if retryable(r))
        not_improving_cfg = criteria.get("BestObjectiveNotImproving") or {}
        return Snapshot(
            minimize=first.minimize,
            max_trials=max_trials(config, live.defs),
            max_parallel=int(limits["MaxParallelTrainingJobs"]),
            max_runtime_s=float(limits["MaxRuntimeInSeconds"]) if limits.get("MaxRuntimeInSeconds") else None,
            elapsed_s=self.clock() - tuning["created"],
            launched=len(trials) - min(retries, max_trials(config, live.defs)),
            running=sum(1 for r in trials if r["status"] in ACTIVE_TRIAL),
            objectives=values,
            target=criteria.get("TargetObjectiveMetricValue"),
            not_improving_limit=not_improving_cfg.get("MaxNumberOfTrainingJobsNotImproving"),
            convergence=(criteria.get("ConvergenceDetected") or {}).get("CompleteOnConvergence") == "Enabled",
            stop_requested=bool(state.get("stop_requested")),
            search_exhausted=all(s.exhausted() for s in live.searches.values())
            and config["Strategy"] == "Grid",
            any_succeeded=bool(values),
        )

    def _launch(self, tuning: dict, live: Live) -> bool:
        name = tuning["name"]
        index = int(state_of(tuning).get("next_index", 1))
        candidates = [d for d in live.defs if not live.searches[d.name].exhausted()]
        if not candidates:
            return False
        definition = candidates[(index - 1) % len(candidates)]
        trial = f"{name}-{index:03d}-{uuid.uuid4().hex[:8]}"
        tuned = live.searches[definition.name].ask(trial, index)
        request = trial_request(definition, trial, tuned, json.loads(tuning["tags"] or "[]"))

        def record(state: dict) -> None:
            state.setdefault("trials", {})[trial] = {"index": index, "definition": definition.name}
            state["next_index"] = index + 1

        self.change(name, record)
        tuning["state"] = dumps({**state_of(tuning), "next_index": index + 1})
        self._owners[trial] = definition.metric
        try:
            self.training.launch_trial(request, tuning["arn"])
        except AwsError as exc:
            self._owners.pop(trial, None)
            reason = f"{exc.code}: {exc.message}"
            self.change(name, lambda state: state.update(end=self.clock(), failure_reason=reason),
                        status="Failed")  # fmt: skip
            self._live.pop(name, None)
            return False
        return True

    def _finish(self, tuning: dict, trials: list[dict], live: Live, decision: Decision) -> None:
        first = live.defs[0]
        ordered = sorted(
            (r for r in trials if r["status"] not in ACTIVE_TRIAL),
            key=lambda r: state_of(r).get("training_end") or 0,
        )
        values = [v for v in (objective(r, first.metric) for r in ordered) if v is not None]
        now = self.clock()

        def close(state: dict) -> None:
            state["end"] = now
            state["reason"] = decision.reason
            state["completion"] = {"NumberOfTrainingJobsObjectiveNotImproving": not_improving(
                values, first.minimize)}  # fmt: skip
            if decision.converged:
                state["completion"]["ConvergenceDetectedTime"] = now
            if decision.finish == "Failed":
                state["failure_reason"] = decision.reason

        self.change(tuning["name"], close, status=decision.finish)
        self._live.pop(tuning["name"], None)
        log.info("tuning job %s %s: %s", tuning["name"], decision.finish, decision.reason)

    # --- rebuild ------------------------------------------------------------------------------------
    def _rebuild(self, tuning: dict, trials: list[dict]) -> Live:
        spec = spec_of(tuning)
        config = spec["HyperParameterTuningJobConfig"]
        defs = defs_of(tuning)
        searches: dict[str | None, Search] = {}
        for definition in defs:
            low, high = hyperband_resources(config, definition)
            searches[definition.name] = Search(
                definition.ranges,
                SearchConfig(
                    strategy=config["Strategy"],
                    minimize=definition.minimize,
                    seed=config.get("RandomSeed"),
                    max_trials=max_trials(config, defs),
                    early_stopping=config.get("TrainingJobEarlyStoppingType") == "Auto",
                    min_resource=low,
                    max_resource=high if config["Strategy"] == "Hyperband" else 0,
                    # Hyperband's bracket of trial n hashes this name: one fixed per definition keeps a
                    # job's placement the same after a restart and a seeded job's the same every run.
                    name=f"kennel-{definition.name or 'main'}",
                ),
            )
        live = Live(defs=defs, searches=searches)
        for parent in self._parents(spec):
            for definition in defs:
                searches[definition.name].seed(self._finished(parent, definition))
        launched = state_of(tuning).get("trials") or {}
        for trial in trials:
            definition = definition_for(defs, (launched.get(trial["name"]) or {}).get("definition"))
            search = searches[definition.name]
            hyperparameters = spec_of(trial).get("HyperParameters") or {}
            if trial["status"] in ACTIVE_TRIAL:
                search.resume(trial["name"], hyperparameters)
                self._owners[trial["name"]] = definition.metric
            else:
                search.seed(self._finished([trial], definition))
                live.told.add(trial["name"])
        return live

    def _parents(self, spec: dict) -> list[list[dict]]:
        warm = spec.get("WarmStartConfig") or {}
        out = []
        for item in warm.get("ParentHyperParameterTuningJobs") or []:
            parent = self.row(item["HyperParameterTuningJobName"])
            if parent is not None:
                out.append([r for r in self.trials(parent["arn"]) if r["status"] not in ACTIVE_TRIAL])
        return out

    @staticmethod
    def _finished(trials: list[dict], definition: Definition) -> list[Finished]:
        state = {"Completed": "complete", "Stopped": "pruned"}
        return [
            Finished(
                hyperparameters=spec_of(r).get("HyperParameters") or {},
                value=objective(r, definition.metric),
                state=state.get(r["status"], "failed"),
                intermediate=series(r, definition.metric),
            )
            for r in trials
        ]

    # --- errors -------------------------------------------------------------------------------------
    def step_failed(self, name: str, exc: Exception) -> None:
        live = self._live.get(name)
        if live is None:
            return
        live.errors += 1
        if live.errors >= MAX_STEP_ERRORS:
            reason = f"InternalServerError: {type(exc).__name__}: {exc}"
            self.change(name, lambda state: state.update(end=self.clock(), failure_reason=reason),
                        status="Failed")  # fmt: skip
            self._live.pop(name, None)


def tuning_loop(controller: TuningController, tick_s: float = TICK_S) -> ControlLoop:
    """The never-die loop over active tuning jobs: each job's step isolated, timed and logged; a job
    whose step keeps failing is marked Failed (``step_failed``) while the others go on."""

    def step(name, _now: float) -> None:
        try:
            controller.step(name)
        except Exception as exc:
            controller.step_failed(name, exc)
            raise  # the loop logs it with its key and counts it

    return ControlLoop(controller.active_names, step, interval_s=tick_s, name="sagemaker-tuning")
