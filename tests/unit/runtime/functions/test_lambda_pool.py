"""The Lambda function pool driven by a fake environment factory and fake clocks: no processes, no gateway.

Invocations that must be in flight at the same time run on threads whose fake environment blocks until
the test releases it, so concurrency limits are exercised with the pool's real locking.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

from kennel.runtime.functions.admission import Reason
from kennel.runtime.functions.environment import FunctionSpec, InitFailed, Outcome
from kennel.runtime.functions.pool import FunctionRuntime, Invocation, Throttled

IDLE_S = 600.0
MAX_AGE_S = 4 * 3600.0


class FakeClock:
    """A clock that moves only when the test says so."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeEnvironment:
    """What the pool uses of an Environment: Init, invoke, liveness, the two timestamps, discard."""

    def __init__(self, factory: FakeFactory, spec: FunctionSpec, provisioned: bool) -> None:
        self.factory = factory
        self.spec = spec
        self.provisioned = provisioned
        self.stream = f"stream-{len(factory.created)}"
        self.created = factory.wall()
        self.last_used = factory.clock()
        self.init_output = ""
        self.served = 0
        self.alive = True
        self.discarded = False

    def wait_ready(self, request_id: str | None = None) -> float:
        if self.factory.init_error is not None:
            self.alive = False  # a failed Init leaves no process behind
            raise InitFailed(self.factory.init_error, "init output\n", 12.0, 64, "error")
        return 1.0

    def invoke(
        self, request_id: str, payload: bytes, invoked_arn: str, client_context: dict | None = None
    ) -> Outcome:
        self.factory.entered.release()
        self.factory.gate.wait(10)
        self.served += 1
        self.last_used = self.factory.clock()
        return Outcome(request_id, payload, None, 1.0, 64)

    def discard(self) -> None:
        self.alive = False
        self.discarded = True


class FakeFactory:
    """Stands in for the Environment class: records every environment it starts."""

    def __init__(self, clock: FakeClock, wall: FakeClock) -> None:
        self.clock = clock
        self.wall = wall
        self.created: list[FakeEnvironment] = []
        self.spawn_error: OSError | None = None  # raised instead of starting a process
        self.init_error: dict | None = None  # Init fails with this error payload
        self.gate = threading.Event()  # invocations block until it is set
        self.gate.set()
        self.entered = threading.Semaphore(0)  # released once per invocation that reached its env

    def __call__(
        self,
        spec: FunctionSpec,
        credentials: Mapping[str, str],
        root: Path,
        *,
        sandbox: object,
        provisioned: bool = False,
        python: str = "",
    ) -> FakeEnvironment:
        assert credentials["AccessKeyId"] == "AKIDFAKE"
        if self.spawn_error is not None:
            raise self.spawn_error
        env = FakeEnvironment(self, spec, provisioned)
        self.created.append(env)
        return env


class FakeEmitter:
    def __init__(self) -> None:
        self.throttles: list[tuple[str, str | None]] = []
        self.invocations: list[dict] = []
        self.logs: list[tuple[str, str, list]] = []

    def log(self, group: str, stream: str, events: list) -> None:
        self.logs.append((group, stream, list(events)))

    def throttle(self, function: str, qualifier: str | None) -> None:
        self.throttles.append((function, qualifier))

    def invocation(
        self, function: str, qualifier: str | None, error, duration_ms, *concurrency, **extra
    ) -> None:
        self.invocations.append({"function": function, "qualifier": qualifier, "error": error, **extra})


class Harness:
    def __init__(self, tmp_path: Path, **options: object) -> None:
        self.clock = FakeClock(1000.0)
        self.wall = FakeClock(1_700_000_000.0)
        self.factory = FakeFactory(self.clock, self.wall)
        self.emitter = FakeEmitter()
        self.pool = FunctionRuntime(
            tmp_path / "environments",
            lambda spec: {"AccessKeyId": "AKIDFAKE", "SecretAccessKey": "s", "SessionToken": "t"},
            self.emitter,  # type: ignore[arg-type]
            sandbox=object(),  # type: ignore[arg-type]
            idle_timeout_s=IDLE_S,
            max_age_s=MAX_AGE_S,
            environment=self.factory,  # type: ignore[arg-type]
            clock=self.clock,
            wall_clock=self.wall,
            **options,  # type: ignore[arg-type]
        )
        self.code = tmp_path / "code"
        self._ids = iter(range(1_000_000))
        self._threads: list[threading.Thread] = []

    def spec(self, name: str = "f", version: str = "$LATEST", revision: str = "r1") -> FunctionSpec:
        return FunctionSpec(
            name=name, version=version, revision=revision, code_dir=self.code, handler="app.handler",
            runtime="python3.11", timeout_s=3, memory_mb=128, role_arn="arn:aws:iam::000000000000:role/r",
            region="us-east-1", account="000000000000", endpoint_url="http://127.0.0.1:1",
        )  # fmt: skip

    def invoke(self, spec: FunctionSpec, qualifier: str | None = None) -> Outcome:
        rid = f"req-{next(self._ids)}"
        return self.pool.invoke(spec, Invocation(rid, b'{"n": 1}', spec.function_arn, qualifier))

    def hold(self, spec: FunctionSpec, count: int, qualifier: str | None = None) -> None:
        """Start ``count`` invocations that stay in flight until ``release_all``."""
        self.factory.gate.clear()
        for _ in range(count):
            thread = threading.Thread(target=self.invoke, args=(spec, qualifier), daemon=True)
            thread.start()
            self._threads.append(thread)
            assert self.factory.entered.acquire(timeout=5), (
                "the held invocation never reached its environment"
            )

    def release_all(self) -> None:
        self.factory.gate.set()
        for thread in self._threads:
            thread.join(5)
        self._threads.clear()


