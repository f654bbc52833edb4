"""Threads and workers per instance on this machine: what an endpoint's instances should be given.

    .venv/bin/python benchmarks/instance_threads.py [--models resnet50:224,mobilenet_v3_large:96]
                                                    [--seconds 6] [--runtime onnxruntime]

Per model (random weights, 133 classes; exported to ONNX once), every layout below serves the same
batch-1 requests at saturation for ``--seconds``, each serving process a separate OS process with its
own session, as instances are; all layouts are measured in this run, interleaved, best of ``--rounds``:

* **1×T** — one process with T = every core intra-op threads (one instance, one worker: the default);
* **2×T** — two processes with T threads each (two instances of a type with ≥ T vCPUs, as the fleet
  starts them today: 2T threads on T cores);
* **2×T/2** — two processes with T/2 threads each (two instances whose threads are capped so the fleet
  never asks for more threads than the machine has; also one instance with two single-thread workers);
* **1×T, 2 callers** — one process, T threads, two concurrent requests (what one instance does with
  two request threads and no second worker).

Printed as images/s and as ratios against **1×T**. The decision these figures feed: how many intra-op
threads an instance gets when others share the machine (``runtime/endpoints/profiles.py``).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from kennel.ml.artifact import ArtifactMeta, write_model_dir
from kennel.ml.export import export_onnx
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.runtimes import load_predictor
from kennel.ml.transforms import Preprocess
from kennel.runtime.endpoints.profiles import machine_cores


def _serve(model_dir: str, runtime: str, threads: int, callers: int, size: int, start, stop, out) -> None:
    """One serving process: load, warm up, wait for the start signal, count requests until stop."""
    torch.set_num_threads(threads)
    predictor = load_predictor(Path(model_dir), runtime, num_threads=threads)
    batch = np.random.default_rng(0).standard_normal((1, 3, size, size), dtype=np.float32)
    for _ in range(3):
        predictor.predict(batch)
    counts = [0] * callers

    def call(i: int) -> None:
        while not stop.is_set():
            predictor.predict(batch)
            counts[i] += 1

    out.put("ready")
    start.wait()
    workers = [threading.Thread(target=call, args=(i,)) for i in range(callers)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    out.put(sum(counts))


def measure(model_dir: Path, runtime: str, layout: list[tuple[int, int]], size: int, seconds: float) -> float:
    """Images/s of ``layout`` — one (threads, callers) pair per process — all serving at once."""
    ctx = mp.get_context("spawn")
    start, stop, out = ctx.Event(), ctx.Event(), ctx.Queue()
    procs = [
        ctx.Process(target=_serve, args=(str(model_dir), runtime, t, c, size, start, stop, out))
        for t, c in layout
    ]
    for p in procs:
        p.start()
    for _ in procs:
        out.get(timeout=600)
    start.set()
    began = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    total = sum(out.get(timeout=120) for _ in procs)
    elapsed = time.perf_counter() - began
    for p in procs:
        p.join(timeout=60)
    return total / elapsed


def build(root: Path, backbone: str, size: int) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, num_classes=133)
    names = [f"class_{i:03d}" for i in range(133)]
    meta = ArtifactMeta(model=cfg, preprocess=Preprocess(image_size=size), classes=names, labels=names)
    model_dir = write_model_dir(root / backbone, build_model(cfg, pretrained=False), meta, with_code=False)
    export_onnx(model_dir)
    return model_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="resnet50:224,mobilenet_v3_large:96")
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--runtime", default="onnxruntime")
    args = parser.parse_args(argv)
    console = Console()
    cores = machine_cores()
    half = max(1, cores // 2)
    layouts = {
        f"1×{cores}": [(cores, 1)],
        f"2×{cores}": [(cores, 1), (cores, 1)],
        f"2×{half}": [(half, 1), (half, 1)],
        f"1×{cores}, 2 callers": [(cores, 2)],
    }
    table = Table(
        title=f"batch-1 images/s at saturation, {args.runtime}, {cores} cores (best of {args.rounds})"
    )
    table.add_column("model")
    for name in layouts:
        table.add_column(name, justify="right")
    with tempfile.TemporaryDirectory(prefix="kennel-threads-") as tmp:
        for spec in args.models.split(","):
            backbone, _, size_text = spec.partition(":")
            size = int(size_text or 224)
            model_dir = build(Path(tmp), backbone, size)
            best = dict.fromkeys(layouts, 0.0)
            for _ in range(args.rounds):
                for name, layout in layouts.items():
                    rate = measure(model_dir, args.runtime, layout, size, args.seconds)
                    best[name] = max(best[name], rate)
                    console.print(f"  {backbone}@{size} {name}: {rate:.1f} img/s")
            base = best[f"1×{cores}"]
            table.add_row(
                f"{backbone}@{size}",
                *[f"{v:.1f} ({v / base:.2f}×)" for v in best.values()],
            )
    console.print(table)
    console.print(f"1-minute load average at the end: {os.getloadavg()[0]:.1f} (each cell: its best round)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
