"""What a tuning job does next, decided from a snapshot of its trials (pure; the loop acts on it).

One step of the control loop reads the tuning job and its trials, builds a :class:`Snapshot`, and
:func:`decide` answers: how many trials to launch, whether to stop the running ones, and whether the
job is over (and why). Completion criteria follow AWS [DG automatic-model-tuning-progress]:
MaxNumberOfTrainingJobs, MaxRuntimeInSeconds, TargetObjectiveMetricValue reached by a trial,
BestObjectiveNotImproving (N trials in a row that do not improve the best by 1 % or more), and
ConvergenceDetected, whose rule AWS does not publish: Kennel calls a search converged when the last
``max(10, budget // 4)`` objectives improved the best by less than 1 % in all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

IMPROVEMENT = 0.01  # AWS's "1 %"
CONVERGENCE_MIN_TRIALS = 10


@dataclass(frozen=True)
class Snapshot:
    minimize: bool
    max_trials: int
    max_parallel: int
    max_runtime_s: float | None
    elapsed_s: float
    launched: int  # trials that count against MaxNumberOfTrainingJobs
    running: int
    objectives: Sequence[float]  # finished trials' objectives, in the order they finished
    target: float | None = None
    not_improving_limit: int | None = None
    convergence: bool = False
    stop_requested: bool = False
    search_exhausted: bool = False  # Grid: every point launched
    any_succeeded: bool = True


@dataclass(frozen=True)
class Decision:
    launch: int = 0
    stop_running: bool = False
    finish: str | None = None  # Completed | Stopped | Failed, once nothing runs
    reason: str = ""
    converged: bool = False


def improves(candidate: float, best: float, minimize: bool) -> bool:
    """Better than ``best`` by at least 1 % of its magnitude (any improvement when best is 0)."""
    margin = abs(best) * IMPROVEMENT
    return candidate < best - margin if minimize else candidate > best + margin


def not_improving(objectives: Sequence[float], minimize: bool) -> int:
    """How many trials in a row, up to the last, have not improved the best by 1 % or more."""
    best: float | None = None
    count = 0
    for value in objectives:
        if best is None or improves(value, best, minimize):
            best, count = value, 0
        else:
            count += 1
            if (value < best) if minimize else (value > best):
                best = value  # a small gain still moves the best, it just does not reset the count
    return count


def reached(value: float, target: float, minimize: bool) -> bool:
    return value <= target if minimize else value >= target


def converged(objectives: Sequence[float], minimize: bool, budget: int) -> bool:
    window = max(CONVERGENCE_MIN_TRIALS, budget // 4)
    if len(objectives) <= window:
        return False
    before = list(objectives[:-window])
    best_before = min(before) if minimize else max(before)
    best_after = min(objectives) if minimize else max(objectives)
    return not improves(best_after, best_before, minimize)


def decide(s: Snapshot) -> Decision:
    early_end = _early_end(s)
    if early_end is not None:
        reason, status, was_converged = early_end
        if s.running:
            return Decision(stop_running=True, reason=reason, converged=was_converged)
        return Decision(finish=status, reason=reason, converged=was_converged)
    budget_left = max(0, s.max_trials - s.launched)
    if s.search_exhausted:
        budget_left = 0
    if budget_left == 0:
        if s.running:
            return Decision()
        if not s.any_succeeded:
            return Decision(
                finish="Failed", reason="All training jobs failed or emitted no objective metric."
            )
        return Decision(finish="Completed", reason="MaxNumberOfTrainingJobs reached")
    return Decision(launch=min(budget_left, max(0, s.max_parallel - s.running)))


def _early_end(s: Snapshot) -> tuple[str, str, bool] | None:
    if s.stop_requested:
        return "Stopped by StopHyperParameterTuningJob", "Stopped", False
    if s.max_runtime_s is not None and s.elapsed_s >= s.max_runtime_s:
        return "MaxRuntimeInSeconds reached", "Completed", False
    if s.target is not None and any(reached(v, s.target, s.minimize) for v in s.objectives):
        return "TargetObjectiveMetricValue reached", "Completed", False
    if s.not_improving_limit and not_improving(s.objectives, s.minimize) >= s.not_improving_limit:
        return "BestObjectiveNotImproving", "Completed", False
    if s.convergence and converged(s.objectives, s.minimize, s.max_trials):
        return "ConvergenceDetected", "Completed", True
    return None