@pytest.fixture
def harness(tmp_path: Path):
    made = Harness(tmp_path)
    yield made
    made.release_all()
    made.pool.close()


def _eventually(condition: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.01)


# ----- warm reuse -------------------------------------------------------------------------------------
def test_a_warm_environment_serves_the_next_invocation(harness: Harness) -> None:
    spec = harness.spec()
    first = harness.invoke(spec)
    second = harness.invoke(spec)
    assert first.payload == second.payload == b'{"n": 1}'
    assert len(harness.factory.created) == 1
    assert harness.factory.created[0].served == 2 and not harness.factory.created[0].provisioned
    assert harness.pool.environments() == 1


def test_concurrent_invocations_get_environments_of_their_own_and_keep_them_warm(harness: Harness) -> None:
    spec = harness.spec()
    harness.hold(spec, 2)
    assert len(harness.factory.created) == 2 and harness.pool.environments() == 2
    harness.release_all()
    harness.invoke(spec)
    assert len(harness.factory.created) == 2  # one of the two idle ones answered


def test_a_new_revision_is_not_served_by_an_older_environment(harness: Harness) -> None:
    harness.invoke(harness.spec(revision="r1"))
    harness.invoke(harness.spec(revision="r2"))
    old, new = harness.factory.created
    _eventually(lambda: old.discarded)  # discarded on a side thread, off the invocation's path
    assert new.spec.revision == "r2" and not new.discarded


def test_retire_discards_the_idle_environments_of_a_function(harness: Harness) -> None:
    harness.invoke(harness.spec())
    harness.pool.retire("f")
    assert harness.factory.created[0].discarded and harness.pool.environments() == 0


# ----- concurrency limits -----------------------------------------------------------------------------
def test_reserved_concurrency_caps_the_function_and_frees_up_when_invocations_end(harness: Harness) -> None:
    spec = harness.spec()
    harness.pool.set_reserved("f", 2)
    harness.hold(spec, 2)
    with pytest.raises(Throttled) as throttled:
        harness.invoke(spec)
    assert throttled.value.reason is Reason.RESERVED
    assert harness.emitter.throttles == [("f", None)]
    harness.release_all()
    harness.invoke(spec)  # admitted again


def test_reserved_concurrency_of_zero_throttles_every_invocation(harness: Harness) -> None:
    harness.pool.set_reserved("f", 0)
    with pytest.raises(Throttled) as throttled:
        harness.invoke(harness.spec())
    assert throttled.value.reason is Reason.RESERVED
    assert harness.factory.created == []
    harness.pool.set_reserved("f", None)
    harness.invoke(harness.spec())


def test_the_unreserved_pool_is_what_the_account_limit_leaves_after_reservations(tmp_path: Path) -> None:
    harness = Harness(tmp_path, account_limit=3)
    try:
        harness.pool.set_reserved("g", 1)  # leaves 2 for every function without a reservation
        harness.hold(harness.spec("g"), 1)
        harness.hold(harness.spec("f"), 2)
        with pytest.raises(Throttled) as unreserved:
            harness.invoke(harness.spec("h"))
        assert unreserved.value.reason is Reason.ACCOUNT
        with pytest.raises(Throttled) as reserved:
            harness.invoke(harness.spec("g"))
        assert reserved.value.reason is Reason.RESERVED
        assert harness.emitter.throttles == [("h", None), ("g", None)]
    finally:
        harness.release_all()
        harness.pool.close()


# ----- idle reaping -----------------------------------------------------------------------------------
def test_an_environment_idle_past_the_timeout_is_reaped(harness: Harness) -> None:
    spec = harness.spec()
    harness.invoke(spec)
    env = harness.factory.created[0]
    harness.clock.advance(IDLE_S - 1)
    harness.pool.reap()
    assert not env.discarded and harness.pool.environments() == 1
    harness.clock.advance(2)
    harness.pool.reap()  # the background reaper may have got there first: check the outcome, not the count
    assert env.discarded and harness.pool.environments() == 0
    harness.invoke(spec)
    assert len(harness.factory.created) == 2  # a cold start again


def test_an_environment_older_than_the_maximum_age_is_reaped_even_when_busy_lately(harness: Harness) -> None:
    harness.invoke(harness.spec())
    harness.wall.advance(MAX_AGE_S + 1)
    harness.pool.reap()
    assert harness.factory.created[0].discarded


