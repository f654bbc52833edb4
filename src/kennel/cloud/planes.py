"""Control plane and data plane: separate worker pools, bounded admission, saturation figures.

A data-plane request (InvokeEndpoint, Lambda Invoke, an S3 request) may wait seconds on a model, a
function or the object store; a control-plane call (GetCallerIdentity, GetUser, DescribeEndpoint)
needs a thread for a millisecond. Sharing one pool let 300 slow InvokeEndpoint calls hold every
thread, so nobody else got an answer. Here each data-plane kind has its own threads and a bounded
number of admitted requests; past that bound a request is refused at once with the service's own
throttling error instead of queueing without limit, and the control plane keeps its threads.

Which plane a request belongs to is decided on the event loop before the body is read, from the
method and the raw path alone: the two data-plane operations that do not go through S3 have URI
templates no other operation shares (see :func:`plane_for`, checked against the router in the tests).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from kennel.settings import Settings

CONTROL = "control"
ENDPOINTS = "endpoints"  # SageMaker InvokeEndpoint
FUNCTIONS = "functions"  # Lambda Invoke
OBJECTS = "objects"  # every S3 request (bodies stream through the gateway)

T = TypeVar("T")


class _CountingExecutor(ThreadPoolExecutor):
    """A thread pool that knows how many of its threads are working, for the health report (so work
    handed to it by ``loop.run_in_executor`` anywhere is counted, not only the gateway's own)."""

    def __init__(self, threads: int, name: str) -> None:
        super().__init__(max_workers=threads, thread_name_prefix=f"kennel-{name}")
        self.running = 0
        self._count_lock = threading.Lock()

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return super().submit(self._counted, fn, args, kwargs)

    def _counted(self, fn: Callable[..., T], args: tuple, kwargs: dict) -> T:
        with self._count_lock:
            self.running += 1
        try:
            return fn(*args, **kwargs)
        finally:
            with self._count_lock:
                self.running -= 1


class Plane:
    """One pool of worker threads and the count of requests admitted to it (``active``: admitted and
    not finished, touched only on the event loop thread, so it needs no lock)."""

    def __init__(self, name: str, threads: int, queue: int | None) -> None:
        self.name = name
        self.threads = threads
        # None: no bound (the control plane must never refuse for lack of room; its calls are short).
        self.limit = None if queue is None else threads + queue
        self.executor = _CountingExecutor(threads, name)
        self.active = 0
        self.rejected = 0
        self.peak_active = 0

    def try_enter(self) -> bool:
        """Admit one request, or count a refusal; the caller must :meth:`leave` after an admission."""
        if self.limit is not None and self.active >= self.limit:
            self.rejected += 1
            return False
        self.active += 1
        if self.active > self.peak_active:
            self.peak_active = self.active
        return True

    def leave(self) -> None:
        self.active -= 1

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on this plane's threads."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def saturated(self) -> bool:
        """Refusing requests now, or every thread busy with work waiting behind them."""
        if self.limit is not None and self.active >= self.limit:
            return True
        running = self.executor.running
        return running >= self.threads and self.active > running

    def stats(self) -> dict[str, Any]:
        running = self.executor.running
        return {
            "threads": self.threads,
            "in_flight": running,
            # Admitted and not on a thread: waiting for one, or (S3) streaming on the event loop.
            "queued": max(0, self.active - running),
            "admitted": self.active,
            "limit": self.limit,
            "peak_admitted": self.peak_active,
            "rejected": self.rejected,
            "saturated": self.saturated(),
        }

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


class Planes:
    def __init__(self, settings: Settings) -> None:
        threads, queue = settings.data_plane_threads, settings.data_plane_queue
        self.control = Plane(CONTROL, settings.gateway_threads, None)
        self.by_name = {
            CONTROL: self.control,
            ENDPOINTS: Plane(ENDPOINTS, threads, queue),
            FUNCTIONS: Plane(FUNCTIONS, threads, queue),
            # S3 requests hold a thread only to verify, authorise and de-chunk; the rest is streaming.
            OBJECTS: Plane(OBJECTS, max(4, threads // 4), threads + queue),
        }

    def __getitem__(self, name: str) -> Plane:
        return self.by_name[name]

    def stats(self) -> dict[str, dict[str, Any]]:
        return {name: plane.stats() for name, plane in self.by_name.items()}

    def saturated(self) -> list[str]:
        return [name for name, plane in self.by_name.items() if plane.saturated()]

    def shutdown(self) -> None:
        for plane in self.by_name.values():
            plane.shutdown()


def plane_for(method: str, raw_path: str) -> str:
    """The plane of a non-S3 request, by the URI templates of the two data-plane operations:
    InvokeEndpoint ``POST /endpoints/{EndpointName}/invocations`` and Lambda Invoke
    ``POST /2015-03-31/functions/{FunctionName}/invocations`` (a trailing slash is accepted by the
    router, so here too). Anything else, including every malformed variant, is control plane: the
    router matches these templates on the raw path, so no other spelling reaches either operation."""
    if method != "POST" or not raw_path.endswith(("/invocations", "/invocations/")):
        return CONTROL
    parts = raw_path.split("/")
    if parts[-1] == "":
        parts.pop()
    if len(parts) == 4 and parts[1] == "endpoints" and parts[2]:
        return ENDPOINTS
    if len(parts) == 5 and parts[1] == "2015-03-31" and parts[2] == "functions" and parts[3]:
        return FUNCTIONS
    return CONTROL
