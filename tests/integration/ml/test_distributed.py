"""Data-parallel training under torchrun: two processes on one host, and two "nodes" on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import free_port

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]


def _train_args(data: Path, out: Path) -> list[str]:
    return [
        "-m", "kennel.ml.train", "--data-dir", str(data), "--model-dir", str(out / "model"),
        "--output-dir", str(out / "output"), "--backbone", "resnet18", "--image-size", "40",
        "--freeze", "last-stage", "--epochs", "2", "--batch-size", "8", "--num-workers", "0",
        "--head-hidden", "16", "--quiet",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SM_", "RANK", "WORLD_SIZE", "MASTER_"))}
    env["OMP_NUM_THREADS"] = "1"
    env["GLOO_SOCKET_IFNAME"] = "lo"  # keep every collective on loopback
    return env


def _check_run(out: Path, world_size: int, stdout: str) -> None:
    summary = json.loads((out / "output" / "metrics.json").read_text())["summary"]
    assert summary["world_size"] == world_size
    assert summary["ranks_in_agreement"] is True
    assert (out / "model" / "model.pth").is_file()
    # Only rank 0 logs metric lines: one per epoch, not one per rank.
    assert stdout.count("Validation Loss:") == 2, stdout


def test_two_processes_one_host(synth_data: Path, tmp_path: Path) -> None:
    port = str(free_port())
    cmd = [*TORCHRUN, "--nproc-per-node", "2", "--master-addr", "127.0.0.1", "--master-port", port,
           "--no-python", sys.executable, *_train_args(synth_data, tmp_path)]  # fmt: skip
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    _check_run(tmp_path, 2, proc.stdout)


def test_two_nodes_on_loopback(synth_data: Path, tmp_path: Path) -> None:
    port = str(free_port())
    procs = []
    for node in (0, 1):
        # Each "node" has its own output folders, as separate hosts would; the data is shared.
        out = tmp_path / f"node{node}"
        cmd = [*TORCHRUN, "--nnodes", "2", "--node-rank", str(node), "--nproc-per-node", "1",
               "--master-addr", "127.0.0.1", "--master-port", port, "--no-python", sys.executable,
               *_train_args(synth_data, out)]  # fmt: skip
        procs.append(
            subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    outputs = []
    try:
        for proc in procs:
            stdout, stderr = proc.communicate(timeout=600)
            outputs.append((proc.returncode, stdout, stderr))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for code, _, stderr in outputs:
        assert code == 0, stderr[-3000:]
    _check_run(tmp_path / "node0", 2, outputs[0][1])
    assert not (tmp_path / "node1" / "model" / "model.pth").exists()  # rank 0 alone writes the model
