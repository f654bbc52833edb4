"""Routing decisions and the router's bookkeeping, without model-server processes."""

from __future__ import annotations

import random
import socketserver
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import ClassVar

import pytest

from kennel.runtime.endpoints.instances import Instance, InstanceUnreachable, Reply
from kennel.runtime.endpoints.metrics import MetricBuffer
from kennel.runtime.endpoints.profiles import instance_threads, profile_for, vcpus_of
from kennel.runtime.endpoints.router import (
    Fleet,
    InstanceLost,
    InvocationRequest,
    InvocationTimedOut,
    ModelFailure,
    NoHealthyInstance,
    Router,
    UnknownVariant,
    Variant,
    pick_instance,
    pick_variant,
)
from kennel.runtime.sandbox import Sandbox


@dataclass(eq=False)
class FakeInstance:
    id: str
    healthy: bool = True
    retired: bool = False
    outstanding: int = 0
    status: int = 200
    fail: bool = False
    seen: list[dict] = field(default_factory=list)

    def post(self, body: bytes, headers: dict, timeout_s: float) -> Reply:
        self.seen.append({"outstanding": self.outstanding, **headers})
        if self.fail:
            raise InstanceUnreachable(f"instance {self.id} closed the connection")
        extra = {
            "content-type": "application/json",
            "x-kennel-handler-us": "1500",
            "x-kennel-batch-size": "3",
        }
        if "X-Amzn-SageMaker-Custom-Attributes" in headers:
            extra["x-amzn-sagemaker-custom-attributes"] = (
                "echo=" + headers["X-Amzn-SageMaker-Custom-Attributes"]
            )
        return Reply(self.status, extra, b'{"ok": true}' if self.status == 200 else b"bad input")

    def wait_exit(self, timeout_s: float):
        return -9 if self.fail else None


class ListSink:
    def __init__(self) -> None:
        self.points: list[tuple] = []

    def put(self, namespace, name, dimensions, value, *, unit="None", timestamp=None) -> None:
        self.points.append((namespace, name, dict(dimensions), value, unit))


def _router(*variants: Variant, wait_s: float = 0.2) -> tuple[Router, MetricBuffer]:
    metrics = MetricBuffer()
    fleet = Fleet("cfg", {v.name: v for v in variants})
    return Router("ep", fleet, metrics, replacement_wait_s=wait_s, rng=random.Random(7)), metrics


def test_pick_instance_prefers_fewest_in_flight_and_skips_unusable() -> None:
    rng = random.Random(1)
    busy, idle, sick, gone = (
        FakeInstance("busy", outstanding=3),
        FakeInstance("idle", outstanding=1),
        FakeInstance("sick", healthy=False),
        FakeInstance("gone", retired=True),
    )
    assert pick_instance([busy, idle, sick, gone], rng) is idle
    assert pick_instance([sick, gone], rng) is None
    tied = [FakeInstance("a"), FakeInstance("b")]
    assert {pick_instance(tied, rng).id for _ in range(50)} == {"a", "b"}  # ties are shared, not first-wins


def test_pick_variant_follows_weights_and_drops_variants_that_are_down() -> None:
    rng = random.Random(3)
    a, b = Variant("A", 3.0, [FakeInstance("a")]), Variant("B", 1.0, [FakeInstance("b")])
    counts = Counter(pick_variant([a, b], rng, available=lambda v: True).name for _ in range(4000))
    assert 0.72 < counts["A"] / 4000 < 0.78
    down = Variant("C", 5.0, [FakeInstance("c", healthy=False)])
    usable = lambda v: any(i.healthy for i in v.instances)  # noqa: E731
    assert {pick_variant([down, b], rng, available=usable).name for _ in range(20)} == {"B"}
    zero = [Variant("X", 0.0), Variant("Y", 0.0)]
    assert {pick_variant(zero, rng, available=lambda v: True).name for _ in range(50)} == {"X", "Y"}
    assert pick_variant([down], rng, available=usable) is None


