"""Routing one InvokeEndpoint: variant by weight (or TargetVariant), instance by fewest requests in flight.

Selection is two pure functions over plain state, unit-tested without processes; :class:`Router`
adds the bookkeeping (in-flight counts under one lock, waiting briefly for a replacement instance,
timing) and talks to the instance over its keep-alive connections.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from kennel.runtime.endpoints.contract import BATCH_SIZE, CUSTOM_ATTRIBUTES, HANDLER_US, INFERENCE_ID
from kennel.runtime.endpoints.instances import Instance, InstanceTimeout, InstanceUnreachable
from kennel.runtime.endpoints.metrics import MetricBuffer

DEFAULT_TIMEOUT_S = 60.0


class Routable(Protocol):
    healthy: bool
    retired: bool
    outstanding: int


@dataclass(eq=False)
class Variant:
    """A production variant as routing sees it; the fleet manager adds and removes instances."""

    name: str
    weight: float
    instances: list[Instance] = field(default_factory=list)
    desired_count: int = 1
    desired_weight: float | None = None

    def routable(self) -> list[Instance]:
        return [i for i in self.instances if i.healthy and not i.retired]


@dataclass(eq=False)
class Fleet:
    """The variants of one endpoint config, with their instances."""

    config_name: str
    variants: dict[str, Variant] = field(default_factory=dict)

    def all_instances(self) -> list[Instance]:
        return [i for v in self.variants.values() for i in v.instances]


# --- the two decisions --------------------------------------------------------------------------------


def pick_variant(
    variants: Sequence[Variant], rng: random.Random, *, available: Callable[[Variant], bool]
) -> Variant | None:
    """A variant with probability proportional to its weight, among those that can take the request.

    Variants whose instances are all down drop out, so their share goes to the others for as long as
    they are down; when every weight is zero, traffic is spread evenly (nothing would be served else).
    """
    candidates = [v for v in variants if available(v)]
    if not candidates:
        return None
    weighted = [v for v in candidates if v.weight > 0]
    if not weighted:
        return rng.choice(candidates)
    total = sum(v.weight for v in weighted)
    point = rng.random() * total
    for variant in weighted:
        point -= variant.weight
        if point < 0:
            return variant
    return weighted[-1]


def pick_instance(instances: Sequence[Routable], rng: random.Random) -> Routable | None:
    """The healthy instance with the fewest requests in flight; ties are broken at random so that
    idle instances share a light load instead of the first one taking it all."""
    best: list[Routable] = []
    fewest = None
    for instance in instances:
        if not instance.healthy or instance.retired:
            continue
        if fewest is None or instance.outstanding < fewest:
            best, fewest = [instance], instance.outstanding
        elif instance.outstanding == fewest:
            best.append(instance)
    if not best:
        return None
    return best[0] if len(best) == 1 else rng.choice(best)


# --- outcomes -------------------------------------------------------------------------------------------


@dataclass
class InvocationRequest:
    body: bytes
    content_type: str | None = None
    accept: str | None = None
    custom_attributes: str | None = None
    target_variant: str | None = None
    inference_id: str | None = None


@dataclass
class InvocationResult:
    body: bytes
    content_type: str
    variant: str
    instance_id: str
    custom_attributes: str | None
    model_us: float
    handler_us: float | None
    batch_size: int | None


class RoutingError(Exception):
    def __init__(self, message: str, *, variant: str | None = None, instance_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.variant = variant
        self.instance_id = instance_id


class UnknownVariant(RoutingError):
    pass


class NoHealthyInstance(RoutingError):
    pass


class ModelFailure(RoutingError):
    """The model answered with a non-2xx status."""

    def __init__(self, status: int, message: str, **kw) -> None:
        super().__init__(message, **kw)
        self.status = status


class InstanceLost(RoutingError):
    """The instance died or dropped the connection while the request was in flight."""


class InvocationTimedOut(RoutingError):
    pass


class EndpointBusy(RoutingError):
    """Every routable instance of the chosen variant already holds its share of requests."""


class Router:
    def __init__(
        self,
        endpoint: str,
        fleet: Fleet,
        metrics: MetricBuffer,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        replacement_wait_s: float = 30.0,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        max_in_flight: int | None = None,
    ) -> None:
        self.endpoint = endpoint
        # Requests one instance may hold, running or queued in its model server; past that the request is
        # refused at once: queueing without bound would hold a gateway thread per waiting caller.
        self.max_in_flight = max_in_flight
        self.fleet = fleet  # swapped whole by a blue/green update; requests read it once
        self.metrics = metrics
        self.timeout_s = timeout_s
        self.replacement_wait_s = replacement_wait_s
        self.rng = rng or random.Random()
        self.clock = clock
        self.cond = threading.Condition()

    def changed(self) -> None:
        """An instance became healthy, or a request finished: wake whoever waits on either."""
        with self.cond:
            self.cond.notify_all()

    def _acquire(self, request: InvocationRequest) -> tuple[Variant, Instance]:
        deadline = time.monotonic() + min(self.replacement_wait_s, self.timeout_s)
        with self.cond:
            while True:
                fleet = self.fleet
                if request.target_variant:
                    variant = fleet.variants.get(request.target_variant)
                    if variant is None:
                        names = ", ".join(sorted(fleet.variants))
                        raise UnknownVariant(
                            f'The variant "{request.target_variant}" does not exist for endpoint '
                            f'"{self.endpoint}" (its variants: {names}).'
                        )
                    chosen: Variant | None = variant if variant.routable() else None
                else:
                    chosen = pick_variant(list(fleet.variants.values()), self.rng, available=_has_routable)
                if chosen is not None:
                    instance = pick_instance(chosen.instances, self.rng)
                    if instance is not None:
                        if self.max_in_flight is not None and instance.outstanding >= self.max_in_flight:
                            # The least loaded instance is full, so all of this variant's are.
                            raise EndpointBusy(
                                f"Endpoint {self.endpoint} is at capacity: each instance of variant "
                                f'"{chosen.name}" already has {self.max_in_flight} requests in flight or '
                                "queued. Retry with backoff, or add instances.",
                                variant=chosen.name,
                            )
                        instance.outstanding += 1  # type: ignore[attr-defined]
                        return chosen, instance  # type: ignore[return-value]
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    which = f'variant "{request.target_variant}"' if request.target_variant else "any variant"
                    raise NoHealthyInstance(
                        f"Endpoint {self.endpoint} has no healthy instance in {which} right now "
                        "(instances are starting or being replaced); retry shortly."
                    )
                self.cond.wait(remaining)

    def _release(self, instance: Instance) -> None:
        with self.cond:
            instance.outstanding -= 1
            if instance.retired:
                self.cond.notify_all()  # a drain may be waiting for this to reach zero

    def invoke(self, request: InvocationRequest, *, started_at: float | None = None) -> InvocationResult:
        """Route and run one request; ``started_at`` (epoch s) is when the gateway received it."""
        started_at = self.clock() if started_at is None else started_at
        variant, instance = self._acquire(request)
        headers = {}
        if request.content_type:
            headers["Content-Type"] = request.content_type
        if request.accept:
            headers["Accept"] = request.accept
        if request.custom_attributes:
            headers["X-Amzn-SageMaker-Custom-Attributes"] = request.custom_attributes
        if request.inference_id:
            headers[INFERENCE_ID] = request.inference_id
        status: int | None = None
        model_us: float | None = None
        sent = time.perf_counter()
        try:
            try:
                reply = instance.post(request.body, headers, self.timeout_s)
            except InstanceTimeout as exc:
                raise InvocationTimedOut(str(exc), variant=variant.name, instance_id=instance.id) from exc
            except InstanceUnreachable as exc:
                code = instance.wait_exit(0.5)
                detail = f" (it exited with code {code})" if code is not None else ""
                raise InstanceLost(
                    f"{exc}{detail}; the instance is being replaced, retry the request",
                    variant=variant.name,
                    instance_id=instance.id,
                ) from exc
            finally:
                self._release(instance)
            model_us = (time.perf_counter() - sent) * 1e6
            status = reply.status
        finally:
            overhead = None if model_us is None else (self.clock() - started_at) * 1e6 - model_us
            self.metrics.invocation(
                self.endpoint,
                variant.name,
                instances=len(variant.routable()),
                model_us=model_us,
                overhead_us=overhead,
                status=status,
            )
        if not 200 <= reply.status < 300:
            text = reply.body.decode("utf-8", "replace")
            raise ModelFailure(reply.status, text, variant=variant.name, instance_id=instance.id)
        handler_us = reply.headers.get(HANDLER_US)
        batch = reply.headers.get(BATCH_SIZE)
        return InvocationResult(
            body=reply.body,
            content_type=reply.headers.get("content-type", "application/octet-stream"),
            variant=variant.name,
            instance_id=instance.id,
            custom_attributes=reply.headers.get(CUSTOM_ATTRIBUTES),
            model_us=model_us,
            handler_us=float(handler_us) if handler_us and handler_us.isdigit() else None,
            batch_size=int(batch) if batch and batch.isdigit() else None,
        )

    def wait_drained(self, instances: Sequence[Instance], timeout_s: float) -> bool:
        """Block until none of ``instances`` (already retired) has a request in flight."""
        deadline = time.monotonic() + timeout_s
        with self.cond:
            while any(i.outstanding > 0 for i in instances):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(remaining)
        return True


def _has_routable(variant: Variant) -> bool:
    return any(i.healthy and not i.retired for i in variant.instances)
