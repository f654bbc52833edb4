"""The function runtime: admission, warm pools per function version, provisioned pools, reaping.

``invoke`` is called on a gateway worker thread and blocks while the function runs. Under one lock it
reads the in-flight counts, asks ``admission.admit`` (pure) and claims its slot and, when there is one,
a warm environment; spawning, Init and the invocation itself run outside the lock. Environments are
reused while their function version's revision is unchanged; a reaper loop stops those idle longer
than ``idle_timeout_s`` (or older than ``max_age_s``), and provisioned environments that die are
replaced when they are released.

Environments come from ``environment`` (the real :class:`Environment` by default) and times from
``clock`` (monotonic: idleness) and ``wall_clock`` (epoch: age, log timestamps), so the pool's logic can
run against a fake factory and a fake clock.
"""

from __future__ import annotations

import json
import logging
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from kennel.runtime.functions import reports
from kennel.runtime.functions.admission import AccountState, FunctionState, Pool, Reason, admit
from kennel.runtime.functions.emitter import Emitter
from kennel.runtime.functions.environment import Environment, FunctionSpec, InitFailed, Outcome
from kennel.runtime.loop import ticker
from kennel.runtime.sandbox import Sandbox

log = logging.getLogger("kennel.lambda.runtime")

Credentials = Callable[[FunctionSpec], Mapping[str, str]]


class EnvironmentFactory(Protocol):
    """Starts one environment (the process is spawned; Init is awaited with ``wait_ready``)."""

    def __call__(
        self,
        spec: FunctionSpec,
        credentials: Mapping[str, str],
        root: Path,
        *,
        sandbox: Sandbox,
        provisioned: bool = False,
        python: str = ...,
    ) -> Environment: ...


class Throttled(Exception):
    def __init__(self, reason: Reason) -> None:
        super().__init__(reason.value)
        self.reason = reason


@dataclass(frozen=True)
class Invocation:
    request_id: str
    payload: bytes
    invoked_arn: str
    qualifier: str | None = None  # the alias or version named by the caller (None: unqualified)
    client_context: dict | None = None


@dataclass
class ProvisionedPool:
    spec: FunctionSpec
    requested: int
    envs: list[Environment] = field(default_factory=list)
    idle: list[Environment] = field(default_factory=list)
    busy: int = 0
    starting: int = 0
    status: str = "IN_PROGRESS"
    reason: str | None = None


@dataclass(frozen=True)
class ProvisionedStatus:
    requested: int
    allocated: int
    available: int
    status: str
    reason: str | None


