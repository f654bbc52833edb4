"""AWS's Auto early-stopping rule: worse than the median of earlier trials' running averages."""

from __future__ import annotations

import pytest

from kennel.runtime.tuning.early_stopping import should_stop

EARLIER = [[1.0, 0.8, 0.6], [2.0, 1.0, 0.5], [3.0, 2.0, 1.0]]
# running averages at epoch 1: 1, 2, 3 (median 2); epoch 2: 0.9, 1.5, 2.5 (median 1.5)


@pytest.mark.parametrize(
    ("current", "earlier", "minimize", "stop"),
    [
        ([2.5], EARLIER, True, True),  # 2.5 > median 2
        ([1.5], EARLIER, True, False),
        ([2.0], EARLIER, True, False),  # equal to the median is not worse
        ([1.0, 1.6], EARLIER, True, True),  # epoch 2: 1.6 > 1.5
        ([1.0, 1.4], EARLIER, True, False),
        ([1.5], EARLIER, False, True),  # maximising: 1.5 < 2
        ([2.5], EARLIER, False, False),
        ([9.0], EARLIER[:2], True, False),  # fewer than three earlier trials: no judgement yet
        ([9.0, 9.0, 9.0, 9.0], EARLIER, True, False),  # nobody reached epoch 4
        ([], EARLIER, True, False),
        ([1.0, 0.9, 1.1], [*EARLIER, [1.0, 0.9, 0.85]], True, True),  # epoch 3: median 1.04
    ],
)
def test_median_rule(current, earlier, minimize, stop):
    assert should_stop(current, earlier, minimize=minimize) is stop


def test_an_even_count_takes_the_mean_of_the_middle_two():
    earlier = [*EARLIER, [1.0, 0.9, 0.85]]  # epoch 3 averages 0.8, 1.17, 2.0, 0.92: median 1.04
    assert not should_stop([1.0, 0.9, 1.0], earlier, minimize=True)
