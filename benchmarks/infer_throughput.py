"""Inference throughput of Kennel's runtimes against eager fp32 PyTorch, measured in one run.

    .venv/bin/python benchmarks/infer_throughput.py --backbone resnet50 --image-size 224 --seconds 3

Builds a random-weight model directory in a temp folder (no downloads), exports it to ONNX, then for
each runtime and batch size times a loop of ``--seconds`` after warmup (img/s = batch / median call).
Every runtime's logits are compared with eager PyTorch on the same random images, so a fast but
inexact path (OpenVINO bf16) shows its error next to its speed. "× eager" is peak img/s over eager's
peak img/s, eager being fp32 PyTorch from this same run (plain contiguous fp32, all cores,
inference_mode), never a figure from another machine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from kennel.ml.artifact import ArtifactMeta, load_model_dir, write_model_dir
from kennel.ml.export import export_onnx
from kennel.ml.models import BACKBONES, ModelConfig, build_model
from kennel.ml.runtimes import RUNTIMES, default_num_threads, load_predictor
from kennel.ml.transforms import Preprocess

EAGER = "eager"
CHECK_SEED = 1234


@dataclass
class RuntimeResult:
    name: str
    precision: str
    load_seconds: float
    images_per_second: dict[int, float] = field(default_factory=dict)
    p50_latency_ms: float | None = None
    max_abs_diff: float = 0.0
    max_rel_diff: float = 0.0  # max|Δ| / max(1, max|eager logit|)
    top1_agreement: float = 1.0
    speedup: float = 0.0  # peak img/s over eager's peak img/s

    @property
    def peak(self) -> tuple[int, float]:
        return max(self.images_per_second.items(), key=lambda kv: kv[1])


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backbone", default="resnet50", choices=sorted(BACKBONES))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--num-classes", type=int, default=133)
    parser.add_argument("--batch-sizes", default="1,8,32", help="comma-separated")
    parser.add_argument(
        "--seconds", type=float, default=5.0, help="timed loop length per runtime and batch size"
    )
    parser.add_argument(
        "--runtimes",
        default="torch,onnxruntime,openvino-f32,openvino",
        help=f"comma-separated, from {', '.join(r for r in RUNTIMES if r != 'auto')}",
    )
    parser.add_argument("--threads", type=int, default=0, help="0 = every core this process may use")
    parser.add_argument("--check-images", type=int, default=64, help="random images for the logit comparison")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.runtimes = [r.strip() for r in args.runtimes.split(",") if r.strip()]
    unknown = [r for r in args.runtimes if r not in RUNTIMES]
    if unknown:
        parser.error(f"unknown runtime(s) {', '.join(unknown)}; choose from {', '.join(RUNTIMES)}")
    if not args.batch_sizes or min(args.batch_sizes) < 1:
        parser.error("--batch-sizes needs positive integers")
    return args


def time_loop(
    fn: Callable[[torch.Tensor], object], batch: torch.Tensor, seconds: float
) -> tuple[float, list[float]]:
    """Images per second from the median call time over a loop of at least ``seconds`` (and three calls).

    The median rather than total time / calls: on a shared 2-core machine another process's burst
    stalls a few calls by 5-10×, and a mean would report that burst instead of the runtime.
    """
    fn(batch)  # warmup: first-call allocation, OpenVINO's per-shape kernel selection, oneDNN primitive caches
    fn(batch)
    latencies: list[float] = []
    started = time.perf_counter()
    while time.perf_counter() - started < seconds or len(latencies) < 3:
        t0 = time.perf_counter()
        fn(batch)
        latencies.append(time.perf_counter() - t0)
    return batch.shape[0] / statistics.median(latencies), latencies


def predict_in_chunks(
    fn: Callable[[torch.Tensor], np.ndarray], images: torch.Tensor, chunk: int
) -> np.ndarray:
    return np.concatenate([np.asarray(fn(images[i : i + chunk])) for i in range(0, len(images), chunk)])


def build_model_dir(root: Path, args: argparse.Namespace) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=args.backbone, num_classes=args.num_classes)
    model = build_model(cfg, pretrained=False)
    names = [f"class_{i:03d}" for i in range(args.num_classes)]
    meta = ArtifactMeta(
        model=cfg, preprocess=Preprocess(image_size=args.image_size), classes=names, labels=names
    )
    return write_model_dir(root / "model", model, meta, with_code=False)


def benchmark(args: argparse.Namespace, console: Console) -> list[RuntimeResult]:
    threads = args.threads or default_num_threads()
    torch.set_num_threads(threads)
    size = args.image_size
    gen = torch.Generator().manual_seed(0)
    timing_batches = {n: torch.randn(n, 3, size, size, generator=gen) for n in args.batch_sizes}
    check_images = torch.randn(
        args.check_images, 3, size, size, generator=torch.Generator().manual_seed(CHECK_SEED)
    )
    chunk = max(args.batch_sizes)
    results: list[RuntimeResult] = []

    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as tmp:
        model_dir = build_model_dir(Path(tmp), args)
        exported = export_onnx(model_dir)
        console.print(
            f"exported {args.backbone}@{size} to ONNX in {exported.seconds:.1f}s "
            f"(parity vs eager: max|Δ| {exported.max_abs_diff:.2e})"
        )

        started = time.perf_counter()
        eager_model, _ = load_model_dir(model_dir)
        eager_model = eager_model.float().eval()

        @torch.inference_mode()
        def eager(batch: torch.Tensor) -> np.ndarray:
            return eager_model(batch).numpy()

        candidates: list[tuple[str, str, float, Callable[[torch.Tensor], np.ndarray]]] = [
            (EAGER, "fp32", time.perf_counter() - started, eager)
        ]
        reference = predict_in_chunks(eager, check_images, chunk)
        scale = max(1.0, float(np.abs(reference).max()))
        for runtime in args.runtimes:
            started = time.perf_counter()
            predictor = load_predictor(model_dir, runtime, num_threads=threads)
            predictor.warmup()
            candidates.append(
                (predictor.runtime, predictor.precision, time.perf_counter() - started, predictor.predict)
            )

        for name, precision, load_seconds, fn in candidates:
            console.print(f"  timing {name} ({precision}) …")
            result = RuntimeResult(name=name, precision=precision, load_seconds=load_seconds)
            for n, batch in timing_batches.items():
                ips, latencies = time_loop(fn, batch, args.seconds)
                result.images_per_second[n] = ips
                if n == 1:
                    result.p50_latency_ms = statistics.median(latencies) * 1000
            logits = predict_in_chunks(fn, check_images, chunk)
            diff = float(np.abs(logits - reference).max())
            result.max_abs_diff, result.max_rel_diff = diff, diff / scale
            result.top1_agreement = float((logits.argmax(1) == reference.argmax(1)).mean())
            results.append(result)
            del fn

    eager_peak = results[0].peak[1]
    for result in results:
        result.speedup = result.peak[1] / eager_peak
    return results


def render(results: list[RuntimeResult], args: argparse.Namespace, console: Console, load: tuple) -> None:
    eager = results[0]
    title = (
        f"{args.backbone} @ {args.image_size}px, {args.num_classes} classes, random weights — "
        f"{args.threads or default_num_threads()} threads, {args.seconds:g}s per point; "
        f"|Δ| and top-1 vs eager on {args.check_images} random images"
    )
    table = Table(title=title)
    table.add_column("runtime")
    table.add_column("precision")
    for n in args.batch_sizes:
        table.add_column(f"img/s b{n}", justify="right")
    table.add_column("p50 b1 ms", justify="right")
    table.add_column("max|Δ| (rel)", justify="right")
    table.add_column("top-1 agree", justify="right")
    table.add_column("load s", justify="right")
    table.add_column("× eager", justify="right")
    for r in results:
        cells = [f"{r.images_per_second[n]:.1f}" for n in args.batch_sizes]
        latency = f"{r.p50_latency_ms:.1f}" if r.p50_latency_ms is not None else "–"
        table.add_row(
            r.name,
            r.precision,
            *cells,
            latency,
            f"{r.max_abs_diff:.1e} ({r.max_rel_diff:.1e})",
            f"{r.top1_agreement:.1%}",
            f"{r.load_seconds:.1f}",
            f"{r.speedup:.2f}×",
        )
    console.print(table)

    fastest = max(results, key=lambda r: r.peak[1])
    batch, ips = fastest.peak
    console.print(
        f"fastest: {fastest.name} ({fastest.precision}) at batch {batch}: {ips:.1f} img/s = "
        f"{fastest.speedup:.2f}× eager fp32 ({eager.peak[1]:.1f} img/s at batch {eager.peak[0]})"
    )
    exact = [r for r in results[1:] if r.precision == "fp32"]
    if exact and fastest.precision != "fp32":
        best = max(exact, key=lambda r: r.peak[1])
        console.print(
            f"fastest exact fp32 path: {best.name} at batch {best.peak[0]}: {best.peak[1]:.1f} img/s = "
            f"{best.speedup:.2f}× eager (max|Δ| {best.max_abs_diff:.1e})"
        )
    if fastest.precision != "fp32":
        console.print(
            f"note: {fastest.name} runs in {fastest.precision}; its logits differ from eager by up to "
            f"{fastest.max_abs_diff:.2e} ({fastest.max_rel_diff:.1e} of the logit scale) and its top-1 "
            f"agrees on {fastest.top1_agreement:.1%} of {args.check_images} random images"
        )
    console.print(
        f"load average before/after: {load[0]:.2f} / {load[1]:.2f} (other work on these cores skews figures)"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # Piped output (CI logs, `| tee`) would otherwise be wrapped to 80 columns and the table truncated.
    console = Console(width=None if sys.stdout.isatty() else 150)
    load_before = os.getloadavg()[0]
    results = benchmark(args, console)
    load_after = os.getloadavg()[0]
    render(results, args, console, (load_before, load_after))
    if args.json is not None:
        payload = {
            "backbone": args.backbone,
            "image_size": args.image_size,
            "num_classes": args.num_classes,
            "seconds": args.seconds,
            "threads": args.threads or default_num_threads(),
            "torch_version": torch.__version__,
            "results": [asdict(r) for r in results],
        }
        args.json.write_text(json.dumps(payload, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
