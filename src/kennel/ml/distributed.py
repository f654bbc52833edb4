"""Process-group setup for data-parallel training under ``torchrun`` (gloo on CPU, NCCL on GPU)."""

from __future__ import annotations

import hashlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import NoReturn

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Placement:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(requested: str, local_rank: int) -> torch.device:
    if requested == "auto":
        return torch.device("cuda", local_rank) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(requested)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("--device cuda was asked for but no CUDA device is available")
        if device.index is None:
            device = torch.device("cuda", local_rank)
    return device


def init_placement(requested_device: str, env: Mapping[str, str] | None = None) -> Placement:
    """Join the process group that torchrun describes in the environment, or run alone."""
    env = os.environ if env is None else env
    world_size = int(env.get("WORLD_SIZE", "1"))
    rank = int(env.get("RANK", "0"))
    local_rank = int(env.get("LOCAL_RANK", "0"))
    device = resolve_device(requested_device, local_rank)
    if world_size > 1 and not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, timeout=timedelta(minutes=30))
    return Placement(rank, world_size, local_rank, device)


def shutdown(placement: Placement) -> None:
    if placement.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def leave(code: int) -> NoReturn:
    """End the process with ``code``. Under torchrun, without the interpreter's finalisation: torch
    2.14's gloo backend aborts there ("terminate called without an active exception", SIGABRT) in
    some runs on a loaded machine after a DDP job, which would fail a job whose outputs are written."""
    if "TORCHELASTIC_RUN_ID" not in os.environ:
        sys.exit(code)
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)


def barrier(placement: Placement) -> None:
    if placement.distributed:
        dist.barrier()


def all_reduce_sum(values: list[float], placement: Placement) -> list[float]:
    if not placement.distributed:
        return values
    tensor = torch.tensor(values, dtype=torch.float64, device=placement.device)
    dist.all_reduce(tensor)
    return tensor.tolist()


def all_gather_objects(obj, placement: Placement) -> list:
    if not placement.distributed:
        return [obj]
    out: list = [None] * placement.world_size
    dist.all_gather_object(out, obj)
    return out


def parameter_digest(module: torch.nn.Module) -> str:
    """A hash of every parameter's bytes: equal across ranks iff the replicas agree exactly."""
    digest = hashlib.sha256()
    for name, tensor in sorted(module.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def broadcast_buffers(module: torch.nn.Module, placement: Placement) -> None:
    """Make every rank use rank 0's BatchNorm statistics.

    DDP syncs buffers at the start of each forward, so after the last step of an epoch each rank
    holds stats from its own final batch; evaluation and the saved model must not depend on the rank.
    """
    if not placement.distributed:
        return
    for buffer in module.buffers():
        dist.broadcast(buffer.data, src=0)
