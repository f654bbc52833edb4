"""Where runtime components send what they observe. The cloud implements these with CloudWatch
(metrics) and CloudWatch Logs; tests may pass in-memory ones."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class MetricSink(Protocol):
    def put(
        self,
        namespace: str,
        name: str,
        dimensions: Mapping[str, str],
        value: float,
        *,
        unit: str = "None",
        timestamp: float | None = None,  # epoch seconds; None = now
    ) -> None: ...


class LogSink(Protocol):
    def append(self, group: str, stream: str, events: Sequence[tuple[float, str]]) -> None:
        """``events`` are (epoch seconds, message); creates the group and stream when missing."""
        ...
