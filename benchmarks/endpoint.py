"""SageMaker endpoints through the whole path, against the same model in process and the seeds' way.

    .venv/bin/python benchmarks/endpoint.py [--models resnet18,resnet50] [--seconds 8] [--clients 4]
                                            [--runtime default]

Per model (random weights, 133 classes, 224 px; one ``ml.m5.large`` instance = every core here),
all measured in this run on the same JPEG (500×375):

* **raw**: the instance's own work in this process (``build_server(...).run``: decode, preprocess,
  the runtime, JSON; dynamic batching included) driven by ``--clients`` threads: no HTTP, no gateway;
  measured for each exact runtime (ONNX Runtime fp32, OpenVINO f32), and the faster is **raw fastest**;
* **full path**: ``--clients`` boto3 clients → signed HTTP → gateway (SigV4, parsing, IAM) → router →
  keep-alive HTTP → instance, at saturation, with the model's ``KENNEL_RUNTIME`` unset by default (the
  instance measures and picks its runtime at load; the table shows what it picked, from its log);
  **full/raw** = full / raw fastest (target ≥ 0.9);
* **overhead p50**: one request at a time, client-observed p50 minus the in-process p50 of the same
  request (the two alternate request by request), and the p50 of a trivial scripted model through
  the full path (everything but a model);
* **bf16 / int8**: in process (the same gate) and the full path again with ``KENNEL_PRECISION=bf16``
  and ``=int8`` (``--precisions``), with what the instance's precision gate decided and its figures
  (top-1 agreement and accuracy on the artifact's validation sample). The random-weight model's
  sample is 48 synthetic images labelled with its own fp32 predictions (so accuracy drop =
  disagreement); ``--artifact`` benchmarks a trained model.tar.gz (the demo's, say) with the sample
  its training stored;
* **seeds' way**: eager PyTorch as the seed notebooks serve it (PIL + torchvision transforms, NCHW
  fp32, one request at a time, in process, no HTTP at all); **raw × seeds** and **full × seeds** are
  the raw fastest and full-path throughputs over that.

Clients, gateway and instance share this machine's cores, as they would on a developer's laptop.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from rich.table import Table

from endpoint_support import Cloud, echo_artifact
from kennel.ml import calibration
from kennel.ml.artifact import ArtifactMeta, package_model, unpack_artifact, write_model_dir
from kennel.ml.models import ModelConfig, build_model
from kennel.ml.runtimes import EXACT_RUNTIMES, runtime_available
from kennel.ml.transforms import Preprocess, normalize
from kennel.runtime.endpoints.server import build_server


def photo(width: int = 500, height: int = 375) -> bytes:
    """A JPEG about the size and entropy of a dog photo (smooth gradients plus texture)."""
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:height, 0:width]
    base = np.stack([x * 255 / width, y * 255 / height, (x + y) * 127 / (width + height)], axis=-1)
    pixels = np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def saturate(call, clients: int, seconds: float) -> float:
    """Requests per second with ``clients`` threads calling ``call(i)`` back to back."""
    done = [0] * clients
    stop = threading.Event()
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        while not stop.is_set():
            try:
                call(i)
            except BaseException as exc:  # a failed request must show, not vanish in a thread
                errors.append(exc)
                return
            done[i] += 1

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"{len(errors)} requests failed; first: {errors[0]!r}")
    return sum(done) / (time.perf_counter() - started)


def sequential(call, count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        call(0)
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def make_artifact(root: Path, backbone: str) -> Path:
    torch.manual_seed(0)
    cfg = ModelConfig(backbone=backbone, num_classes=133, head_hidden=(128,))
    labels = [f"Breed {i}" for i in range(133)]
    meta = ArtifactMeta(model=cfg, preprocess=Preprocess(image_size=224), classes=labels, labels=labels)
    model = build_model(cfg).eval()
    model_dir = write_model_dir(root / backbone, model, meta)
    gen = torch.Generator().manual_seed(3)
    pixels = torch.randint(0, 256, (48, 3, 224, 224), generator=gen, dtype=torch.uint8)
    with torch.inference_mode():
        targets = model(normalize(pixels, meta.preprocess)).argmax(1).numpy()
    calibration.write(model_dir, pixels.numpy(), targets)
    return model_dir


class SeedsWay:
    """Serving like the seeds' inference.py: eager PyTorch, NCHW fp32, PIL transforms, one at a time."""

    def __init__(self, model_dir: Path, body: bytes) -> None:
        import torchvision.transforms as transforms

        from kennel.ml.artifact import load_model_dir

        self.model = load_model_dir(model_dir)[0].eval()
        self.body = body
        self.transform = transforms.Compose(
            [
                transforms.Resize((224, 224)),
                transforms.ToTensor(),
                transforms.Normalize(mean=[0.485, 0.456, 0.406], std=[0.229, 0.224, 0.225]),
            ]
        )

    def one(self, _: int) -> None:
        image = Image.open(io.BytesIO(self.body))
        with torch.no_grad():
            logits = self.model(self.transform(image.convert("RGB")).unsqueeze(0))
        json.dumps(logits.numpy().tolist())

    def measure(self, clients: int, seconds: float) -> dict:
        sequential(self.one, 2)
        p50 = statistics.median(sequential(self.one, 5))
        return {"rps": saturate(self.one, 1, seconds), "p50_ms": p50}


