"""Memory and process-count limits as cgroups, where this machine lets Kennel make them.

Why a cgroup: ``RLIMIT_AS`` counts address space, and torch or a threaded Python reserve far more of it
than they use, so a 512 MB limit would fail imports that need 150 MB. A cgroup's memory limit counts
what is really resident (page cache of the process's own files included), and the kernel's OOM killer
ends the sandbox when it goes over, which the owner reads back as ``out_of_memory``. ``RLIMIT_NPROC``
is not enforced for root at all, so a process limit needs the ``pids`` controller too.

cgroup v2 is used when the gateway's own cgroup already delegates ``memory`` to its children; otherwise
the v1 ``memory`` and ``pids`` hierarchies (as on this project's CI machines). Each sandbox gets
``<our cgroup>/kennel-<gateway pid>/<n>``, removed once its process is gone. Where neither works,
``spec.limit_argv`` falls back to ``RLIMIT_DATA`` with headroom (documented there).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from kennel.runtime.sandbox.spec import MB, Limits

OOM_COUNTER_GRACE_S = 0.5


@dataclass
class Group:
    """One sandbox's cgroups: the ``cgroup.procs`` files its first process writes itself into."""

    dirs: list[Path]
    memory_dir: Path | None
    v2: bool
    removed_oom: bool | None = None  # what out_of_memory() said just before the group was removed
    removed_hit_limit: bool | None = None  # the same for hit_limit()

    @property
    def procs(self) -> list[str]:
        return [str(d / "cgroup.procs") for d in self.dirs]

    def out_of_memory(self) -> bool:
        """Whether the kernel killed something here for exceeding the memory limit."""
        if self.removed_oom is not None:
            return self.removed_oom
        if self.memory_dir is None:
            return False
        name = "memory.events" if self.v2 else "memory.oom_control"
        try:
            counted = False
            for line in (self.memory_dir / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    counted = True
                    if int(value) > 0:
                        return True
            if not self.v2 and not counted:
                return int((self.memory_dir / "memory.failcnt").read_text()) > 0 and _dead_by_oom(self)
        except (OSError, ValueError):
            return False
        return False

    def hit_limit(self) -> bool:
        """Whether usage ever reached the memory limit (v1 ``failcnt``, v2 ``max`` events). With a
        SIGKILL that nobody in Kennel sent, the sign of an OOM kill on kernels whose ``oom_kill``
        counter is missing or, in a nested hierarchy, counted elsewhere (seen on a CI machine)."""
        if self.removed_hit_limit is not None:
            return self.removed_hit_limit
        if self.memory_dir is None:
            return False
        names = ("memory.failcnt", "memory.max_usage_in_bytes", "memory.limit_in_bytes")
        if self.v2:
            names = ("memory.events", "memory.peak", "memory.max")
        events, peak, limit = (_read(self.memory_dir / n) for n in names)
        if not self.v2 and events.strip().isdigit() and int(events) > 0:
            return True
        for line in events.splitlines() if self.v2 else ():
            key, _, value = line.partition(" ")
            if key in ("max", "oom") and value.strip().isdigit() and int(value) > 0:
                return True
        # The peak within a page-cache's breadth of the limit counts as reaching it.
        return peak.strip().isdigit() and limit.strip().isdigit() and int(peak) >= 0.95 * int(limit)

    def settled_out_of_memory(self) -> bool:
        """``out_of_memory()``, waiting up to OOM_COUNTER_GRACE_S for the kernel's ``oom_kill`` counter
        where the group reached its limit: the counter was seen to lag the death it explains."""
        deadline = time.monotonic() + OOM_COUNTER_GRACE_S
        oom = self.out_of_memory()
        while not oom and time.monotonic() < deadline and self.hit_limit():
            time.sleep(0.01)
            oom = self.out_of_memory()
        return oom

    def remove(self) -> None:
        self.removed_oom = self.settled_out_of_memory()  # the owner may ask after the process was reaped
        self.removed_hit_limit = self.hit_limit()
        # Anything still in the group outlived its sandbox (a PID 1 orphaned during bwrap's setup
        # escapes --die-with-parent): it goes now. The last processes may also still be leaving the
        # group a moment after their parent was reaped.
        for procs in self.procs:
            with contextlib.suppress(OSError, ValueError):
                for pid in Path(procs).read_text().split():
                    with contextlib.suppress(OSError):
                        os.kill(int(pid), signal.SIGKILL)
        for directory in self.dirs:
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _dead_by_oom(group: Group) -> bool:
    # Old v1 kernels have no oom_kill counter; a hit limit with the group now empty is the best sign.
    return not any(Path(p).read_text().strip() for p in group.procs if Path(p).exists())


class Cgroups:
    """Finds the hierarchies once; ``create`` makes one sandbox's groups (None: nothing to enforce)."""

    def __init__(self) -> None:
        self._counter = itertools.count(1)
        self.v2 = False
        self.memory_base: Path | None = None
        self.pids_base: Path | None = None
        with contextlib.suppress(OSError):
            self._detect()

    @property
    def memory(self) -> bool:
        return self.memory_base is not None

    @property
    def pids(self) -> bool:
        return self.pids_base is not None

    def describe(self) -> str:
        if self.memory_base is None:
            return "memory limit: RLIMIT_DATA with headroom (no writable memory cgroup)"
        kind = "cgroup v2" if self.v2 else "cgroup v1"
        return f"memory limit: {kind} under {self.memory_base}"

    def _detect(self) -> None:
        mounts: dict[str, Path] = {}
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            left, _, right = line.partition(" - ")
            fstype, _, options = [*right.split(), "", "", ""][:3]
            point = Path(left.split()[4])
            if fstype == "cgroup2":
                mounts.setdefault("", point)
            elif fstype == "cgroup":
                for option in options.split(","):
                    if option in ("memory", "pids"):
                        mounts[option] = point
        own: dict[str, str] = {}
        for line in Path("/proc/self/cgroup").read_text().splitlines():
            _, controllers, path = line.split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                own[controller] = path
        tag = f"kennel-{os.getpid()}"
        if "" in mounts and "" in own:
            base = mounts[""] / own[""].lstrip("/")
            delegated = (base / "cgroup.subtree_control").read_text().split()
            if "memory" in delegated and _makeable(base / tag, v2=True):
                self.v2 = True
                self.memory_base = base / tag
                self.pids_base = base / tag if "pids" in delegated else None
                return
        for controller in ("memory", "pids"):
            if controller in mounts and controller in own:
                base = mounts[controller] / own[controller].lstrip("/")
                if _makeable(base / tag, v2=False):
                    setattr(self, f"{controller}_base", base / tag)

    def create(self, limits: Limits) -> Group | None:
        wants_memory = limits.memory_mb is not None and self.memory_base is not None
        wants_pids = limits.max_processes is not None and self.pids_base is not None
        if not (wants_memory or wants_pids):
            return None
        name = str(next(self._counter))
        dirs: list[Path] = []
        memory_dir = None
        if wants_memory:
            assert self.memory_base is not None and limits.memory_mb is not None
            memory_dir = self.memory_base / name
            memory_dir.mkdir()
            dirs.append(memory_dir)
            limit = str(limits.memory_mb * MB)
            if self.v2:
                (memory_dir / "memory.max").write_text(limit)
                with contextlib.suppress(OSError):
                    (memory_dir / "memory.swap.max").write_text("0")
            else:
                (memory_dir / "memory.limit_in_bytes").write_text(limit)
                with contextlib.suppress(OSError):  # only where swap accounting is on
                    (memory_dir / "memory.memsw.limit_in_bytes").write_text(limit)
        if wants_pids:
            assert self.pids_base is not None
            pids_dir = self.pids_base / name
            if pids_dir not in dirs:
                pids_dir.mkdir()
                dirs.append(pids_dir)
            (pids_dir / "pids.max").write_text(str(limits.max_processes))
        return Group(dirs, memory_dir, self.v2)

    def close(self) -> None:
        for base in {b for b in (self.memory_base, self.pids_base) if b is not None}:
            with contextlib.suppress(OSError):
                for child in base.iterdir():
                    if child.is_dir():
                        Group([child], None, self.v2).remove()
                base.rmdir()


def _makeable(path: Path, *, v2: bool) -> bool:
    try:
        path.mkdir(exist_ok=True)
        if v2:
            (path / "cgroup.subtree_control").write_text("+memory")
        return True
    except OSError:
        with contextlib.suppress(OSError):
            path.rmdir()
        return False
