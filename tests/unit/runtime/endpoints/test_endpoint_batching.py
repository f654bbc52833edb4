"""Dynamic batching: lone requests run at once, concurrent ones share forward passes, results stay theirs."""

from __future__ import annotations

import threading
import time

import numpy as np
import pytest
import torch

from kennel.runtime.endpoints.batching import BatchingPredictor


class SlowPredictor:
    """Returns each image's pixel sum (so a result can be traced to its input) after ``delay_s``."""

    runtime, precision, meta = "fake", "fp32", None

    def __init__(self, delay_s: float = 0.05, fail: bool = False) -> None:
        self.delay_s = delay_s
        self.fail = fail
        self.sizes: list[int] = []

    def predict(self, batch):
        self.sizes.append(int(batch.shape[0]))
        time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("out of memory")
        array = batch.numpy() if isinstance(batch, torch.Tensor) else np.asarray(batch)
        return array.reshape(array.shape[0], -1).sum(axis=1, keepdims=True).astype(np.float32)


def _image(value: float, n: int = 1, size: int = 4) -> torch.Tensor:
    return torch.full((n, 3, size, size), value)


def _concurrently(batcher: BatchingPredictor, inputs: list[torch.Tensor]) -> list[np.ndarray]:
    results: list = [None] * len(inputs)
    start = threading.Barrier(len(inputs))

    def one(i: int) -> None:
        with batcher.request():
            start.wait()
            results[i] = batcher.predict(inputs[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(inputs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    return results


def test_a_lone_request_is_not_delayed() -> None:
    inner = SlowPredictor(delay_s=0.0)
    batcher = BatchingPredictor(inner, max_batch_size=8, max_delay_s=1.0)
    started = time.monotonic()
    with batcher.request():
        result = batcher.predict(_image(1.0))
    assert time.monotonic() - started < 0.3  # the 1 s delay applies only while others are on their way
    assert result.tolist() == [[48.0]] and batcher.last_batch_size == 1
    batcher.close()


def test_concurrent_requests_share_forward_passes_and_get_their_own_rows() -> None:
    inner = SlowPredictor(delay_s=0.05)
    batcher = BatchingPredictor(inner, max_batch_size=8, max_delay_s=0.05)
    inputs = [_image(float(i), n=1 + i % 2) for i in range(6)]
    results = _concurrently(batcher, inputs)
    for i, result in enumerate(results):
        assert result.shape == (1 + i % 2, 1)
        assert np.allclose(result, 48.0 * i)
    assert len(inner.sizes) < 6 and sum(inner.sizes) == 9
    assert batcher.largest_batch > 1
    batcher.close()


def test_batches_never_exceed_the_maximum() -> None:
    inner = SlowPredictor(delay_s=0.02)
    batcher = BatchingPredictor(inner, max_batch_size=4, max_delay_s=0.05)
    results = _concurrently(batcher, [_image(float(i)) for i in range(10)])
    assert max(inner.sizes) <= 4 and sum(inner.sizes) == 10
    assert [float(r[0, 0]) for r in results] == [48.0 * i for i in range(10)]
    big = batcher.predict(_image(1.0, n=6))  # one request above the limit still runs, alone
    assert big.shape == (6, 1) and inner.sizes[-1] == 6
    batcher.close()


def test_the_batcher_waits_only_for_requests_it_was_told_about() -> None:
    for delay_s, expected in ((0.5, [2]), (0.0, [1, 1])):
        inner = SlowPredictor(delay_s=0.0)
        batcher = BatchingPredictor(inner, max_batch_size=8, max_delay_s=delay_s)
        announced = threading.Event()

        def late(batcher: BatchingPredictor = batcher, announced: threading.Event = announced) -> None:
            with batcher.request():
                announced.set()
                time.sleep(0.1)  # still decoding its image when the other request arrives
                batcher.predict(_image(2.0))

        thread = threading.Thread(target=late)
        thread.start()
        announced.wait()
        with batcher.request():
            batcher.predict(_image(1.0))
        thread.join()
        assert inner.sizes == expected
        batcher.close()


def test_a_failed_forward_pass_fails_every_request_in_it() -> None:
    batcher = BatchingPredictor(SlowPredictor(delay_s=0.05, fail=True), max_batch_size=8)
    errors = []

    def one() -> None:
        try:
            batcher.predict(_image(1.0))
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(5)
    assert errors == ["out of memory"] * 3
    batcher.close()


def test_images_of_different_sizes_are_never_mixed() -> None:
    inner = SlowPredictor(delay_s=0.05)
    batcher = BatchingPredictor(inner, max_batch_size=8, max_delay_s=0.05)
    results = _concurrently(batcher, [_image(1.0, size=4), _image(1.0, size=8), _image(1.0, size=4)])
    assert [float(r[0, 0]) for r in results] == [48.0, 192.0, 48.0]
    assert sum(inner.sizes) == 3
    batcher.close()


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="max_batch_size"):
        BatchingPredictor(SlowPredictor(), max_batch_size=0)
