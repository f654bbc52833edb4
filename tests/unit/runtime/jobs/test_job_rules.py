"""Debugger rules decided from logged loss series (and refused where they need tensors)."""

from __future__ import annotations

import pytest

from kennel.runtime.jobs.rules import evaluate_rule, loss_not_decreasing, overfit, overtraining

FALLING = [3.0, 2.5, 2.0, 1.6, 1.3, 1.1, 0.9, 0.8, 0.7, 0.6, 0.5, 0.45]
FLAT = [1.0, 0.99, 1.0, 1.0, 1.0, 1.0]


@pytest.mark.parametrize(
    ("values", "status"),
    [(FALLING, "NoIssuesFound"), (FLAT, "IssuesFound"), ([2.0, 1.0], "NoIssuesFound"), ([1.0], "Error")],
)
def test_loss_not_decreasing(values, status):
    assert loss_not_decreasing(values).status == status


@pytest.mark.parametrize(
    ("train", "valid", "status"),
    [
        ([1.0, 0.8, 0.6], [1.05, 0.85, 0.62], "NoIssuesFound"),
        ([1.0, 0.5, 0.2], [1.0, 0.9, 0.95], "IssuesFound"),
        ([0.0, 0.0], [1.0, 1.0], "NoIssuesFound"),  # a zero training loss is no ratio
    ],
)
def test_overfit(train, valid, status):
    assert overfit(train, valid).status == status


def test_overtraining():
    assert overtraining(FALLING, FALLING).status == "NoIssuesFound"
    assert overtraining([1.0] * 7, FALLING).status == "IssuesFound"


def test_rule_dispatch_and_honest_errors():
    series = {"Train Loss": FALLING, "Test Loss": [x * 1.05 for x in FALLING]}
    assert evaluate_rule("Overfit", {"rule_to_invoke": "Overfit"}, series).status == "NoIssuesFound"
    assert evaluate_rule("LossNotDecreasing", {}, {"Test Loss": FLAT}).status == "IssuesFound"
    only_test = evaluate_rule("Overfit", {}, {"Test Loss": FALLING})
    assert only_test.status == "Error" and "training-loss" in only_test.details
    vanishing = evaluate_rule("VanishingGradient", {}, series)
    assert vanishing.status == "Error" and "tensors" in vanishing.details
    met = evaluate_rule(
        "Overfit", {"ratio_threshold": "0.5"}, {"train loss": [1, 0.5, 0.2], "val loss": [1, 1, 1]}
    )
    assert met.status == "IssuesFound" and met.details.startswith(
        "RuleEvaluationConditionMet: Evaluation of the rule"
    )