def test_reap_with_an_explicit_time_counts_what_it_stopped(harness: Harness) -> None:
    harness.invoke(harness.spec())
    assert harness.pool.reap(now=harness.clock.now + 1) == 0
    assert harness.pool.reap(now=harness.clock.now + IDLE_S + 1) == 1


# ----- failed starts ----------------------------------------------------------------------------------
def test_a_spawn_failure_answers_with_a_platform_error_and_releases_its_slot(harness: Harness) -> None:
    spec = harness.spec()
    harness.pool.set_reserved("f", 1)
    harness.factory.spawn_error = OSError("Resource temporarily unavailable")
    failed = harness.invoke(spec)
    assert failed.status == "error" and failed.error is not None
    assert failed.error["errorType"] == "Runtime.Unknown"
    assert harness.emitter.invocations[-1]["error"] is True  # counted as an error invocation
    harness.factory.spawn_error = None
    harness.invoke(spec)  # the one reserved slot is free again
    assert harness.pool.environments() == 1


def test_a_failed_init_answers_the_invocation_discards_the_environment_and_releases_its_slot(
    harness: Harness,
) -> None:
    spec = harness.spec()
    harness.pool.set_reserved("f", 1)
    harness.factory.init_error = {
        "errorMessage": "no module named app",
        "errorType": "Runtime.ImportModuleError",
    }
    outcome = harness.invoke(spec)
    assert outcome.error == harness.factory.init_error and outcome.duration_ms == 12.0
    assert harness.factory.created[0].discarded and harness.pool.environments() == 0
    _group, _stream, events = harness.emitter.logs[-1]
    assert events[-1][1].startswith("REPORT RequestId: ")  # the failed Init is reported in the logs
    harness.factory.init_error = None
    harness.invoke(spec)
    assert len(harness.factory.created) == 2


def test_credentials_that_cannot_be_issued_propagate_and_release_the_slot(harness: Harness) -> None:
    def refuse(spec: FunctionSpec) -> dict:
        raise PermissionError("the role cannot be assumed")

    harness.pool.set_reserved("f", 1)
    harness.pool.credentials = refuse
    with pytest.raises(PermissionError):
        harness.invoke(harness.spec())
    assert harness.factory.created == []
    harness.pool.credentials = lambda spec: {"AccessKeyId": "AKIDFAKE"}
    harness.invoke(harness.spec())


# ----- provisioned concurrency ------------------------------------------------------------------------
def test_provisioned_concurrency_fills_its_pool_and_serves_its_qualifier_first(harness: Harness) -> None:
    spec = harness.spec(version="1")
    harness.pool.provision("f", "live", spec, 2)
    _eventually(lambda: harness.pool.provisioned_status("f", "live").status == "READY")  # type: ignore[union-attr]
    status = harness.pool.provisioned_status("f", "live")
    assert status is not None and (status.requested, status.allocated, status.available) == (2, 2, 2)
    assert [env.provisioned for env in harness.factory.created] == [True, True]
    harness.invoke(spec, qualifier="live")
    assert len(harness.factory.created) == 2  # no cold start
    assert harness.emitter.invocations[-1]["utilization"] == 0.5
    assert harness.emitter.invocations[-1]["spillover"] is False


def test_beyond_its_provisioned_environments_an_invocation_spills_over_to_on_demand(harness: Harness) -> None:
    spec = harness.spec(version="1")
    harness.pool.provision("f", "live", spec, 1)
    _eventually(lambda: harness.pool.provisioned_status("f", "live").status == "READY")  # type: ignore[union-attr]
    harness.hold(spec, 1, qualifier="live")
    harness.factory.gate.set()  # the spill-over itself need not block
    harness.invoke(spec, qualifier="live")
    assert [env.provisioned for env in harness.factory.created] == [True, False]
    assert harness.emitter.invocations[-1]["spillover"] is True


def test_a_provisioned_init_failure_marks_the_configuration_failed(harness: Harness) -> None:
    harness.factory.init_error = {"errorMessage": "boom", "errorType": "Runtime.Unknown"}
    harness.pool.provision("f", "live", harness.spec(version="1"), 1)
    _eventually(lambda: harness.pool.provisioned_status("f", "live").status == "FAILED")  # type: ignore[union-attr]
    status = harness.pool.provisioned_status("f", "live")
    assert status is not None and status.reason == "FUNCTION_ERROR_INIT_FAILURE: boom"
    assert harness.factory.created[0].discarded


def test_unprovision_discards_the_pool(harness: Harness) -> None:
    harness.pool.provision("f", "live", harness.spec(version="1"), 1)
    _eventually(lambda: harness.pool.provisioned_status("f", "live").status == "READY")  # type: ignore[union-attr]
    harness.pool.unprovision("f")
    assert harness.pool.provisioned_status("f", "live") is None
    assert harness.factory.created[0].discarded


def test_close_discards_every_environment_and_stops_the_reaper(harness: Harness) -> None:
    harness.invoke(harness.spec())
    harness.pool.close()
    assert all(env.discarded for env in harness.factory.created)
    assert harness.pool._reaper._thread is None
