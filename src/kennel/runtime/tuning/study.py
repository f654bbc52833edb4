"""One tuning search, ask-and-tell: Kennel runs the trials, Optuna only proposes and judges them.

This is the one module that imports Optuna. The study lives in memory; what makes it durable is that
everything it learned is a finished training job in Kennel's store, so after a restart the caller
replays those trials (``seed``) and re-attaches the ones still running (``resume``).

Strategies:

- **Bayesian** — Optuna's Gaussian-process sampler (Matérn-5/2, log expected improvement), chosen over
  TPE by measurement (``benchmarks/tuning.py``, 21 seeds, a noisy 4-parameter function): GP needed a
  median of 11 trials to come within 5 % of the optimum, TPE 18, Random 23 (4 in flight: GP 14, TPE
  18). A proposal costs GP 0.1–1 s against TPE's milliseconds, which is nothing next to a training
  job; past ``GP_MAX_TRIALS`` trials its cubic fit would start to hold up the control loop, so a long
  search continues with TPE (multivariate, *constant liar*: running trials count as bad results, so
  parallel proposals spread out). Without scipy (GP's dependency) Bayesian is TPE throughout.
- **Random** — independent draws. Trial ``n`` is drawn from its own generator seeded by
  ``(RandomSeed, n)``, so the same seed gives the same trials even across restarts or warm starts.
- **Grid** — every combination of the categorical values, in a fixed order (no Optuna needed).
- **Hyperband** — TPE proposals plus Optuna's Hyperband pruner (brackets of asynchronous successive
  halving) between ``MinResource`` and ``MaxResource`` epochs: each objective value a trial prints is
  reported as one epoch, and the pruner says when the trial is stopped.

``TrainingJobEarlyStoppingType=Auto`` is AWS's median rule (:mod:`.early_stopping`), not Optuna's
median pruner, whose rule (best intermediate value vs. the median of raw values) differs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)
from optuna.trial import TrialState

from kennel.runtime.tuning import early_stopping
from kennel.runtime.tuning.space import Range, from_wire, grid, to_wire

optuna.logging.set_verbosity(optuna.logging.WARNING)
log = logging.getLogger("kennel.tuning")

STRATEGIES = ("Bayesian", "Random", "Grid", "Hyperband")
GP_MAX_TRIALS = 200
HYPERBAND_REDUCTION = 3


@dataclass(frozen=True)
class SearchConfig:
    strategy: str
    minimize: bool
    seed: int | None = None
    max_trials: int = 10
    early_stopping: bool = False  # TrainingJobEarlyStoppingType=Auto
    min_resource: int = 1  # Hyperband's epochs, first and most
    max_resource: int = 0  # 0: no Hyperband (or unknown)
    # Optuna's Hyperband puts a trial in a bracket by hashing the study name with the trial number:
    # a fixed name keeps that placement the same after a restart (and from run to run).
    name: str = "kennel-tuning"
    # Bayesian's sampler: "gp" (tuning jobs) or "tpe" (the benchmark measures both; Hyperband uses TPE,
    # whose constant liar and pruned-trial handling suit its many short trials).
    bayesian_sampler: str = "gp"


@dataclass
class Finished:
    """A finished trial as the store knows it: its hyperparameters as sent, objective and history."""

    hyperparameters: dict[str, str]
    value: float | None  # the last objective value it printed
    state: str  # "complete" | "pruned" | "failed"
    intermediate: list[float] = field(default_factory=list)


def distribution(r: Range) -> BaseDistribution:
    if r.kind == "Categorical":
        return CategoricalDistribution(list(r.values))
    low, high = r.bounds()
    if r.kind == "Integer":
        return IntDistribution(int(low), int(high), log=r.log)
    return FloatDistribution(low, high, log=r.log)


def _has_scipy() -> bool:
    try:
        import scipy  # noqa: F401  (GPSampler's dependency)
    except ImportError:
        log.warning("scipy is not installed: Bayesian tuning uses TPE instead of the GP sampler")
        return False
    return True


def _seed_for(seed: int | None, index: int) -> int:
    # A fixed mix of (seed, index): Python's hash() of a tuple is the same in every process for ints.
    return (hash((seed if seed is not None else 0, index)) & 0x7FFFFFFF) or 1


class Search:
    def __init__(self, ranges: list[Range], config: SearchConfig) -> None:
        self.ranges = ranges
        self.config = config
        self.distributions = {r.name: distribution(r) for r in ranges}
        self._grid = grid(ranges) if config.strategy == "Grid" else []
        self._taken: set[tuple[str, ...]] = set()
        self._running: dict[str, optuna.trial.Trial] = {}
        self._intermediate: dict[str, list[float]] = {}
        self._history: list[list[float]] = []  # finished trials' objective per epoch, in finish order
        self.study = optuna.create_study(
            direction="minimize" if config.minimize else "maximize",
            sampler=self._sampler(),
            pruner=self._pruner(),
            study_name=config.name,
        )

    # --- set-up -------------------------------------------------------------------------------------
    def _sampler(self) -> optuna.samplers.BaseSampler:
        if self.config.strategy == "Random":
            return optuna.samplers.RandomSampler(seed=_seed_for(self.config.seed, 0))
        # Random start-up trials before the model is trusted: one more than the number of tuned
        # hyperparameters (3 to 10). AWS's budgets are small, and on the benchmark the sampler's own
        # default of 10 spent most of a short search on random points.
        startup = min(10, max(3, len(self.ranges) + 1))
        if self.config.strategy == "Bayesian" and self.config.bayesian_sampler == "gp" and _has_scipy():
            return optuna.samplers.GPSampler(seed=self.config.seed, n_startup_trials=startup)
        return self._tpe(startup)

    def _tpe(self, startup: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            seed=self.config.seed, n_startup_trials=startup, multivariate=True, constant_liar=True
        )

    def _pruner(self) -> optuna.pruners.BasePruner:
        if self.config.strategy == "Hyperband" and self.config.max_resource > 0:
            return optuna.pruners.HyperbandPruner(
                min_resource=max(1, self.config.min_resource),
                max_resource=max(self.config.max_resource, self.config.min_resource, 1),
                reduction_factor=HYPERBAND_REDUCTION,
            )
        return optuna.pruners.NopPruner()

    def seed(self, trials: Iterable[Finished]) -> int:
        """Tell the study about trials that finished elsewhere (before a restart, or in a warm-start
        parent); the number it could use (hyperparameters outside this space are left out)."""
        used = 0
        for item in trials:
            params = from_wire(self.ranges, item.hyperparameters)
            if item.state == "complete" and item.value is None:
                item = Finished(item.hyperparameters, None, "failed", item.intermediate)
            if self._grid:
                self._taken.add(self._grid_key(item.hyperparameters))
            if not params:
                continue
            state = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED}.get(
                item.state, TrialState.FAIL
            )
            self.study.add_trial(
                optuna.trial.create_trial(
                    params=params,
                    distributions={k: self.distributions[k] for k in params},
                    value=item.value if state == TrialState.COMPLETE else None,
                    intermediate_values=dict(enumerate(item.intermediate, start=1)),
                    state=state,
                )
            )
            if item.intermediate:
                self._history.append(list(item.intermediate))
            used += 1
        return used

    # --- proposals ----------------------------------------------------------------------------------
    def grid_size(self) -> int:
        return len(self._grid)

    def exhausted(self) -> bool:
        return bool(self._grid) and len(self._taken) >= len(self._grid)

    def _grid_key(self, hyperparameters: dict[str, str]) -> tuple[str, ...]:
        return tuple(str(hyperparameters.get(r.name, "")) for r in self.ranges)

    def ask(self, key: str, index: int) -> dict[str, str]:
        """Hyperparameters (wire strings) for trial number ``index``, remembered under ``key``."""
        if self.config.strategy == "Grid":
            for point in self._grid:
                if self._grid_key(point) not in self._taken:
                    self._taken.add(self._grid_key(point))
                    self._intermediate[key] = []
                    return dict(point)
            raise LookupError("every grid point has been tried")
        if self.config.strategy == "Random":
            self.study.sampler = optuna.samplers.RandomSampler(seed=_seed_for(self.config.seed, index))
        elif isinstance(self.study.sampler, optuna.samplers.GPSampler) and (
            len(self.study.trials) >= GP_MAX_TRIALS
        ):
            self.study.sampler = self._tpe(startup=0)
        trial = self.study.ask(self.distributions)
        self._running[key] = trial
        self._intermediate[key] = []
        return to_wire(self.ranges, trial.params)

    def resume(self, key: str, hyperparameters: dict[str, str]) -> None:
        """Re-attach a trial that is still running (after a restart): same hyperparameters."""
        if self._grid:
            self._taken.add(self._grid_key(hyperparameters))
            self._intermediate[key] = []
            return
        params = from_wire(self.ranges, hyperparameters)
        self.study.enqueue_trial(params, skip_if_exists=False)
        self._running[key] = self.study.ask(self.distributions)
        self._intermediate[key] = []

    # --- progress -----------------------------------------------------------------------------------
    def report(self, key: str, value: float) -> bool:
        """One more objective value (one epoch) from a running trial; True when it should stop."""
        values = self._intermediate.get(key)
        if values is None:
            return False
        values.append(value)
        trial = self._running.get(key)
        if self.config.strategy == "Hyperband" and trial is not None and self.config.max_resource > 0:
            step = len(values)
            trial.report(value, step)
            if step < self.config.max_resource and trial.should_prune():
                return True
        if self.config.early_stopping:
            return early_stopping.should_stop(values, self._history, minimize=self.config.minimize)
        return False

    def intermediate(self, key: str) -> Sequence[float]:
        return self._intermediate.get(key, [])

    def tell(self, key: str, value: float | None, state: str, history: Sequence[float] | None = None) -> None:
        """A trial ended: ``complete`` (with its last objective), ``pruned`` (stopped early) or
        ``failed``; a completed trial without an objective counts as failed, as on AWS. ``history``,
        every objective value it printed, replaces what was reported live (values printed after the
        last report would otherwise be missing from the early-stopping rule's running averages)."""
        values = self._intermediate.pop(key, [])
        if history is not None:
            values = list(history)
        if values:
            self._history.append(values)
        trial = self._running.pop(key, None)
        if trial is None:
            return
        if state == "complete" and value is not None:
            self.study.tell(trial, value)
        elif state == "pruned":
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    def running(self) -> list[str]:
        return list(self._intermediate)
