"""Which plane a request runs on, admission limits, and the router's per-instance cap."""

from __future__ import annotations

import asyncio
import random
import threading

import pytest

from kennel.cloud.errors import AwsError
from kennel.cloud.planes import CONTROL, ENDPOINTS, FUNCTIONS, Plane, Planes, plane_for
from kennel.cloud.protocol import HttpRequest, route
from kennel.runtime.endpoints.metrics import MetricBuffer
from kennel.runtime.endpoints.router import EndpointBusy, Fleet, InvocationRequest, Router, Variant
from kennel.settings import Settings

_ARN = "arn%3Aaws%3Alambda%3Aus-east-1%3A000000000000%3Afunction%3Afn"
_TARGET_HEADERS = {"Authorization": "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/x/aws4_request"}


def _routed(method: str, path: str, service: str) -> tuple[str, str] | None:
    headers = {"Authorization": _TARGET_HEADERS["Authorization"].replace("/x/", f"/{service}/")}
    try:
        return route(HttpRequest(method, path, "", headers, b""), service)[:2]
    except AwsError:
        return None


@pytest.mark.parametrize(
    ("method", "path", "service", "plane"),
    [
        ("POST", "/endpoints/my-endpoint/invocations", "sagemaker", ENDPOINTS),
        ("POST", "/endpoints/my-endpoint/invocations/", "sagemaker", ENDPOINTS),
        ("POST", "/endpoints/a%2Db/invocations", "sagemaker", ENDPOINTS),
        ("POST", "/2015-03-31/functions/fn/invocations", "lambda", FUNCTIONS),
        ("POST", f"/2015-03-31/functions/{_ARN}/invocations", "lambda", FUNCTIONS),
        ("POST", "/2015-03-31/functions/fn/invocations/", "lambda", FUNCTIONS),
        ("GET", "/2015-03-31/functions/fn", "lambda", CONTROL),
        ("GET", "/2015-03-31/functions/invocations", "lambda", CONTROL),  # a function named "invocations"
        ("POST", "/2015-03-31/functions", "lambda", CONTROL),
        ("POST", "/", "sts", CONTROL),
    ],
)
def test_the_plane_agrees_with_the_router(method: str, path: str, service: str, plane: str) -> None:
    assert plane_for(method, path) == plane
    routed = _routed(method, path, service)
    data_ops = {("sagemaker-runtime", "InvokeEndpoint"), ("lambda", "Invoke")}
    assert (routed in data_ops) == (plane != CONTROL), routed


@pytest.mark.parametrize(
    "path",
    [
        "/endpoints/x/invocation%73",  # another spelling of the literal segment
        "//endpoints/x/invocations",
        "/endpoints/x/y/invocations",
        "/2015-03-31/functions/fn/Invocations",
        "/2015-03-31/functions/fn/invocations%2F",
        "/2015-03-31/functions//invocations",
    ],
)
def test_no_other_spelling_reaches_a_data_plane_operation(path: str) -> None:
    """The control plane gets whatever plane_for does not recognise; the router must not then find a
    data-plane operation in it (that would let slow work take control-plane threads)."""
    assert plane_for("POST", path) == CONTROL
    for service in ("sagemaker", "lambda"):
        assert _routed("POST", path, service) not in {
            ("sagemaker-runtime", "InvokeEndpoint"),
            ("lambda", "Invoke"),
        }


def test_admission_is_bounded_and_counted() -> None:
    plane = Plane("endpoints", threads=2, queue=1)
    assert [plane.try_enter() for _ in range(4)] == [True, True, True, False]
    stats = plane.stats()
    assert (stats["admitted"], stats["limit"], stats["rejected"], stats["saturated"]) == (3, 3, 1, True)
    plane.leave()
    assert plane.try_enter() and plane.stats()["peak_admitted"] == 3
    unbounded = Plane("control", threads=1, queue=None)
    assert all(unbounded.try_enter() for _ in range(1000)) and unbounded.stats()["limit"] is None
    plane.shutdown()
    unbounded.shutdown()


def test_threads_at_work_are_counted_while_they_run() -> None:
    plane = Plane("functions", threads=2, queue=4)
    release = threading.Event()
    started = threading.Barrier(3)

    def work() -> int:
        started.wait(timeout=5)
        release.wait(timeout=5)
        return 7

    async def scenario() -> list[int]:
        for _ in range(3):
            assert plane.try_enter()
        calls = [asyncio.ensure_future(plane.call(work)) for _ in range(2)]
        queued = asyncio.ensure_future(plane.call(lambda: 8))
        await asyncio.get_running_loop().run_in_executor(None, started.wait, 5)
        stats = plane.stats()
        assert (stats["in_flight"], stats["queued"], stats["saturated"]) == (2, 1, True)
        release.set()
        return [*(await asyncio.gather(*calls)), await queued]

    assert asyncio.run(scenario()) == [7, 7, 8]
    assert plane.executor.running == 0
    plane.shutdown()


def test_planes_from_settings_report_per_plane() -> None:
    planes = Planes(Settings(gateway_threads=8, data_plane_threads=4, data_plane_queue=2))
    stats = planes.stats()
    assert set(stats) == {"control", "endpoints", "functions", "objects"}
    limits = (stats["control"]["threads"], stats["endpoints"]["limit"], stats["functions"]["limit"])
    assert limits == (8, 6, 6)
    assert planes.saturated() == []
    planes.shutdown()


class _Busy:
    def __init__(self, name: str, outstanding: int) -> None:
        self.id, self.healthy, self.retired, self.outstanding = name, True, False, outstanding


def test_an_endpoint_whose_instances_are_full_refuses_at_once() -> None:
    a, b = _Busy("a", 2), _Busy("b", 2)
    fleet = Fleet("cfg", {"AllTraffic": Variant("AllTraffic", 1.0, [a, b])})  # type: ignore[list-item]
    router = Router("ep", fleet, MetricBuffer(), rng=random.Random(1), max_in_flight=2)
    with pytest.raises(EndpointBusy, match="at capacity") as refused:
        router._acquire(InvocationRequest(b"{}"))
    assert refused.value.variant == "AllTraffic"
    b.outstanding = 1
    _, instance = router._acquire(InvocationRequest(b"{}"))
    assert instance is b and b.outstanding == 2
    unlimited = Router("ep", fleet, MetricBuffer(), rng=random.Random(1))
    assert unlimited._acquire(InvocationRequest(b"{}"))[1] in (a, b)
