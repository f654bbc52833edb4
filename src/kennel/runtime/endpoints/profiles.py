"""SageMaker instance types → what a local model-server process gets (CPU threads, a GPU or not).

An ``ml.m5.xlarge`` has 4 vCPUs on AWS; here it gets 4 intra-op threads, capped at its share of the
cores this machine really has: instances running at once split the cores between them instead of each
asking for all of them (``instance_threads``). Measured on 2 cores (``benchmarks/instance_threads.py``):
two instances with one thread each served 1.10× (ResNet-50 at 224 px) and 1.33× (MobileNetV3 at 96 px)
what two instances with two threads each did, because oversubscribed thread pools stall each other.
Accelerated families (``ml.g*``, ``ml.p*``) get one GPU when the machine has
one, round-robin over the GPUs present, and fall back to CPU with a note in the instance's log
otherwise, so a notebook written for a GPU endpoint still deploys on a laptop.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_SIZE_VCPUS = {"medium": 2, "large": 2, "xlarge": 4}
_MULTI = re.compile(r"^(\d+)xlarge$")
_GPU_FAMILIES = ("p", "g")


@dataclass(frozen=True)
class ResourceProfile:
    instance_type: str
    vcpus: int  # what AWS gives this type
    threads: int  # what this machine can actually give it
    wants_gpu: bool

    def child_environment(self, gpu_index: int | None) -> dict[str, str]:
        """Variables that pin the instance's thread pools and GPU visibility before torch starts."""
        env = {
            "OMP_NUM_THREADS": str(self.threads),
            "MKL_NUM_THREADS": str(self.threads),
            "SM_NUM_CPUS": str(self.threads),
            "SM_NUM_GPUS": "1" if gpu_index is not None else "0",
        }
        # An empty CUDA_VISIBLE_DEVICES keeps a CPU instance from touching (and reserving memory on) a GPU.
        env["CUDA_VISIBLE_DEVICES"] = "" if gpu_index is None else str(gpu_index)
        return env


def machine_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def vcpus_of(instance_type: str) -> int:
    """vCPUs AWS gives ``instance_type`` (``ml.c5.2xlarge`` → 8); unknown sizes count as 2."""
    size = instance_type.rsplit(".", 1)[-1]
    if size in _SIZE_VCPUS:
        return _SIZE_VCPUS[size]
    match = _MULTI.match(size)
    if match:
        return 4 * int(match.group(1))
    return 2


def instance_threads(vcpus: int, cores: int, sharing: int) -> int:
    """Intra-op threads for one instance: its type's vCPUs, but no more than its share of this machine's
    ``cores`` when ``sharing`` instances (this one included) run at once; always at least one."""
    return max(1, min(vcpus, cores // max(1, sharing)))


def profile_for(instance_type: str, *, cores: int | None = None, sharing: int = 1) -> ResourceProfile:
    parts = instance_type.split(".")
    family = parts[1] if len(parts) >= 3 else ""
    vcpus = vcpus_of(instance_type)
    threads = instance_threads(vcpus, cores if cores is not None else machine_cores(), sharing)
    return ResourceProfile(instance_type, vcpus, threads, wants_gpu=family[:1] in _GPU_FAMILIES)


def gpu_count() -> int:
    """GPUs visible to this process, found without initialising CUDA in the gateway."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip():
        return 0
    try:
        found = sorted(name for name in os.listdir("/dev") if re.fullmatch(r"nvidia\d+", name))
    except OSError:
        return 0
    if visible is not None:
        return min(len(found), len([v for v in visible.split(",") if v.strip()]))
    return len(found)
