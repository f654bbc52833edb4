"""SageMaker ``ParameterRanges`` ↔ search-space values (pure; no Optuna here).

A range is parsed once (with AWS's checks), then gives the sampler its bounds and scale, and turns a
sampled value into the string a training job receives: continuous values as Python's shortest float
text (``0.046565659236665``), integers as digits, categorical values exactly as submitted (the SDK
JSON-encodes them, so ``"\\"64\\""`` reaches the trial verbatim). ``from_wire`` goes back, so finished
trials (a restart, a warm-start parent) can be told to a fresh optimiser.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

MAX_TUNED = 30  # searchable hyperparameters per tuning job [DG automatic-model-tuning-limits]
MAX_CATEGORICAL_VALUES = 30
SCALINGS = ("Auto", "Linear", "Logarithmic", "ReverseLogarithmic")
# "Auto" picks a log scale when a positive range spans two orders of magnitude or more: a learning
# rate in [0.001, 0.1] is then searched evenly per decade, as a person would, not 99 % above 0.001.
AUTO_LOG_SPAN = 100.0

Kind = Literal["Integer", "Continuous", "Categorical"]


class SpaceError(ValueError):
    """A range AWS would refuse (the message is the ValidationException's)."""


@dataclass(frozen=True)
class Range:
    name: str
    kind: Kind
    low: float = 0.0
    high: float = 0.0
    scaling: str = "Linear"  # resolved: Linear | Logarithmic | ReverseLogarithmic
    values: tuple[str, ...] = ()

    @property
    def log(self) -> bool:
        return self.scaling in ("Logarithmic", "ReverseLogarithmic")

    def bounds(self) -> tuple[float, float]:
        """The bounds the sampler searches: a reverse-log range is searched as ``1 - x`` on a log scale,
        which puts most samples close to 1, where such parameters (momentum, decay) are sensitive."""
        if self.scaling == "ReverseLogarithmic":
            return 1.0 - self.high, 1.0 - self.low
        return self.low, self.high

    def to_wire(self, sampled: float | str) -> str:
        if self.kind == "Categorical":
            return str(sampled)
        if self.kind == "Integer":
            return str(round(float(sampled)))
        value = float(sampled)
        if self.scaling == "ReverseLogarithmic":
            value = 1.0 - value
        return repr(min(max(value, self.low), self.high))

    def from_wire(self, text: str) -> float | str | None:
        """The sampler's value for a hyperparameter string, or None when it lies outside this range."""
        if self.kind == "Categorical":
            return text if text in self.values else None
        try:
            value = float(text.strip('"'))
        except ValueError:
            return None
        if not math.isfinite(value) or not self.low <= value <= self.high:
            return None
        if self.kind == "Integer":
            return int(value)
        return 1.0 - value if self.scaling == "ReverseLogarithmic" else value


def _number(item: Mapping, key: str, kind: Kind) -> float:
    text = str(item.get(key, ""))
    try:
        value = int(text) if kind == "Integer" else float(text)
    except ValueError:
        raise SpaceError(
            f"The {key} '{text}' of hyperparameter '{item.get('Name')}' is not a valid "
            f"{'integer' if kind == 'Integer' else 'number'}."
        ) from None
    if not math.isfinite(value):
        raise SpaceError(f"The {key} of hyperparameter '{item.get('Name')}' must be finite.")
    return float(value)


def _numeric(item: Mapping, kind: Kind) -> Range:
    name = item["Name"]
    low, high = _number(item, "MinValue", kind), _number(item, "MaxValue", kind)
    if low > high:
        raise SpaceError(
            f"The MinValue '{item['MinValue']}' of hyperparameter '{name}' must be less than or equal to "
            f"its MaxValue '{item['MaxValue']}'."
        )
    scaling = item.get("ScalingType") or "Auto"
    if scaling not in SCALINGS:
        raise SpaceError(f"ScalingType '{scaling}' of hyperparameter '{name}' is not one of {SCALINGS}.")
    if scaling == "Auto":
        scaling = "Logarithmic" if low > 0 and high / low >= AUTO_LOG_SPAN else "Linear"
    if scaling == "Logarithmic" and low <= 0:
        raise SpaceError(
            f"Hyperparameter '{name}' uses Logarithmic scaling, which needs a MinValue greater than 0."
        )
    if scaling == "ReverseLogarithmic":
        if kind == "Integer":
            raise SpaceError(
                f"ReverseLogarithmic scaling is only for continuous hyperparameters ('{name}' is an integer)."
            )
        if not (low >= 0 and high < 1):
            raise SpaceError(
                f"Hyperparameter '{name}' uses ReverseLogarithmic scaling, which needs 0 <= MinValue and "
                "MaxValue < 1."
            )
    return Range(name, kind, low, high, scaling)


def parse_ranges(ranges: Mapping | None) -> list[Range]:
    """``ParameterRanges`` (Integer, Continuous, Categorical) as ranges, with AWS's checks."""
    ranges = ranges or {}
    if ranges.get("AutoParameters"):
        raise SpaceError("AutoParameters (Autotune) are not supported by Kennel; give explicit ranges.")
    out: list[Range] = []
    for item in ranges.get("IntegerParameterRanges") or []:
        out.append(_numeric(item, "Integer"))
    for item in ranges.get("ContinuousParameterRanges") or []:
        out.append(_numeric(item, "Continuous"))
    for item in ranges.get("CategoricalParameterRanges") or []:
        values = tuple(item.get("Values") or [])
        if not values:
            raise SpaceError(f"Categorical hyperparameter '{item['Name']}' needs at least one value.")
        if len(values) > MAX_CATEGORICAL_VALUES:
            raise SpaceError(
                f"Categorical hyperparameter '{item['Name']}' has {len(values)} values; the maximum is "
                f"{MAX_CATEGORICAL_VALUES}."
            )
        if len(set(values)) != len(values):
            raise SpaceError(f"Categorical hyperparameter '{item['Name']}' repeats a value.")
        out.append(Range(item["Name"], "Categorical", values=values))
    names = [r.name for r in out]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise SpaceError(f"Hyperparameters {duplicated} appear in more than one range.")
    if len(out) > MAX_TUNED:
        raise SpaceError(f"The tuning job searches {len(out)} hyperparameters; the maximum is {MAX_TUNED}.")
    if not out:
        raise SpaceError("ParameterRanges must name at least one hyperparameter to tune.")
    return out


def grid(ranges: list[Range]) -> list[dict[str, str]]:
    """Every combination of the categorical values, in a fixed order (Grid's whole search)."""
    numeric = [r.name for r in ranges if r.kind != "Categorical"]
    if numeric:
        raise SpaceError(
            f"The Grid strategy searches categorical ranges only; {numeric} are Integer or Continuous."
        )
    names = [r.name for r in ranges]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*(r.values for r in ranges))]


def to_wire(ranges: list[Range], sampled: Mapping[str, float | str]) -> dict[str, str]:
    return {r.name: r.to_wire(sampled[r.name]) for r in ranges if r.name in sampled}


def from_wire(ranges: list[Range], hyperparameters: Mapping[str, str]) -> dict[str, float | str]:
    """The sampler's values for those of ``hyperparameters`` that fall in this space (others dropped)."""
    out: dict[str, float | str] = {}
    for r in ranges:
        if r.name in hyperparameters:
            value = r.from_wire(str(hyperparameters[r.name]))
            if value is not None:
                out[r.name] = value
    return out
