"""MetricDefinitions over log lines: the last value wins; bad regexes are refused up front."""

from __future__ import annotations

import pytest

from kennel.runtime.jobs.metrics import BadMetricDefinition, MetricTracker, compile_definitions


def test_last_match_wins_and_series_kept():
    tracker = MetricTracker(
        compile_definitions([{"Name": "Test Loss", "Regex": r"Testing Loss: ([0-9\.]+)"}])
    )
    assert tracker.feed("Testing Loss: 3.5", 1.0) == [("Test Loss", 3.5)]
    assert tracker.feed("nothing here", 2.0) == []
    tracker.feed("Testing Loss: 2.25", 3.0)
    assert tracker.final_metrics() == [{"MetricName": "Test Loss", "Value": 2.25, "Timestamp": 3.0}]
    assert tracker.series["Test Loss"] == [(1.0, 3.5), (3.0, 2.25)]


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("loss=nan", []),  # not a finite number: AWS would not publish it either
        ("loss=1e-3", [("loss", 0.001)]),
        ("loss=1. loss=2.", [("loss", 1.0), ("loss", 2.0)]),
        ("loss=" + "9" * 5000, []),  # the match falls past the searched head of a runaway line
    ],
)
def test_values(line, expected):
    tracker = MetricTracker(compile_definitions([{"Name": "loss", "Regex": r"loss=([^ ]+)"}]))
    assert tracker.feed(line, 0.0) == expected


@pytest.mark.parametrize("regex", ["Loss: (", "Loss: [0-9]+"])
def test_bad_definitions_are_refused(regex):
    with pytest.raises(BadMetricDefinition):
        compile_definitions([{"Name": "loss", "Regex": regex}])
