"""``MetricDefinitions`` applied to log lines as they arrive (AWS's rule: the last match wins).

A definition's regex must have one capturing group (the value); AWS compiles them as Java regexes,
and the ones users write (``Testing Loss: ([0-9\\.]+)``) mean the same in Python. A regex that does
not compile is refused when the job is created, not discovered in the middle of training.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

MAX_LINE_CHARS = 4096  # only a line's head is searched: a runaway line must not stall the pump


class BadMetricDefinition(ValueError):
    pass


@dataclass(frozen=True)
class MetricDefinition:
    name: str
    regex: re.Pattern[str]


def compile_definitions(definitions: Sequence[dict]) -> list[MetricDefinition]:
    compiled: list[MetricDefinition] = []
    for item in definitions:
        name, pattern = item.get("Name", ""), item.get("Regex", "")
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise BadMetricDefinition(
                f"The metric definition {name!r} has an invalid regex {pattern!r}: {exc}"
            ) from None
        if regex.groups < 1:
            raise BadMetricDefinition(
                f"The metric definition {name!r} regex {pattern!r} needs one capturing group for the value."
            )
        compiled.append(MetricDefinition(name, regex))
    return compiled


def parse_value(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@dataclass
class MetricTracker:
    """Last value and full series per metric for one job (all hosts)."""

    definitions: list[MetricDefinition]
    last: dict[str, tuple[float, float]] = field(default_factory=dict)  # name -> (value, timestamp)
    series: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    def feed(self, line: str, timestamp: float) -> list[tuple[str, float]]:
        """The metrics this line emits, in definition order."""
        found: list[tuple[str, float]] = []
        head = line[:MAX_LINE_CHARS]
        for definition in self.definitions:
            for match in definition.regex.finditer(head):
                value = parse_value(match.group(1))
                if value is None:
                    continue
                found.append((definition.name, value))
                self.last[definition.name] = (value, timestamp)
                points = self.series.setdefault(definition.name, [])
                if len(points) < 100_000:
                    points.append((timestamp, value))
        return found

    def final_metrics(self) -> list[dict]:
        return [{"MetricName": name, "Value": value, "Timestamp": stamp}
                for name, (value, stamp) in sorted(self.last.items())]  # fmt: skip
