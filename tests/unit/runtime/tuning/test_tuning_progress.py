"""The control loop's pure decision: launches, completion criteria, stop requests."""

from __future__ import annotations

import pytest

from kennel.runtime.tuning.progress import Snapshot, converged, decide, not_improving


def _snap(**changes):
    base = dict(minimize=True, max_trials=4, max_parallel=2, max_runtime_s=None, elapsed_s=0.0,
                launched=0, running=0, objectives=[])  # fmt: skip
    base.update(changes)
    return Snapshot(**base)


def test_launches_up_to_parallel_and_budget():
    assert decide(_snap()).launch == 2
    assert decide(_snap(launched=3, running=1)).launch == 1
    assert decide(_snap(launched=4, running=1)).launch == 0


def test_completes_when_budget_spent_and_nothing_runs():
    assert decide(_snap(launched=4, objectives=[1, 2])).finish == "Completed"
    assert decide(_snap(launched=4, any_succeeded=False)).finish == "Failed"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"stop_requested": True}, "Stopped"),
        ({"max_runtime_s": 10, "elapsed_s": 11}, "MaxRuntimeInSeconds"),
        ({"target": 0.5, "objectives": [0.7, 0.4]}, "TargetObjectiveMetricValue"),
        ({"not_improving_limit": 2, "objectives": [1.0, 0.995, 1.2]}, "BestObjectiveNotImproving"),
    ],
)
def test_early_ends_stop_running_trials_first(changes, reason):
    running = decide(_snap(running=2, launched=2, **changes))
    assert running.stop_running and running.finish is None and reason in running.reason
    done = decide(_snap(running=0, launched=2, **changes))
    assert done.finish == ("Stopped" if reason == "Stopped" else "Completed")


def test_not_improving_counts_trials_without_a_one_percent_gain():
    assert not_improving([1.0, 0.995, 0.999, 1.1], True) == 3
    assert not_improving([1.0, 0.5, 0.6], True) == 1
    assert not_improving([1.0, 2.0, 2.01], False) == 1


def test_convergence_needs_a_window_without_gain():
    assert not converged([5.0 - i for i in range(12)], True, 12)
    assert converged([5.0, 1.0] + [1.0] * 10 + [0.999], True, 12)
