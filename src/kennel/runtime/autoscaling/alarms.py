"""CloudWatch alarm evaluation as a pure function: M out of N datapoints, comparisons, missing data.

Also the pure parts of an alarm's configuration as PutMetricAlarm states it: its validation
(``check_config``), the rule it implies (``rule_from_config``) and AWS's StateReasonData (``reason_data``).

An alarm looks at the newest N complete periods of one statistic (its *evaluation periods*) and goes to
ALARM when M of them (*datapoints to alarm*) breach the threshold. The target-tracking alarms that
Application Auto Scaling creates are two such rules: 3 of 3 one-minute periods above the target, and
15 of 15 below 90 % of it.

Periods are aligned to multiples of their length since the epoch, as CloudWatch aligns minutes. A
period counts as complete once ``settle_s`` has passed after its end, so that data points still on
their way from a busy endpoint are not read as a low (or missing) datapoint.

Missing data (``TreatMissingData``), as Kennel models it:

* ``breaching`` / ``notBreaching``: a missing datapoint counts as breaching / not breaching;
* ``missing`` (the default): missing points are left out and the state changes only when the present
  points decide it — ALARM once M of them breach, OK once so many are fine that M breaching points can
  no longer be reached — and is INSUFFICIENT_DATA otherwise (so a window with no data at all is
  INSUFFICIENT_DATA, and target tracking never scales in on it);
* ``ignore``: like ``missing``, but an undecided window keeps the current state.

AWS documents the all-missing cases exactly like this and says that a partly missing window uses the
missing points "as few times as possible"; deciding only when the present data force the outcome is
Kennel's reading of that sentence.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

OK, ALARM, INSUFFICIENT_DATA = "OK", "ALARM", "INSUFFICIENT_DATA"
TREAT_MISSING = ("missing", "ignore", "breaching", "notBreaching")

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "GreaterThanThreshold": operator.gt,
    "GreaterThanOrEqualToThreshold": operator.ge,
    "LessThanThreshold": operator.lt,
    "LessThanOrEqualToThreshold": operator.le,
}
_WORDS = {
    "GreaterThanThreshold": "greater than",
    "GreaterThanOrEqualToThreshold": "greater than or equal to",
    "LessThanThreshold": "less than",
    "LessThanOrEqualToThreshold": "less than or equal to",
}
COMPARISONS = tuple(_COMPARE)
_AGGREGATES: dict[str, Callable[[list[float]], float]] = {
    "Average": lambda values: sum(values) / len(values),
    "Minimum": min,
    "Maximum": max,
}


@dataclass(frozen=True)
class AlarmRule:
    threshold: float
    comparison: str
    period_s: int  # real seconds (already scaled by the cloud's time scale)
    evaluation_periods: int
    datapoints_to_alarm: int
    treat_missing: str = "missing"

    def __post_init__(self) -> None:
        if self.comparison not in _COMPARE:
            raise ValueError(f"unsupported comparison operator {self.comparison!r}")
        if self.treat_missing not in TREAT_MISSING:
            raise ValueError(f"TreatMissingData must be one of {', '.join(TREAT_MISSING)}")
        if self.period_s < 1:
            raise ValueError("the period must be at least one second")
        if not 1 <= self.datapoints_to_alarm <= self.evaluation_periods:
            raise ValueError("DatapointsToAlarm must be between 1 and EvaluationPeriods")

    def breaches(self, value: float) -> bool:
        return _COMPARE[self.comparison](value, self.threshold)


@dataclass(frozen=True)
class Evaluation:
    state: str
    reason: str
    window: tuple[tuple[int, float | None], ...]  # (period start, value or None), oldest first
    breaching: int  # datapoints that breached, after missing data was filled in
    end: int  # where the newest evaluated period ends (epoch seconds)

    @property
    def latest(self) -> float | None:
        """The newest datapoint that exists in the window."""
        for _, value in reversed(self.window):
            if value is not None:
                return value
        return None

    def aggregate(self, how: str) -> float | None:
        """Average, Minimum or Maximum of the present datapoints (step scaling's MetricAggregationType)."""
        values = [value for _, value in self.window if value is not None]
        return _AGGREGATES[how](values) if values else None


@dataclass(frozen=True)
class AlarmStatus:
    """An alarm as the autoscaler reads it: its state, the last evaluation, and a change counter.

    It lives here, beside ``Evaluation``, so that the alarm book's port (``kennel.cloud.services.ports``)
    and the autoscaler can name it without importing CloudWatch's provider package."""

    name: str
    state: str
    threshold: float
    comparison: str
    actions_enabled: bool
    alarm_actions: tuple[str, ...]
    evaluation: Evaluation | None
    version: int  # increases with every evaluation and every SetAlarmState


def window_end(period_s: int, now: float, settle_s: float = 0.0) -> int:
    """The end of the newest complete period at ``now``."""
    return int(math.floor((now - settle_s) / period_s) * period_s)


def window_starts(rule: AlarmRule, now: float, settle_s: float = 0.0) -> list[int]:
    end = window_end(rule.period_s, now, settle_s)
    return [end - rule.period_s * k for k in range(rule.evaluation_periods, 0, -1)]


def evaluate(
    rule: AlarmRule,
    datapoints: Mapping[int, float],
    now: float,
    current: str = INSUFFICIENT_DATA,
    settle_s: float = 0.0,
) -> Evaluation:
    """The alarm's state at ``now`` given one value per period start (absent keys: missing data)."""
    starts = window_starts(rule, now, settle_s)
    window = tuple((start, datapoints.get(start)) for start in starts)
    breaching = [(start, v) for start, v in window if v is not None and rule.breaches(v)]
    fine = [(start, v) for start, v in window if v is not None and not rule.breaches(v)]
    unknown = len(window) - len(breaching) - len(fine)
    bad, good = len(breaching), len(fine)
    if rule.treat_missing == "breaching":
        bad, unknown = bad + unknown, 0
    elif rule.treat_missing == "notBreaching":
        good, unknown = good + unknown, 0
    n, m = rule.evaluation_periods, rule.datapoints_to_alarm
    end = starts[-1] + rule.period_s
    if bad >= m:
        return Evaluation(ALARM, _crossed(rule, breaching, bad, alarm=True), window, bad, end)
    if good > n - m:
        return Evaluation(OK, _crossed(rule, fine, good, alarm=False), window, bad, end)
    state = current if rule.treat_missing == "ignore" else INSUFFICIENT_DATA
    reason = f"Insufficient Data: {unknown} datapoint{'s were' if unknown != 1 else ' was'} unknown."
    return Evaluation(state, reason, window, bad, end)


def _crossed(rule: AlarmRule, points: list[tuple[int, float]], count: int, *, alarm: bool) -> str:
    """AWS's wording: the deciding datapoints newest first, with their period start times."""
    shown = ", ".join(f"{value!r} ({_stamp(start)})" for start, value in reversed(points))
    words = _WORDS[rule.comparison] if alarm else "not " + _WORDS[rule.comparison]
    verb = "were" if count != 1 else "was"
    needed = rule.datapoints_to_alarm if alarm else rule.evaluation_periods - rule.datapoints_to_alarm + 1
    transition = "OK -> ALARM" if alarm else "ALARM -> OK"
    plural = "s" if needed != 1 else ""
    return (
        f"Threshold Crossed: {count} out of the last {rule.evaluation_periods} datapoints [{shown}] {verb} "
        f"{words} the threshold ({rule.threshold!r}) (minimum {needed} datapoint{plural} for {transition} "
        "transition)."
    )


def _stamp(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%d/%m/%y %H:%M:%S")


# --- alarm configurations (PutMetricAlarm parameters) -------------------------------------------------------


class AlarmConfigError(ValueError):
    """A configuration PutMetricAlarm refuses; ``code`` is CloudWatch's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def config_period(config: Mapping) -> int:
    if "Period" in config:
        return config["Period"]
    return next(q["MetricStat"]["Period"] for q in config["Metrics"] if "MetricStat" in q)


def rule_from_config(config: Mapping, period_s: int) -> AlarmRule:
    """The rule an alarm configuration implies, over periods of ``period_s`` real seconds."""
    periods = config["EvaluationPeriods"]
    return AlarmRule(
        float(config["Threshold"]), config["ComparisonOperator"], period_s, periods,
        config.get("DatapointsToAlarm") or periods, config.get("TreatMissingData", "missing"),
    )  # fmt: skip


def check_config(config: Mapping) -> None:
    """PutMetricAlarm's rules for static-threshold metric and metric-math alarms (Kennel has no
    anomaly-detection bands)."""
    if "ComparisonOperator" not in config or "EvaluationPeriods" not in config:
        raise AlarmConfigError("MissingParameter", "ComparisonOperator and EvaluationPeriods are required.")
    if config["ComparisonOperator"] not in COMPARISONS:
        raise AlarmConfigError(
            "InvalidParameterValue",
            f"Kennel does not support anomaly-detection alarms (ComparisonOperator "
            f"{config['ComparisonOperator']}); use {', '.join(COMPARISONS)}.",
        )
    if "Threshold" not in config:
        raise AlarmConfigError("MissingParameter", "The parameter Threshold is required.")
    periods = config["EvaluationPeriods"]
    if config.get("DatapointsToAlarm", periods) > periods:
        raise AlarmConfigError(
            "InvalidParameterValue", "DatapointsToAlarm must be less than or equal to EvaluationPeriods."
        )
    if config.get("TreatMissingData", "missing") not in TREAT_MISSING:
        raise AlarmConfigError(
            "InvalidParameterValue", f"TreatMissingData must be one of {', '.join(TREAT_MISSING)}."
        )
    if "Metrics" in config:
        _check_math(config)
    else:
        if "MetricName" not in config or "Namespace" not in config or "Period" not in config:
            raise AlarmConfigError(
                "MissingParameter", "MetricName, Namespace and Period are required (or Metrics)."
            )
        if ("Statistic" in config) == ("ExtendedStatistic" in config):
            raise AlarmConfigError(
                "InvalidParameterCombination", "Specify exactly one of Statistic and ExtendedStatistic."
            )
    period = config_period(config)
    if period not in (10, 20, 30) and period % 60:
        raise AlarmConfigError(
            "InvalidParameterValue", f"The period {period} is invalid: use 10, 20, 30 or a multiple of 60."
        )
    if period * periods > (604_800 if period >= 3600 else 86_400):
        raise AlarmConfigError(
            "InvalidParameterValue", "The evaluation range (Period × EvaluationPeriods) is too long."
        )


def _check_math(config: Mapping) -> None:
    if any(k in config for k in ("MetricName", "Namespace", "Statistic", "ExtendedStatistic", "Period")):
        raise AlarmConfigError(
            "InvalidParameterCombination",
            "Metrics cannot be combined with MetricName, Namespace, Statistic, ExtendedStatistic or Period.",
        )
    if sum(1 for q in config["Metrics"] if q.get("ReturnData", True)) != 1:
        raise AlarmConfigError(
            "InvalidParameterValue",
            "Exactly one element of the Metrics list must have ReturnData set to true.",
        )
    stats = {q["MetricStat"]["Period"] for q in config["Metrics"] if "MetricStat" in q}
    if len(stats) != 1:
        raise AlarmConfigError(
            "InvalidParameterValue", "The metric queries of an alarm need MetricStat entries with one Period."
        )


def reason_data(config: Mapping, rule: AlarmRule, result: Evaluation, now: float) -> str:
    """AWS's StateReasonData JSON for a state the evaluation decided."""

    def iso(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"

    present = [(at, v) for at, v in reversed(result.window) if v is not None]
    data = {
        "version": "1.0", "queryDate": iso(now), "startDate": iso(result.window[0][0]),
        "period": config_period(config), "recentDatapoints": [v for _, v in present],
        "threshold": rule.threshold,
        "evaluatedDatapoints": [{"timestamp": iso(at), "value": v} for at, v in present],
    }  # fmt: skip
    if config.get("Statistic"):
        data["statistic"] = config["Statistic"]
    return json.dumps(data)
