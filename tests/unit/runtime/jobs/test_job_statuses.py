"""Training-job status transitions: AWS's order, messages, end times."""

from __future__ import annotations

import pytest

from kennel.runtime.jobs.statuses import BadTransition, advance, primary


def test_happy_path_closes_each_status():
    history = advance([], "Starting", 1.0)
    for step, now in (("Downloading", 2.0), ("Training", 3.0), ("Uploading", 4.0), ("Completed", 5.0)):
        history = advance(history, step, now)
    assert [h.status for h in history] == ["Starting", "Downloading", "Training", "Uploading", "Completed"]
    assert [h.end for h in history] == [2.0, 3.0, 4.0, 5.0, 5.0]
    assert all(h.message for h in history)
    assert history[-1].wire()["StatusMessage"] == "Training job completed"


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        (["Starting", "Downloading", "Training", "Failed"], True),
        (["Starting", "Pending", "Downloading"], True),
        (["Starting", "Downloading", "Training", "Stopping", "Uploading", "Stopped"], True),
        (["Starting", "Downloading", "Training", "MaxRuntimeExceeded"], True),
        (["Starting", "Training"], False),
        (["Starting", "Downloading", "Training", "Completed"], False),
        (["Starting", "Downloading", "Training", "Uploading", "Completed", "Training"], False),
    ],
)
def test_transitions(path, allowed):
    history: list = []
    try:
        for i, step in enumerate(path):
            history = advance(history, step, float(i))
    except BadTransition:
        assert not allowed
    else:
        assert allowed


def test_primary_status():
    assert primary("Training") == "InProgress"
    assert primary("MaxRuntimeExceeded") == "Stopped"
    assert primary("Stopping") == "Stopping"