class InProcess:
    """The instance's own work (``build_server(...).run``), called directly: no HTTP, no gateway."""

    def __init__(self, model_dir: Path, runtime: str, body: bytes, precision: str = "") -> None:
        # The handler's model_fn reads these from the process environment, as an instance does.
        wanted = {"KENNEL_RUNTIME": runtime, "KENNEL_PRECISION": precision}
        previous = {name: os.environ.get(name) for name in wanted}
        os.environ.update({name: value for name, value in wanted.items() if value})
        try:
            self.app = build_server(model_dir, dict(os.environ))
        finally:
            for name, value in previous.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value
        self.body = body

    def one(self, _: int) -> None:
        status, *_ = self.app.run(self.body, {"content-type": "image/jpeg"})
        assert status == 200

    def measure(self, clients: int, seconds: float) -> dict:
        sequential(self.one, 3)
        p50 = statistics.median(sequential(self.one, 15))
        return {"rps": saturate(self.one, clients, seconds), "p50_ms": p50}

    def close(self) -> None:
        if self.app.batcher is not None:
            self.app.batcher.close()
        self.app.executor.shutdown()


class FullPath:
    """boto3 clients → gateway → router → instance."""

    def __init__(self, cloud: Cloud, name: str, body: bytes, content_type: str, clients: int) -> None:
        self.name, self.body, self.content_type = name, body, content_type
        self.runtimes = [cloud.client("sagemaker-runtime") for _ in range(clients)]

    def one(self, i: int) -> None:
        reply = self.runtimes[i].invoke_endpoint(
            EndpointName=self.name, Body=self.body, ContentType=self.content_type
        )
        reply["Body"].read()

    def measure(self, clients: int, seconds: float) -> dict:
        sequential(self.one, 5)
        p50 = statistics.median(sequential(self.one, 30))
        return {"rps": saturate(self.one, clients, seconds) if seconds > 0 else 0.0, "p50_ms": p50}


def interleaved_p50(full: FullPath, raw: InProcess, pairs: int) -> tuple[float, float]:
    """p50 latency of one request at a time through the full path and in process, alternating request by
    request so that load from elsewhere on the machine lands on both alike."""
    through, local = [], []
    for _ in range(pairs):
        through.extend(sequential(full.one, 1))
        local.extend(sequential(raw.one, 1))
    return statistics.median(through), statistics.median(local)