def test_target_variant_wins_over_weight_and_unknown_variants_are_named() -> None:
    a, b = FakeInstance("a"), FakeInstance("b")
    router, _ = _router(Variant("A", 1.0, [a]), Variant("B", 0.0, [b]))
    assert router.invoke(InvocationRequest(b"{}")).variant == "A"  # B has weight 0
    result = router.invoke(InvocationRequest(b"{}", target_variant="B", custom_attributes="k=v"))
    assert (result.variant, result.instance_id, result.custom_attributes) == ("B", "b", "echo=k=v")
    assert (result.handler_us, result.batch_size) == (1500.0, 3)
    with pytest.raises(UnknownVariant, match='"C" does not exist for endpoint "ep"'):
        router.invoke(InvocationRequest(b"{}", target_variant="C"))
    assert a.outstanding == b.outstanding == 0


def test_requests_wait_briefly_for_a_replacement_then_give_up() -> None:
    instance = FakeInstance("late", healthy=False)
    router, _ = _router(Variant("A", 1.0, [instance]), wait_s=5.0)

    def heal() -> None:
        time.sleep(0.2)
        instance.healthy = True
        router.changed()

    threading.Thread(target=heal).start()
    started = time.monotonic()
    assert router.invoke(InvocationRequest(b"{}")).instance_id == "late"
    assert 0.15 < time.monotonic() - started < 3
    instance.healthy = False
    router.replacement_wait_s = 0.1
    with pytest.raises(NoHealthyInstance, match="no healthy instance"):
        router.invoke(InvocationRequest(b"{}"))


def test_model_errors_and_lost_instances_are_reported_and_counted() -> None:
    bad, dead = FakeInstance("bad", status=415), FakeInstance("dead", fail=True)
    router, metrics = _router(Variant("A", 1.0, [bad]), Variant("B", 1.0, [dead]))
    with pytest.raises(ModelFailure) as failure:
        router.invoke(InvocationRequest(b"{}", target_variant="A"))
    assert (failure.value.status, failure.value.message, failure.value.variant) == (415, "bad input", "A")
    with pytest.raises(InstanceLost, match="exited with code -9"):
        router.invoke(InvocationRequest(b"{}", target_variant="B"))
    sink = ListSink()
    metrics.flush(sink)
    by_variant = {(p[2]["VariantName"], p[1]): p[3] for p in sink.points}
    assert by_variant[("A", "Invocation4XXErrors")] == 1.0 and by_variant[("A", "Invocation5XXErrors")] == 0.0
    assert by_variant[("B", "Invocation5XXErrors")] == 1.0
    assert ("B", "ModelLatency") not in by_variant  # it never answered: no model latency to report
    assert {p[2]["EndpointName"] for p in sink.points} == {"ep"}


def test_invocation_metrics_have_sagemaker_names_units_and_shares() -> None:
    metrics = MetricBuffer(clock=lambda: 1000.0)
    metrics.invocation("ep", "AllTraffic", instances=4, model_us=2500.0, overhead_us=800.0, status=200)
    metrics.instance_sample("ep", "AllTraffic", 150.0, 12.5)
    sink = ListSink()
    assert metrics.flush(sink) == 8
    got = {p[1]: (p[0], p[3], p[4]) for p in sink.points}
    assert got["Invocations"] == ("AWS/SageMaker", 1.0, "Count")
    assert got["InvocationsPerInstance"] == ("AWS/SageMaker", 0.25, "Count")
    assert got["ModelLatency"] == ("AWS/SageMaker", 2500.0, "Microseconds")
    assert got["OverheadLatency"] == ("AWS/SageMaker", 800.0, "Microseconds")
    assert got["CPUUtilization"] == ("/aws/sagemaker/Endpoints", 150.0, "Percent")
    assert got["MemoryUtilization"] == ("/aws/sagemaker/Endpoints", 12.5, "Percent")
    assert all(p[2] == {"EndpointName": "ep", "VariantName": "AllTraffic"} for p in sink.points)


