"""Alarm windows as pure functions: M of N, comparisons, missing data, settling, configurations."""

from __future__ import annotations

import json

import pytest

from kennel.runtime.autoscaling.alarms import (
    ALARM,
    INSUFFICIENT_DATA,
    OK,
    AlarmConfigError,
    AlarmRule,
    check_config,
    evaluate,
    reason_data,
    rule_from_config,
    window_starts,
)

T = 1_800_000_000  # a multiple of 60: period starts below are T - 60·k
X, F = 30.0, 5.0  # a breaching and a fine value for "greater than 20"


def high(treat: str = "missing") -> AlarmRule:
    return AlarmRule(20.0, "GreaterThanThreshold", 60, 3, 3, treat)


def points(*values: float | None, period: int = 60) -> dict[int, float]:
    """Values for the newest len(values) periods before T, oldest first; None leaves a period missing."""
    n = len(values)
    return {T - period * (n - i): v for i, v in enumerate(values) if v is not None}


@pytest.mark.parametrize(
    ("treat", "values", "current", "state"),
    [
        ("missing", (X, X, X), OK, ALARM),
        ("missing", (X, X, F), ALARM, OK),
        ("missing", (F, F, F), INSUFFICIENT_DATA, OK),
        ("missing", (X, X, None), OK, INSUFFICIENT_DATA),  # undecided: the missing one could go either way
        ("missing", (F, None, None), ALARM, OK),  # decided: 3 of 3 can no longer be reached
        ("missing", (None, None, None), OK, INSUFFICIENT_DATA),
        ("ignore", (X, X, None), OK, OK),
        ("ignore", (None, None, None), ALARM, ALARM),
        ("breaching", (X, X, None), OK, ALARM),
        ("breaching", (None, None, None), OK, ALARM),
        ("notBreaching", (X, X, None), ALARM, OK),
        ("notBreaching", (None, None, None), ALARM, OK),
    ],
)
def test_three_of_three_with_missing_data(treat, values, current, state):
    assert evaluate(high(treat), points(*values), T + 1, current).state == state


@pytest.mark.parametrize(
    ("values", "state"),
    [((X, F, X), ALARM), ((X, F, F), OK), ((F, X, None), INSUFFICIENT_DATA), ((X, None, X), ALARM)],
)
def test_m_of_n(values, state):
    rule = AlarmRule(20.0, "GreaterThanThreshold", 60, 3, 2)
    assert evaluate(rule, points(*values), T + 1).state == state


def test_low_alarm_needs_fifteen_of_fifteen_below_ninety_percent():
    rule = AlarmRule(18.0, "LessThanThreshold", 60, 15, 15)
    assert evaluate(rule, points(*[0.0] * 15), T + 1).state == ALARM
    assert evaluate(rule, points(*[0.0] * 14, 19.0), T + 1).state == OK
    assert evaluate(rule, points(*[0.0] * 14), T + 1).state == INSUFFICIENT_DATA  # the oldest is missing
    assert evaluate(rule, points(18.0, *[0.0] * 14), T + 1).state == OK  # "less than" is strict


@pytest.mark.parametrize(
    ("operator", "value", "breaches"),
    [
        ("GreaterThanThreshold", 20.0, False),
        ("GreaterThanOrEqualToThreshold", 20.0, True),
        ("LessThanThreshold", 20.0, False),
        ("LessThanOrEqualToThreshold", 20.0, True),
        ("LessThanThreshold", 19.9, True),
        ("GreaterThanThreshold", 20.1, True),
    ],
)
def test_comparison_operators(operator, value, breaches):
    assert AlarmRule(20.0, operator, 60, 1, 1).breaches(value) is breaches


def test_window_is_the_newest_complete_periods_and_waits_for_late_data():
    rule = high()
    assert window_starts(rule, T + 0.5) == [T - 180, T - 120, T - 60]
    # Within the settling time the period that just ended is not complete yet.
    assert window_starts(rule, T + 0.5, settle_s=1.0) == [T - 240, T - 180, T - 120]
    data = points(X, X, X)
    assert evaluate(rule, data, T + 0.5, settle_s=1.0).state == INSUFFICIENT_DATA
    assert evaluate(rule, data, T + 1.5, settle_s=1.0).state == ALARM


def test_one_second_periods_for_a_compressed_clock():
    rule = AlarmRule(20.0, "GreaterThanThreshold", 1, 3, 3)
    data = {T - 3: 25.0, T - 2: 26.0, T - 1: 27.0}
    result = evaluate(rule, data, T + 0.5)
    assert result.state == ALARM and result.end == T and result.latest == 27.0


