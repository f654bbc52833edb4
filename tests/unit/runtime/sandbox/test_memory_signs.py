"""How a sandbox's cgroup files are read back as "out of memory" and "reached its limit"."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest

from kennel.runtime.sandbox.core import SandboxProcess
from kennel.runtime.sandbox.limits import Group

MB = 1 << 20


def group_with(tmp_path: Path, files: dict[str, str], *, v2: bool) -> Group:
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    return Group([tmp_path], tmp_path, v2)


@pytest.mark.parametrize(
    ("v2", "files", "oom", "hit"),
    [
        (False, {"memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 1\n"}, True, False),
        (False, {"memory.oom_control": "oom_kill 0\n", "memory.failcnt": "7"}, False, True),
        (False, {"memory.failcnt": "0", "memory.max_usage_in_bytes": str(127 * MB),
                 "memory.limit_in_bytes": str(128 * MB)}, False, True),
        (False, {"memory.failcnt": "0", "memory.max_usage_in_bytes": str(20 * MB),
                 "memory.limit_in_bytes": str(128 * MB)}, False, False),
        (True, {"memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 2\n"}, True, False),
        (True, {"memory.events": "low 0\nhigh 0\nmax 12\noom 0\noom_kill 0\n"}, False, True),
        (True, {"memory.events": "max 0\noom 0\noom_kill 0\n", "memory.peak": str(10 * MB),
                "memory.max": "max"}, False, False),
        (True, {}, False, False),  # the group is already gone: nothing to claim
    ],
)  # fmt: skip
def test_signs_read_from_the_group(tmp_path: Path, v2: bool, files: dict, oom: bool, hit: bool) -> None:
    group = group_with(tmp_path, files, v2=v2)
    assert (group.out_of_memory(), group.hit_limit()) == (oom, hit)


def test_what_was_read_at_removal_is_kept(tmp_path: Path) -> None:
    group = group_with(tmp_path, {"memory.events": "max 3\noom_kill 1\n"}, v2=True)
    group.removed_oom, group.removed_hit_limit = group.out_of_memory(), group.hit_limit()
    (tmp_path / "memory.events").write_text("max 0\noom_kill 0\n")
    assert group.out_of_memory() and group.hit_limit()


def _counter_later(path: Path, text: str, after_s: float) -> threading.Timer:
    timer = threading.Timer(after_s, lambda: path.write_text(text))
    timer.start()
    return timer


def test_removal_waits_for_an_oom_counter_that_lags_the_limit(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    group = group_with(tmp_path, {"memory.events": "max 5\noom 1\noom_kill 0\n"}, v2=True)
    timer = _counter_later(events, "max 5\noom 1\noom_kill 1\n", 0.1)
    group.dirs = []  # nothing to rmdir in this test
    group.remove()
    timer.join()
    assert group.removed_oom is True and group.removed_hit_limit is True


def test_an_owner_kill_racing_the_oom_killer_still_reads_as_out_of_memory(tmp_path: Path) -> None:
    events = tmp_path / "memory.events"
    group = group_with(tmp_path, {"memory.events": "max 5\noom 1\noom_kill 0\n"}, v2=True)
    proc = SandboxProcess.__new__(SandboxProcess)  # the reading logic only, no process behind it
    proc.group, proc.returncode, proc.killed_by_owner = group, -signal.SIGKILL, True
    proc.confined = False
    timer = _counter_later(events, "max 5\noom 1\noom_kill 1\n", 0.1)
    assert proc.out_of_memory()
    timer.join()
    events.write_text("max 0\noom 0\noom_kill 0\n")  # a timeout kill far from the limit: not OOM
    assert not proc.out_of_memory()
