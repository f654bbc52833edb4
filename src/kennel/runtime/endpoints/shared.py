"""The endpoint fleet's shared types: what a variant runs, an endpoint's live state, a slot to start
one more instance in, and the errors a deployment reports. Kept apart from the manager so the
manager's parts (standby, upkeep) use them without importing the manager."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from kennel.runtime.endpoints.router import Fleet, Router


@dataclass(frozen=True)
class VariantSpec:
    name: str
    model_name: str
    model_data_url: str | None
    environment: dict[str, str]
    instance_type: str
    instance_count: int
    weight: float
    image: str | None = None
    startup_timeout_s: float = 240.0


class CapacityError(Exception):
    pass


class DeploymentFailed(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(eq=False)
class Endpoint:
    name: str
    router: Router
    reserved: int = 0  # instances counted against the machine's limit
    fleets: list[Fleet] = field(default_factory=list)  # the active one plus any being launched
    cancelled: threading.Event = field(default_factory=threading.Event)

    @property
    def fleet(self) -> Fleet:
        return self.router.fleet


@dataclass(eq=False)
class Slot:
    """What a variant needs to start one more instance like the others."""

    spec: VariantSpec
    model_dir: Path
    fleet: Fleet