def test_reason_names_the_deciding_datapoints_newest_first():
    result = evaluate(high(), points(25.0, 26.0, 27.0), T + 1)
    assert result.reason.startswith("Threshold Crossed: 3 out of the last 3 datapoints [27.0 (")
    assert "were greater than the threshold (20.0) (minimum 3 datapoints for OK -> ALARM transition)." in (
        result.reason
    )
    ok = evaluate(high(), points(25.0, 26.0, 5.0), T + 1)
    assert "was not greater than the threshold (20.0)" in ok.reason
    assert "(minimum 1 datapoint for ALARM -> OK transition)" in ok.reason
    assert evaluate(high(), {}, T + 1).reason == "Insufficient Data: 3 datapoints were unknown."


def test_latest_and_aggregates():
    result = evaluate(high(), points(10.0, 40.0, None), T + 1)
    assert result.latest == 40.0
    assert result.aggregate("Average") == 25.0
    assert result.aggregate("Minimum") == 10.0
    assert result.aggregate("Maximum") == 40.0
    assert evaluate(high(), {}, T + 1).aggregate("Average") is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"comparison": "LessThanLowerThreshold"}, "comparison"),
        ({"treat_missing": "zero"}, "TreatMissingData"),
        ({"period_s": 0}, "period"),
        ({"datapoints_to_alarm": 4}, "DatapointsToAlarm"),
    ],
)
def test_rule_validation(kwargs, message):
    args = {
        "threshold": 1.0,
        "comparison": "GreaterThanThreshold",
        "period_s": 60,
        "evaluation_periods": 3,
        "datapoints_to_alarm": 3,
    } | kwargs
    with pytest.raises(ValueError, match=message):
        AlarmRule(**args)


BASE = {
    "MetricName": "InvocationsPerInstance",
    "Namespace": "AWS/SageMaker",
    "Statistic": "Sum",
    "Period": 60,
    "EvaluationPeriods": 3,
    "Threshold": 20.0,
    "ComparisonOperator": "GreaterThanThreshold",
}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"ComparisonOperator": "LessThanLowerOrGreaterThanUpperThreshold"}, "InvalidParameterValue"),
        ({"Threshold": None}, "MissingParameter"),
        ({"DatapointsToAlarm": 4}, "InvalidParameterValue"),
        ({"TreatMissingData": "zero"}, "InvalidParameterValue"),
        ({"Statistic": None}, "InvalidParameterCombination"),
        ({"ExtendedStatistic": "p99"}, "InvalidParameterCombination"),
        ({"Period": 45}, "InvalidParameterValue"),
        ({"EvaluationPeriods": 1441}, "InvalidParameterValue"),
        ({"Metrics": [{"Id": "m1", "Expression": "1"}]}, "InvalidParameterCombination"),
    ],
)
def test_config_checks(change, code):
    config = {k: v for k, v in (BASE | change).items() if v is not None}
    with pytest.raises(AlarmConfigError) as info:
        check_config(config)
    assert info.value.code == code


def test_metric_math_config_and_rule():
    stat = {"Metric": {"Namespace": "N", "MetricName": "M"}, "Stat": "Sum", "Period": 60}
    config = {
        "EvaluationPeriods": 2,
        "Threshold": 1.0,
        "ComparisonOperator": "GreaterThanThreshold",
        "Metrics": [
            {"Id": "m1", "MetricStat": stat, "ReturnData": False},
            {"Id": "e1", "Expression": "m1 * 2"},
        ],
    }
    check_config(config)
    rule = rule_from_config(config, 2)
    assert (rule.period_s, rule.evaluation_periods, rule.datapoints_to_alarm) == (2, 2, 2)
    config["Metrics"][0]["ReturnData"] = True
    with pytest.raises(AlarmConfigError, match="ReturnData"):
        check_config(config)


def test_reason_data_is_aws_shaped_json():
    rule = rule_from_config(BASE, 60)
    result = evaluate(rule, points(25.0, 26.0, 27.0), T + 1)
    data = json.loads(reason_data(BASE, rule, result, T + 1))
    assert data["version"] == "1.0" and data["statistic"] == "Sum" and data["period"] == 60
    assert data["recentDatapoints"] == [27.0, 26.0, 25.0] and data["threshold"] == 20.0
    assert data["evaluatedDatapoints"][0]["timestamp"].endswith("+0000")