def best(runs: list[dict]) -> dict:
    """Other work on a shared machine only ever slows a run down: the best run is the least disturbed."""
    return {"rps": max(r["rps"] for r in runs), "p50_ms": min(r["p50_ms"] for r in runs)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--models", default="resnet18,resnet50")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of each saturation run")
    parser.add_argument("--clients", type=int, default=4, help="concurrent callers at saturation")
    parser.add_argument(
        "--runtime",
        default="default",
        help="KENNEL_RUNTIME for the endpoint ('default': none, the measured choice)",
    )
    parser.add_argument("--rounds", type=int, default=2, help="interleaved repetitions; the best counts")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--env", action="append", default=[], help="NAME=VALUE for the endpoint's model")
    parser.add_argument("--precisions", default="bf16,int8", help="KENNEL_PRECISION values to add ('' none)")
    parser.add_argument("--artifact", type=Path, default=None, help="a trained model.tar.gz instead")
    args = parser.parse_args(argv)
    extra_env = dict(item.split("=", 1) for item in args.env)
    console = Console(width=170)
    body = photo()
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="kennel-bench-") as tmp:
        root = Path(tmp)
        cloud = Cloud(root)
        try:
            cloud.deploy("echo", echo_artifact(root), {})
            echo = best(
                [FullPath(cloud, "echo", b"{}", "application/json", 1).measure(1, 0) for _ in range(2)]
            )
            console.print(f"trivial model through the full path: p50 {echo['p50_ms']:.2f} ms")
            models = [m.strip() for m in args.models.split(",") if m.strip()]
            for backbone in ["artifact"] if args.artifact else models:
                if args.artifact:
                    model_dir = unpack_artifact(args.artifact, root / "artifact")
                else:
                    model_dir = make_artifact(root, backbone)
                # Packaged before the raw runs export model.onnx into the directory: the endpoint makes
                # its own.
                tarball = package_model(model_dir, root / f"{backbone}.tar.gz")
                seeds = SeedsWay(model_dir, body)
                raws = {rt: InProcess(model_dir, rt, body) for rt in EXACT_RUNTIMES if runtime_available(rt)}
                env = {} if args.runtime == "default" else {"KENNEL_RUNTIME": args.runtime}
                cloud.deploy(backbone, tarball, {**env, **extra_env})
                served = cloud.served_runtime(backbone)
                full = FullPath(cloud, backbone, body, "image/jpeg", args.clients)
                reduced: dict[str, FullPath] = {}
                reduced_raw: dict[str, InProcess] = {}
                gates: dict[str, str] = {}
                for precision in [p.strip() for p in args.precisions.split(",") if p.strip()]:
                    name = f"{backbone}-{precision}"
                    cloud.deploy(name, tarball, {**env, **extra_env, "KENNEL_PRECISION": precision})
                    gates[precision] = cloud.gate(name)
                    reduced[precision] = FullPath(cloud, name, body, "image/jpeg", args.clients)
                    # In process with the same gate: full/raw for each precision, as for the exact path.
                    reduced_raw[precision] = InProcess(model_dir, "auto", body, precision)
                runs: dict[str, list[dict]] = {"seeds": [], "full": [], **{f"raw {rt}": [] for rt in raws}}
                runs.update({f"full {p}": [] for p in reduced})
                runs.update({f"in-process {p}": [] for p in reduced})
                for _ in range(args.rounds):  # interleaved, so a burst of other load hits all alike
                    runs["seeds"].append(seeds.measure(1, args.seconds))
                    for rt, raw in raws.items():
                        runs[f"raw {rt}"].append(raw.measure(args.clients, args.seconds))
                    runs["full"].append(full.measure(args.clients, args.seconds))
                    for precision, path in reduced.items():
                        runs[f"in-process {precision}"].append(
                            reduced_raw[precision].measure(args.clients, args.seconds)
                        )
                        runs[f"full {precision}"].append(path.measure(args.clients, args.seconds))
                result = {key: best(value) for key, value in runs.items()}
                fastest = max(raws, key=lambda rt: result[f"raw {rt}"]["rps"])
                result["raw"] = dict(result[f"raw {fastest}"])
                full_p50, raw_p50 = interleaved_p50(full, raws[fastest], 30)
                for raw in [*raws.values(), *reduced_raw.values()]:
                    raw.close()
                result["full"]["p50_ms"], result["raw"]["p50_ms"] = full_p50, raw_p50
                result.update(
                    echo_p50_ms=echo["p50_ms"], fastest=fastest, served=served, runs=runs, gates=gates
                )
                results[backbone] = result
                console.print(f"{backbone}: {json.dumps(runs)}")
                for name in [backbone, *(f"{backbone}-{p}" for p in reduced)]:
                    cloud.client("sagemaker").delete_endpoint(EndpointName=name)
        finally:
            cloud.close()
    table = Table(
        title=f"Endpoint throughput and overhead (KENNEL_RUNTIME {args.runtime}, {args.clients} clients, "
        f"{torch.get_num_threads()} threads)"
    )
    for column in (
        "model",
        "endpoint runtime",
        "seeds req/s",
        "raw fastest",
        "raw req/s",
        "full req/s",
        "full/raw",
        "raw × seeds",
        "full × seeds",
        "raw p50 ms",
        "full p50 ms",
        "overhead p50 ms",
        "trivial-model p50 ms",
    ):
        table.add_column(column, justify="right")
    for backbone, r in results.items():
        raw, full, seeds = r["raw"], r["full"], r["seeds"]
        others = ", ".join(f"{k[4:]} {v['rps']:.1f}" for k, v in r.items() if k.startswith("raw "))
        table.add_row(
            backbone,
            r["served"],
            f"{seeds['rps']:.1f}",
            r["fastest"],
            f"{raw['rps']:.1f} ({others})",
            f"{full['rps']:.1f}",
            f"{full['rps'] / raw['rps']:.2f}",
            f"{raw['rps'] / seeds['rps']:.2f}",
            f"{full['rps'] / seeds['rps']:.2f}",
            f"{raw['p50_ms']:.1f}",
            f"{full['p50_ms']:.1f}",
            f"{full['p50_ms'] - raw['p50_ms']:.2f}",
            f"{r['echo_p50_ms']:.2f}",
        )
    console.print(table)
    for backbone, r in results.items():
        for precision, verdict in r["gates"].items():
            rps = r[f"full {precision}"]["rps"]
            local = r[f"in-process {precision}"]["rps"]
            console.print(
                f"{backbone} KENNEL_PRECISION={precision}: full path {rps:.1f} req/s = "
                f"{rps / r['seeds']['rps']:.2f}× seeds, {rps / r['full']['rps']:.2f}× the exact default, "
                f"{rps / local:.2f}× in process ({local:.1f} req/s = "
                f"{local / r['seeds']['rps']:.2f}× seeds); "
                f"gate {verdict}",
                highlight=False,
            )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
