"""Where a job's hosts run. ``Engine`` is the seam for other engines (a Ray cluster, torchrun across
machines): it takes a :class:`JobSpec` with local inputs and gives back a :class:`RunningJob` whose
hosts can be waited on, stopped and read. ``LocalEngine`` runs every host as a sandboxed process on
this machine; the hosts of one job share one private network (``algo-1..N`` → 127.0.0.1 there), so
two multi-host jobs never collide on ``MASTER_PORT``.
"""

from __future__ import annotations

import time
from typing import Protocol

from kennel.runtime.jobs.contract import host_names
from kennel.runtime.jobs.host import Host, LineCallback
from kennel.runtime.jobs.spec import JobSpec
from kennel.runtime.sandbox import Sandbox, SandboxNetwork


class RunningJob(Protocol):
    hosts: list[Host]

    def exited(self) -> bool: ...
    def failed_host(self) -> Host | None: ...
    def terminate(self) -> None: ...
    def kill(self) -> None: ...
    def finish(self) -> dict[str, int | None]: ...


class Engine(Protocol):
    def launch(self, spec: JobSpec, on_line: LineCallback) -> RunningJob: ...


class LocalRun:
    def __init__(self, hosts: list[Host], network: SandboxNetwork | None) -> None:
        self.hosts = hosts
        self.network = network
        self.started = time.time()

    def exited(self) -> bool:
        return all(host.poll() is not None for host in self.hosts)

    def failed_host(self) -> Host | None:
        """The first host that exited non-zero (AWS fails the whole job when one host fails)."""
        for host in self.hosts:
            code = host.poll()
            if code not in (None, 0):
                return host
        return None

    def terminate(self) -> None:
        for host in self.hosts:
            host.terminate()

    def kill(self) -> None:
        for host in self.hosts:
            host.kill()

    def finish(self) -> dict[str, int | None]:
        codes = {host.name: host.finish() for host in self.hosts}
        if self.network is not None:
            self.network.close()
            self.network = None
        return codes


class LocalEngine:
    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox

    def launch(self, spec: JobSpec, on_line: LineCallback) -> LocalRun:
        names = tuple(host_names(spec.instance_count))
        hosts = [Host(spec, name, names) for name in names]
        for host in hosts:
            host.prepare()
        network = self.sandbox.network(spec.name)
        run = LocalRun(hosts, network)
        try:
            for host in hosts:
                host.start(self.sandbox, network, on_line)
        except Exception:
            run.kill()
            run.finish()
            raise
        return run
