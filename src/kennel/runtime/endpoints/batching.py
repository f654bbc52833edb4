"""Dynamic batching for Kennel's built-in handler: concurrent requests share one forward pass.

The handler's ``predict_fn`` calls ``model.predictor.predict(batch)`` from each request thread; this
wrapper replaces that predictor, so the handler runs unchanged while one model thread coalesces calls.

Policy, chosen for low latency at low load:

* a lone request runs at once (no timer: the model thread takes whatever is queued the moment it is
  free), so an idle endpoint adds no batching delay at all;
* while the model is busy, arrivals queue up and the next pass takes them together, up to
  ``max_batch_size`` images;
* the model thread only *waits* (at most ``max_delay_s``) when requests it has been told about are
  still decoding their images, i.e. when a fuller batch is known to be seconds away, not hoped for.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from kennel.runtime.loop import consumer_loop


@dataclass
class _Job:
    batch: torch.Tensor | np.ndarray
    size: int
    done: threading.Event = field(default_factory=threading.Event)
    result: np.ndarray | None = None
    error: BaseException | None = None
    batch_size: int = 0  # images in the forward pass this job rode in


class BatchingPredictor:
    """Wraps a ``kennel.ml.runtimes.Predictor``; ``predict`` may be called from many threads at once."""

    def __init__(
        self,
        inner: Any,
        *,
        max_batch_size: int = 8,
        max_delay_s: float = 0.002,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be at least 1; got {max_batch_size}")
        if max_delay_s < 0:
            raise ValueError(f"max_delay_s must be >= 0; got {max_delay_s}")
        self.inner = inner
        self.max_batch_size = max_batch_size
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._queue: deque[_Job] = deque()
        self._cond = threading.Condition()
        self._preparing = 0  # announced requests that have not reached predict() yet
        self._local = threading.local()
        self._closed = False
        self.batches_run = 0
        self.largest_batch = 0
        # The model thread: a consumer loop whose step takes the next batch and runs it. close() wakes
        # the condition itself, and the loop's drain runs whatever was queued before it closed.
        self._loop = consumer_loop("kennel-batcher", self._take, self._run)
        self._loop.start()

    # The handler reads these from the predictor it was given.
    @property
    def runtime(self) -> str:
        return self.inner.runtime

    @property
    def precision(self) -> str:
        return self.inner.precision

    @property
    def meta(self) -> Any:
        return self.inner.meta

    def warmup(self) -> None:
        self.inner.warmup()

    @contextmanager
    def request(self) -> Iterator[None]:
        """Announce a request that will (probably) call ``predict`` soon; the batcher may wait for it."""
        with self._cond:
            self._preparing += 1
        self._local.announced = True
        try:
            yield
        finally:
            if getattr(self._local, "announced", False):  # it never reached predict (bad input, say)
                self._local.announced = False
                with self._cond:
                    self._preparing -= 1
                    self._cond.notify_all()

    def predict(self, batch: torch.Tensor | np.ndarray) -> np.ndarray:
        job = _Job(batch, int(batch.shape[0]))
        with self._cond:
            if self._closed:
                raise RuntimeError("the model server is shutting down")
            if getattr(self._local, "announced", False):
                self._local.announced = False
                self._preparing -= 1
            self._queue.append(job)
            self._cond.notify_all()
        job.done.wait()
        self._local.last_batch_size = job.batch_size
        if job.error is not None:
            raise job.error
        assert job.result is not None
        return job.result

    @property
    def last_batch_size(self) -> int:
        """Images in the forward pass that served this thread's latest ``predict``."""
        return getattr(self._local, "last_batch_size", 0)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._loop.stop(timeout_s=5)

    # --- the model thread ---------------------------------------------------------------------------

    def _take(self, timeout_s: float) -> list[_Job] | None:
        """The next batch, waiting up to ``timeout_s`` for a first job; None when there is none yet."""
        with self._cond:
            if not self._queue and not self._closed:
                self._cond.wait(timeout_s)  # predict() notifies: a lone request is taken the moment it lands
            if not self._queue:
                return None
            deadline = self._clock() + self.max_delay_s
            while self._queued_images() < self.max_batch_size and self._preparing > 0:
                remaining = deadline - self._clock()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return self._pop_compatible()

    def _queued_images(self) -> int:
        return sum(job.size for job in self._queue)

    def _pop_compatible(self) -> list[_Job]:
        """The first job plus later ones of the same per-image shape, within ``max_batch_size`` images."""
        first = self._queue.popleft()
        taken, total, kept = [first], first.size, deque()
        shape = tuple(first.batch.shape[1:])
        while self._queue:
            job = self._queue.popleft()
            if total + job.size <= self.max_batch_size and tuple(job.batch.shape[1:]) == shape:
                taken.append(job)
                total += job.size
            else:
                kept.append(job)
        self._queue.extendleft(reversed(kept))
        return taken

    def _run(self, jobs: list[_Job]) -> None:
        total = sum(job.size for job in jobs)
        try:
            merged = _concat([job.batch for job in jobs])
            logits = np.asarray(self.inner.predict(merged), dtype=np.float32)
            if logits.shape[0] != total:
                raise RuntimeError(f"the model returned {logits.shape[0]} rows for a batch of {total}")
        except BaseException as exc:  # every waiting request must hear about it, whatever it is
            for job in jobs:
                job.error, job.batch_size = exc, total
                job.done.set()
            return
        self.batches_run += 1
        self.largest_batch = max(self.largest_batch, total)
        start = 0
        for job in jobs:
            job.result, job.batch_size = logits[start : start + job.size], total
            start += job.size
            job.done.set()


def _concat(parts: list[torch.Tensor | np.ndarray]) -> torch.Tensor | np.ndarray:
    if len(parts) == 1:
        return parts[0]
    if all(isinstance(part, torch.Tensor) for part in parts):
        return torch.cat(parts)  # type: ignore[arg-type]
    return np.concatenate([p.numpy() if isinstance(p, torch.Tensor) else np.asarray(p) for p in parts])