def test_drain_waits_for_requests_in_flight() -> None:
    instance = FakeInstance("a", outstanding=1, retired=True)
    router, _ = _router(Variant("A", 1.0, [instance]))
    assert router.wait_drained([instance], 0.05) is False

    def finish() -> None:
        time.sleep(0.1)
        router._release(instance)  # what a finishing request does

    threading.Thread(target=finish).start()
    assert router.wait_drained([instance], 2.0) is True


@pytest.mark.parametrize(
    ("vcpus", "cores", "sharing", "threads"),
    [
        (2, 2, 1, 2),  # alone: the type's vCPUs
        (16, 2, 1, 2),  # never more than the machine's cores
        (2, 2, 2, 1),  # two instances on two cores: one thread each, not two
        (4, 16, 2, 4),  # plenty of cores: the type's vCPUs
        (8, 16, 3, 5),  # a share of the cores, rounded down
        (2, 2, 5, 1),  # more instances than cores: still one thread each
        (2, 2, 0, 2),  # nothing reserved yet counts as alone
    ],
)
def test_instances_split_the_cores_they_share(vcpus: int, cores: int, sharing: int, threads: int) -> None:
    assert instance_threads(vcpus, cores, sharing) == threads


def test_instance_types_map_to_local_profiles() -> None:
    assert [vcpus_of(t) for t in ("ml.t2.medium", "ml.m5.large", "ml.c5.xlarge", "ml.m5.4xlarge")] == [
        2,
        2,
        4,
        16,
    ]
    assert profile_for("ml.m5.4xlarge", cores=2).threads == 2
    assert profile_for("ml.g4dn.xlarge", cores=8).wants_gpu and not profile_for("ml.m5.large").wants_gpu
    env = profile_for("ml.m5.xlarge", cores=16).child_environment(None)
    assert env["OMP_NUM_THREADS"] == "4" and env["CUDA_VISIBLE_DEVICES"] == ""


# --- a real Instance's HTTP client against a local server on a Unix socket, as model servers listen ------


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    connections: ClassVar[set] = set()

    def do_POST(self) -> None:
        _Handler.connections.add(id(self.connection))  # one handler per connection, keep-alive included
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if body == b"slow":
            time.sleep(1.0)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        except BrokenPipeError:
            pass  # the client timed out first, which is what the slow case tests

    def log_message(self, *args) -> None:
        pass


class _UnixHTTPServer(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True


@pytest.fixture
def local_server(tmp_path: Path):
    _Handler.connections = set()
    server = _UnixHTTPServer(str(tmp_path / "model.sock"), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def sandbox(tmp_path: Path):
    box = Sandbox(gateway_port=1, state_dir=tmp_path, enabled=False)  # nothing is spawned here
    yield box
    box.close()


def test_instance_keeps_connections_alive_recovers_stale_ones_and_times_out(local_server, sandbox) -> None:
    instance = Instance(
        variant="A", model_dir=".", environment={}, profile=profile_for("ml.m5.large"),
        sandbox=sandbox, socket_root=Path(local_server.server_address).parent,
    )  # fmt: skip
    instance.socket_path = local_server.server_address
    instance.healthy = True
    for i in range(3):
        assert instance.post(f"hi {i}".encode(), {}, 5.0).body == f"hi {i}".encode()
    assert len(_Handler.connections) == 1  # one keep-alive connection served all three
    for conn in instance._pool:
        conn.sock.close()  # what an idle-timeout on the server side leaves behind
        conn.sock = _ClosedSocket()
    assert instance.post(b"again", {}, 5.0).body == b"again"
    router, _ = _router(Variant("A", 1.0, [instance]))
    router.timeout_s = 0.2
    with pytest.raises(InvocationTimedOut, match=r"did not answer within 0\.2 s"):
        router.invoke(InvocationRequest(b"slow"))
    assert instance.outstanding == 0


class _ClosedSocket:
    """A socket whose peer has gone: sending fails the way a reset keep-alive connection does."""

    def settimeout(self, value) -> None:
        pass

    def sendall(self, data) -> None:
        raise ConnectionResetError("connection reset by peer")

    def close(self) -> None:
        pass
