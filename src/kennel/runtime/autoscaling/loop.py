"""What the autoscaler's control loop (the one never-die ``ControlLoop`` of ``kennel.runtime.loop``,
ticking alarm evaluation then every scalable target) acts on.

``ScalableResource`` is what the loop's steps act on: the capacity of one resource, and a way to ask for
a different one. The cloud implements it over the SageMaker API (UpdateEndpointWeightsAndCapacities).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kennel.runtime.loop import ControlLoop, LoopStats, StepStats

__all__ = ["Capacity", "ControlLoop", "LoopStats", "ScalableResource", "StepStats"]


@dataclass(frozen=True)
class Capacity:
    desired: int  # what the resource was last asked for
    current: int  # instances serving now
    updating: bool  # a change is still being carried out (the resource cannot take another now)
    failure: str | None = None  # the resource's latest failure message (a change that did not complete)


class ScalableResource(Protocol):
    def capacity(self, resource_id: str) -> Capacity | None:
        """The resource's capacity now; None when it does not exist."""
        ...

    def set_desired_capacity(self, resource_id: str, count: int) -> None:
        """Start moving the resource to ``count``; raises with a message the activity can show."""
        ...

    def prepare(self, resource_id: str, may_grow: bool) -> None:
        """Get ready for a possible scale-out (e.g. a warm standby) while ``may_grow``; idempotent."""
        ...
