"""CPU and memory of a host's whole process tree, read from /proc (what the profiler report and the
CPUUtilization/MemoryUtilization metrics show). The sandbox's processes are ordinary processes to
the host's /proc, so the tree under the sandbox's first process is the host."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as fh:
                found += [int(x) for x in fh.read().split()]
        except OSError:
            continue
    return found


def tree(pid: int, limit: int = 4096) -> list[int]:
    pids, queue = [], [pid]
    while queue and len(pids) < limit:
        current = queue.pop()
        pids.append(current)
        queue += _children(current)
    return pids


def _cpu_and_rss(pid: int) -> tuple[float, int]:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0, 0
    # fields[11], [12] are utime and stime; [21] is rss in pages (after the command's closing paren).
    return (int(fields[11]) + int(fields[12])) / _TICKS, int(fields[21]) * _PAGE


def total_memory_bytes() -> int:
    return os.sysconf("SC_PHYS_PAGES") * _PAGE


@dataclass
class UsageSampler:
    """Utilisation samples of one host: CPU in percent of one core (as AWS reports per instance, 100 per
    vCPU), memory in percent of the machine."""

    pid: int
    samples: list[tuple[float, float, float]] = field(default_factory=list)  # (time, cpu %, memory %)
    _last: tuple[float, float] | None = None

    def sample(self, now: float | None = None) -> tuple[float, float] | None:
        now = time.time() if now is None else now
        cpu, rss = 0.0, 0
        for pid in tree(self.pid):
            used, resident = _cpu_and_rss(pid)
            cpu += used
            rss += resident
        last, self._last = self._last, (now, cpu)
        if last is None or now <= last[0]:
            return None
        cpu_percent = max(0.0, (cpu - last[1]) / (now - last[0]) * 100)
        memory_percent = rss / total_memory_bytes() * 100
        if len(self.samples) < 20_000:
            self.samples.append((now, cpu_percent, memory_percent))
        return cpu_percent, memory_percent
