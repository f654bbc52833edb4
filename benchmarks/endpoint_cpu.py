"""Where the cores go when an endpoint is saturated: the full path against the same model in process.

    .venv/bin/python benchmarks/endpoint_cpu.py [--model resnet50] [--seconds 10] [--rounds 2]

The same artifact (random weights, 133 classes, 224 px) is served two ways, alternating round by round:
**in process** (``build_server(...).run`` from ``--clients`` threads, ONNX Runtime: the raw fastest
exact runtime on 2 cores) and the **full path** (``--clients`` boto3 clients → gateway → instance, the
runtime the instance picks). For each, the CPU seconds each process spent over the window (from
``/proc``: the client process, the gateway, the instance with anything else the gateway started) as
cores, and per request. This tells whether the full path loses throughput because the instance does
more work per request, or because the client and gateway take cores from it.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

from endpoint import FullPath, InProcess, make_artifact, photo, saturate
from endpoint_support import Cloud
from kennel.ml.artifact import package_model

_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system time of the process and of its children that it has waited for."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(value) for value in fields[11:15]) / _TICK


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError):
            continue
        children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def spent(groups: dict[str, list[int]]) -> dict[str, float]:
    totals = {}
    for name, pids in groups.items():
        total = 0.0
        for pid in pids:
            with contextlib.suppress(OSError):  # gone since the list was made
                total += cpu_seconds(pid)
        totals[name] = total
    return totals


def measured(call, clients: int, seconds: float, groups: dict[str, list[int]]) -> dict:
    before, started = spent(groups), time.perf_counter()
    rps = saturate(call, clients, seconds)
    after, elapsed = spent(groups), time.perf_counter() - started
    cores = {name: (after[name] - before[name]) / elapsed for name in groups}
    return {"rps": rps, "cores": cores}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--clients", type=int, default=4)
    args = parser.parse_args(argv)
    console = Console(width=130)
    body = photo()
    with tempfile.TemporaryDirectory(prefix="kennel-cpu-") as tmp:
        root = Path(tmp)
        model_dir = make_artifact(root, args.model)
        tarball = package_model(model_dir, root / f"{args.model}.tar.gz")
        raw = InProcess(model_dir, "onnxruntime", body)
        cloud = Cloud(root)
        try:
            cloud.deploy("cpu", tarball, {})
            full = FullPath(cloud, "cpu", body, "image/jpeg", args.clients)
            gateway = cloud.running.pid
            instance = descendants(gateway)
            me = {"client": [os.getpid()]}
            full_groups = {**me, "gateway": [gateway], "instance": instance}
            raw.measure(args.clients, 1.0)  # warm-up
            full.measure(args.clients, 1.0)
            runs: dict[str, list[dict]] = {"in process": [], "full path": []}
            for round_no in range(args.rounds):
                console.print(f"round {round_no + 1} of {args.rounds} ({args.seconds:g} s each) …")
                runs["in process"].append(measured(raw.one, args.clients, args.seconds, me))
                runs["full path"].append(measured(full.one, args.clients, args.seconds, full_groups))
        finally:
            raw.close()
            cloud.close()
    table = Table(title=f"{args.model}, {args.clients} clients, best of {args.rounds} interleaved rounds")
    for column in ("path", "req/s", "client cores", "gateway cores", "instance cores", "CPU ms / request"):
        table.add_column(column, justify="left" if column == "path" else "right")
    best = {name: max(found, key=lambda run: run["rps"]) for name, found in runs.items()}
    for name, run in best.items():
        cores = run["cores"]
        per_request = sum(cores.values()) / run["rps"] * 1000
        table.add_row(
            name, f"{run['rps']:.1f}", f"{cores.get('client', 0):.2f}", f"{cores.get('gateway', 0):.2f}",
            f"{cores.get('instance', 0):.2f}" if "instance" in cores else "(in the client)",
            f"{per_request:.1f}",
        )  # fmt: skip
    console.print(table)
    inside, through = best["in process"], best["full path"]
    model_cpu_raw = inside["cores"]["client"] / inside["rps"]
    model_cpu_full = through["cores"]["instance"] / through["rps"]
    path_cores = through["cores"]["client"] + through["cores"]["gateway"]
    console.print(
        f"full / in process: {through['rps'] / inside['rps']:.2f}× the throughput; the instance spends "
        f"{model_cpu_full / model_cpu_raw:.2f}× the in-process CPU per request; the client and gateway take "
        f"{path_cores:.2f} cores ({path_cores / through['rps'] * 1000:.1f} ms of CPU per request)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
