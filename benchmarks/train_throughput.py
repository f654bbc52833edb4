"""Training throughput (img/s): eager vs torch.compile vs the frozen-backbone cached-feature path.

Every figure is printed with its ratio to eager full fine-tuning measured in the same run, and an
end-to-end section trains from JPEG files (decoded every epoch vs the decoded uint8 cache).

    python benchmarks/train_throughput.py --backbone resnet18 --image-size 224 --batch-size 32
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from rich.console import Console
from rich.table import Table
from torch import nn

from kennel.ml.config import parse_train_args
from kennel.ml.models import Freeze, ModelConfig, build_model
from kennel.ml.synth import SynthSpec, generate
from kennel.ml.train import run


def timed(step: Callable[[], None], images_per_step: int, seconds: float, warmup: int) -> float:
    for _ in range(warmup):
        step()
    sync()
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        step()
        steps += 1
    sync()
    return steps * images_per_step / (time.perf_counter() - started)


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def train_step(module: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device):
    optimizer = torch.optim.AdamW([p for p in module.parameters() if p.requires_grad], lr=1e-4)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"):
            loss = loss_fn(module(x).float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def model_section(args, device: torch.device) -> list[tuple[str, float]]:
    x = torch.randn(args.batch_size, 3, args.image_size, args.image_size, device=device)
    y = torch.randint(0, 133, (args.batch_size,), device=device)
    if device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    rows = []

    def make(freeze: Freeze) -> nn.Module:
        torch.manual_seed(0)
        model = build_model(ModelConfig(backbone=args.backbone, num_classes=133, freeze=freeze)).to(device)
        return model.to(memory_format=torch.channels_last) if device.type == "cuda" else model

    full = make(Freeze.NONE).train()
    rows.append(
        ("full fine-tune, eager", timed(train_step(full, x, y, device), args.batch_size, args.seconds, 2))
    )
    if args.compile:
        compiled = torch.compile(make(Freeze.NONE).train())
        started = time.perf_counter()
        step = train_step(compiled, x, y, device)
        step()
        compile_s = time.perf_counter() - started
        rows.append(
            (
                f"full fine-tune, compiled ({compile_s:.0f} s compile)",
                timed(step, args.batch_size, args.seconds, 2),
            )
        )
    frozen = make(Freeze.BACKBONE).train()
    rows.append(
        (
            "frozen backbone, features every step",
            timed(train_step(frozen, x, y, device), args.batch_size, args.seconds, 2),
        )
    )
    with torch.inference_mode():
        features = frozen.backbone(x)
    features = features.clone()
    head_rate = timed(train_step(frozen.head, features, y, device), args.batch_size, args.seconds, 5)
    rows.append(("frozen backbone, cached features (head only)", head_rate))
    return rows


def pipeline_section(args, device: torch.device) -> list[tuple[str, float]]:
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        generate(
            data, SynthSpec(classes=8, per_class=args.per_class, size=int(args.image_size * 1.4), seed=1)
        )
        n_train = 8 * args.per_class
        for pipeline in ("files", "cache"):
            common = [
                "--data-dir", str(data), "--output-dir", f"{tmp}/{pipeline}/out",
                "--model-dir", f"{tmp}/{pipeline}/m",
                "--backbone", args.backbone, "--freeze", "none", "--image-size", str(args.image_size),
                "--batch-size", str(args.batch_size), "--epochs", "2", "--patience", "0", "--quiet",
                "--pipeline", pipeline, "--num-workers", str(args.workers),
            ]  # fmt: skip
            result = run(parse_train_args(common, env={}))
            # Epoch 2 excludes one-time work (decoding the cache, worker start-up is per epoch anyway).
            seconds = result.history[-1]["seconds"]
            rows.append((f"end to end from JPEG, pipeline={pipeline} (train+valid epoch)", n_train / seconds))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument(
        "--per-class", type=int, default=24, help="synthetic images per class (end-to-end part)"
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip-pipeline", action="store_true")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    console = Console()
    console.print(
        f"device {device}, threads {torch.get_num_threads()}, {args.backbone} at {args.image_size}px, "
        f"batch {args.batch_size}"
    )
    rows = model_section(args, device)
    if not args.skip_pipeline:
        rows += pipeline_section(args, device)
    baseline = rows[0][1]
    table = Table(title="training throughput")
    table.add_column("path")
    table.add_column("img/s", justify="right")
    table.add_column("× eager full fine-tune", justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.1f}", f"{rate / baseline:.2f}")
    console.print(table)


if __name__ == "__main__":
    main()