class FunctionRuntime:
    def __init__(
        self,
        root: Path,
        credentials: Credentials,
        emitter: Emitter,
        *,
        sandbox: Sandbox,
        account_limit: int = 1000,
        idle_timeout_s: float = 600.0,
        max_age_s: float = 4 * 3600.0,
        python: str = sys.executable,
        environment: EnvironmentFactory = Environment,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.credentials = credentials
        self.emitter = emitter
        self.account_limit = account_limit
        self.idle_timeout_s = idle_timeout_s
        self.max_age_s = max_age_s
        self.python = python
        self.environment = environment
        self.clock = clock  # compared with Environment.last_used
        self.wall_clock = wall_clock  # compared with Environment.created; log event timestamps
        self.sandbox = sandbox  # every environment starts through it
        self._lock = threading.Lock()
        self._reserved: dict[str, int] = {}
        self._on_demand: dict[str, int] = {}
        self._idle: dict[tuple[str, str], list[Environment]] = {}
        self._busy: set[Environment] = set()
        self._live: dict[tuple[str, str], str] = {}  # (function, version) -> current revision
        self._provisioned: dict[tuple[str, str], ProvisionedPool] = {}
        self._closed = threading.Event()
        reap_every_s = max(0.05, min(1.0, self.idle_timeout_s / 4))
        self._reaper = ticker("lambda-reaper", reap_every_s, self.reap)
        self._reaper.start()

    # ----- configuration the provider pushes ------------------------------------------------------
    def set_reserved(self, function: str, reserved: int | None) -> None:
        with self._lock:
            if reserved is None:
                self._reserved.pop(function, None)
            else:
                self._reserved[function] = reserved

    def retire(self, function: str, version: str | None = None) -> None:
        """Code or configuration changed (or the function is gone): no environment of it is reused."""
        doomed: list[Environment] = []
        with self._lock:
            for key in [k for k in self._idle if k[0] == function and version in (None, k[1])]:
                doomed += self._idle.pop(key)
            for key in [k for k in self._live if k[0] == function and version in (None, k[1])]:
                del self._live[key]
        for env in doomed:
            env.discard()

    def provision(self, function: str, qualifier: str, spec: FunctionSpec, count: int) -> None:
        """Keep ``count`` initialised environments of ``spec`` for invocations of ``qualifier``."""
        key = (function, qualifier)
        doomed: list[Environment] = []
        with self._lock:
            current = self._provisioned.get(key)
            if current is not None and current.spec.revision == spec.revision:
                current.requested = count
                while len(current.envs) > count and current.idle:
                    env = current.idle.pop()
                    current.envs.remove(env)
                    doomed.append(env)
                pool = current
                pool.status = "READY" if len(pool.envs) >= count else "IN_PROGRESS"
            else:
                if current is not None:
                    doomed += current.idle
                pool = self._provisioned[key] = ProvisionedPool(spec, count)
        for env in doomed:
            env.discard()
        self._start_filling(key, pool)

    def unprovision(self, function: str, qualifier: str | None = None) -> None:
        doomed: list[Environment] = []
        with self._lock:
            for key in [k for k in self._provisioned if k[0] == function and qualifier in (None, k[1])]:
                doomed += self._provisioned.pop(key).idle
        for env in doomed:
            env.discard()

    def provisioned_status(self, function: str, qualifier: str) -> ProvisionedStatus | None:
        with self._lock:
            pool = self._provisioned.get((function, qualifier))
            if pool is None:
                return None
            ready = len(pool.envs)
            return ProvisionedStatus(pool.requested, ready, ready, pool.status, pool.reason)

    def _in_flight(self, function: str | None) -> int:
        on_demand = sum(n for f, n in self._on_demand.items() if function in (None, f))
        provisioned = sum(p.busy for (f, _), p in self._provisioned.items() if function in (None, f))
        return on_demand + provisioned

    # ----- invocations ------------------------------------------------------------------------------
    def invoke(self, spec: FunctionSpec, call: Invocation) -> Outcome:
        """Run one invocation; raises Throttled when admission says no."""
        name = spec.name
        env: Environment | None = None
        concurrency = (0, 0)
        utilization = None
        with self._lock:
            self._live[(name, spec.version)] = spec.revision
            pool = self._provisioned.get((name, call.qualifier)) if call.qualifier else None
            if pool is not None and pool.spec.revision != spec.revision:
                pool = None  # the alias moved on; its new environments are still starting
            decision = admit(self._account_state(), self._function_state(name, pool))
            if decision.pool is Pool.PROVISIONED:
                assert pool is not None
                env = pool.idle.pop()
                pool.busy += 1
                utilization = min(1.0, pool.busy / max(1, pool.requested))
            elif decision.pool is Pool.ON_DEMAND:
                self._on_demand[name] = self._on_demand.get(name, 0) + 1
                env = self._take_idle(spec)
            if decision.admitted:
                concurrency = self._in_flight(name), self._in_flight(None)
                if env is not None:
                    self._busy.add(env)
        if decision.reason is not None:
            self.emitter.throttle(name, call.qualifier)
            raise Throttled(decision.reason)
        provisioned = decision.pool is Pool.PROVISIONED
        outcome = None
        try:
            if env is None:
                env, outcome = self._cold_start(spec, call)
            if outcome is None:
                assert env is not None
                outcome = env.invoke(call.request_id, call.payload, call.invoked_arn, call.client_context)
                self.emitter.log(spec.log_group, env.stream, outcome.events)
            return outcome
        finally:
            self._release(spec, env, pool if provisioned else None)
            self.emitter.invocation(
                name,
                call.qualifier,
                outcome.error is not None if outcome else None,
                outcome.duration_ms if outcome else None,
                *concurrency,
                spillover=decision.spillover,
                utilization=utilization,
            )

    def _cold_start(self, spec: FunctionSpec, call: Invocation) -> tuple[Environment | None, Outcome | None]:
        started = self.wall_clock()
        credentials = self.credentials(spec)  # the caller's error (the role cannot be assumed) propagates
        try:
            env = self.environment(spec, credentials, self.root, sandbox=self.sandbox, python=self.python)
        except OSError as exc:  # no process at all (fork failed, out of descriptors): a platform error
            log.exception("could not start an environment for %s", spec.name)
            message = f"RequestId: {call.request_id} Error: {exc}"
            error = {"errorMessage": message, "errorType": "Runtime.Unknown"}
            return None, Outcome(call.request_id, _json(error), error, 0.0, 0, status="error")
        with self._lock:
            self._busy.add(env)
        try:
            env.wait_ready(call.request_id)
        except InitFailed as failed:
            return env, self._init_outcome(spec, env, call, failed, started)
        self.emitter.log(spec.log_group, env.stream, reports.log_events(env.init_output, started))
        return env, None

    def _init_outcome(
        self, spec: FunctionSpec, env: Environment, call: Invocation, failed: InitFailed, started: float
    ) -> Outcome:
        """An Init that failed answers the invocation that caused it (and the environment is gone)."""
        ended = self.wall_clock()
        rid = call.request_id
        events = reports.log_events(failed.output, started)
        events.append((ended, reports.start_line(rid, spec.version)))
        events.append((ended, reports.end_line(rid)))
        error_type = failed.error.get("errorType")
        events.append(
            (
                ended,
                reports.report_line(
                    rid, failed.init_ms, spec.memory_mb, failed.max_memory_mb, None, failed.status, error_type
                ),
            )
        )
        self.emitter.log(spec.log_group, env.stream, events)
        return Outcome(
            rid,
            _json(failed.error),
            failed.error,
            failed.init_ms,
            failed.max_memory_mb,
            None,
            failed.status,
            failed.output,
            events,
        )

    def _take_idle(self, spec: FunctionSpec) -> Environment | None:
        stack = self._idle.get((spec.name, spec.version))
        while stack:
            env = stack.pop()  # the most recently used: warmest caches, and the others can age out
            if env.alive and env.spec.revision == spec.revision:
                return env
            threading.Thread(target=env.discard, daemon=True).start()
        return None

    def _release(self, spec: FunctionSpec, env: Environment | None, pool: ProvisionedPool | None) -> None:
        discard = False
        refill = False
        with self._lock:
            if env is not None:
                self._busy.discard(env)
            if pool is not None:
                pool.busy -= 1
                key = (spec.name, pool.spec.version)
                current = any(p is pool for p in self._provisioned.values())
                assert env is not None
                if env.alive and current and len(pool.envs) <= pool.requested:
                    pool.idle.append(env)
                else:
                    discard = True
                    if env in pool.envs:
                        pool.envs.remove(env)
                    refill = current and not self._closed.is_set()
            else:
                left = self._on_demand.get(spec.name, 1) - 1
                if left:
                    self._on_demand[spec.name] = left
                else:
                    self._on_demand.pop(spec.name, None)
                if env is not None:
                    key = (spec.name, spec.version)
                    if env.alive and self._live.get(key) == env.spec.revision and not self._closed.is_set():
                        self._idle.setdefault(key, []).append(env)
                    else:
                        discard = True
        if discard and env is not None:
            env.discard()
        if refill and pool is not None:
            for qualifier_key, candidate in list(self._provisioned.items()):
                if candidate is pool:
                    self._start_filling(qualifier_key, pool)

    def _account_state(self) -> AccountState:
        reserved = self._reserved
        return AccountState(
            limit=self.account_limit,
            reserved_total=sum(reserved.values()),
            unreserved_provisioned=sum(
                p.requested for (f, _), p in self._provisioned.items() if f not in reserved
            ),
            unreserved_on_demand=sum(n for f, n in self._on_demand.items() if f not in reserved),
        )

    def _function_state(self, name: str, pool: ProvisionedPool | None) -> FunctionState:
        return FunctionState(
            reserved=self._reserved.get(name),
            provisioned_total=sum(p.requested for (f, _), p in self._provisioned.items() if f == name),
            on_demand=self._on_demand.get(name, 0),
            provisioned_idle=len(pool.idle) if pool is not None else 0,
            provisioned_here=pool.requested if pool is not None else 0,
        )

    # ----- provisioned environments -----------------------------------------------------------------
    def _start_filling(self, key: tuple[str, str], pool: ProvisionedPool) -> None:
        name = f"lambda-provision-{key[0]}"
        threading.Thread(target=self._fill, args=(key, pool), name=name, daemon=True).start()

    def _fill(self, key: tuple[str, str], pool: ProvisionedPool) -> None:
        while not self._closed.is_set():
            with self._lock:
                if self._provisioned.get(key) is not pool:
                    return
                if len(pool.envs) + pool.starting >= pool.requested:
                    if len(pool.envs) >= pool.requested:
                        pool.status, pool.reason = "READY", None
                    return
                pool.starting += 1
            started = self.wall_clock()
            try:
                env = self.environment(
                    pool.spec,
                    self.credentials(pool.spec),
                    self.root,
                    sandbox=self.sandbox,
                    provisioned=True,
                    python=self.python,
                )
                env.wait_ready(None)
            except InitFailed as failed:
                self.emitter.log(pool.spec.log_group, env.stream, reports.log_events(failed.output, started))
                env.discard()
                message = failed.error.get("errorMessage")
                self._provision_failed(pool, f"FUNCTION_ERROR_INIT_FAILURE: {message}")
                return
            except Exception as exc:
                log.exception("could not provision %s", key)
                self._provision_failed(pool, str(exc))
                return
            self.emitter.log(pool.spec.log_group, env.stream, reports.log_events(env.init_output, started))
            with self._lock:
                pool.starting -= 1
                keep = self._provisioned.get(key) is pool and not self._closed.is_set()
                if keep:
                    pool.envs.append(env)
                    pool.idle.append(env)
            if not keep:
                env.discard()
                return

    def _provision_failed(self, pool: ProvisionedPool, reason: str) -> None:
        with self._lock:
            pool.starting -= 1
            pool.status, pool.reason = "FAILED", reason[:1000]

    # ----- housekeeping -----------------------------------------------------------------------------
    def reap(self, now: float | None = None) -> int:
        """Stop on-demand environments idle past the timeout (or too old); returns how many."""
        now = self.clock() if now is None else now
        wall = self.wall_clock()
        doomed: list[Environment] = []
        with self._lock:
            for key, stack in list(self._idle.items()):
                keep = []
                for env in stack:
                    too_old = wall - env.created > self.max_age_s
                    if not env.alive or too_old or now - env.last_used > self.idle_timeout_s:
                        doomed.append(env)
                    else:
                        keep.append(env)
                if keep:
                    self._idle[key] = keep
                else:
                    del self._idle[key]
        for env in doomed:
            env.discard()
        return len(doomed)

    def environments(self) -> int:
        with self._lock:
            idle = sum(len(s) for s in self._idle.values())
            return idle + len(self._busy) + sum(len(p.idle) for p in self._provisioned.values())

    def close(self) -> None:
        self._closed.set()
        self._reaper.stop(timeout_s=5)
        with self._lock:
            doomed = [env for stack in self._idle.values() for env in stack] + list(self._busy)
            for pool in self._provisioned.values():
                doomed += pool.envs
            self._idle.clear()
            self._provisioned.clear()
        for env in doomed:
            env.discard()
        shutil.rmtree(self.root, ignore_errors=True)


def _json(value: dict) -> bytes:
    return json.dumps(value).encode()
