"""``TrainingJobEarlyStoppingType=Auto``: AWS's documented median rule, as a pure function.

After each epoch, the trial's objective value is compared with the median of the *running averages*
of every earlier trial's objective up to the same epoch; a value worse than that median stops the
trial [DG automatic-model-tuning-early-stopping]. AWS does not say how many earlier trials it needs
before it judges; Kennel waits for ``min_trials`` of them (3), so that one unlucky first trial cannot
stop everything after it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

MIN_TRIALS = 3


def running_average(values: Sequence[float], steps: int) -> float:
    return sum(values[:steps]) / steps


def should_stop(
    current: Sequence[float],
    earlier: Sequence[Sequence[float]],
    *,
    minimize: bool,
    min_trials: int = MIN_TRIALS,
) -> bool:
    """Whether a trial whose objective values so far are ``current`` is stopped now.

    ``earlier`` holds the per-epoch objective values of trials that started before it; only those that
    reached at least as many epochs take part.
    """
    if not current:
        return False
    step = len(current)
    averages = [running_average(values, step) for values in earlier if len(values) >= step]
    if len(averages) < min_trials:
        return False
    median = statistics.median(averages)
    value = current[-1]
    return value > median if minimize else value < median
