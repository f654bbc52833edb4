"""SandboxSpec → bubblewrap argv, the environment allow-list and limits, without starting anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from kennel.runtime.sandbox.spec import (
    MB,
    Layout,
    Limits,
    Mount,
    SandboxSpec,
    base_environment,
    bwrap_argv,
    data_limit_bytes,
    hosts_file,
    limit_argv,
)

LAYOUT = Layout(
    hidden=("/srv/state", "/root", "/home"),
    shown=("/root/.pyenv/versions/3.11.7",),
    devices=("/dev/nvidia0",),
    blanked=("/etc/shadow",),
    bwrap="/usr/bin/bwrap",
)


def _pairs(argv: list[str], option: str) -> list[str]:
    return [argv[i + 1] for i, arg in enumerate(argv) if arg == option]


def _index(argv: list[str], *items: str) -> int:
    for i in range(len(argv) - len(items) + 1):
        if tuple(argv[i : i + len(items)]) == items:
            return i
    raise AssertionError(f"{items} not in {argv}")


def spec(**kw) -> SandboxSpec:
    kw.setdefault("argv", ["python", "-m", "x"])
    kw.setdefault("env", {})
    kw.setdefault("cwd", "/")
    return SandboxSpec(**kw)


def test_system_read_only_private_dirs_hidden_python_shown(tmp_path: Path) -> None:
    argv = bwrap_argv(spec(), LAYOUT)
    assert argv[:4] == ["/usr/bin/bwrap", "--ro-bind", "/", "/"]
    assert {"/tmp", "/run", "/opt", "/srv/state", "/root", "/home"} <= set(_pairs(argv, "--tmpfs"))
    # Hidden first, then the interpreter bound back on top of the tmpfs that hid it.
    assert _index(argv, "--tmpfs", "/root") < _index(argv, "--ro-bind", LAYOUT.shown[0], LAYOUT.shown[0])
    assert _index(argv, "--ro-bind", "/dev/null", "/etc/shadow")
    assert _index(argv, "--dev-bind", "/dev/nvidia0", "/dev/nvidia0")
    for flag in ("--unshare-pid", "--unshare-ipc", "--die-with-parent", "--new-session"):
        assert flag in argv
    assert _index(argv, "--cap-drop", "ALL")
    assert argv[-4:] == ["--", "python", "-m", "x"]


def test_mounts_after_hiding_parents_first(tmp_path: Path) -> None:
    model, code = tmp_path / "model", tmp_path / "code"
    model.mkdir()
    code.mkdir()
    mounts = [Mount(model, "/opt/ml/model/sub", writable=True), Mount(code, "/opt/ml")]
    argv = bwrap_argv(spec(mounts=mounts, cwd="/opt/ml"), LAYOUT)
    outer = _index(argv, "--ro-bind", str(code), "/opt/ml")
    inner = _index(argv, "--bind", str(model), "/opt/ml/model/sub")
    assert _index(argv, "--tmpfs", "/opt") < _index(argv, "--tmpfs", "/srv/state") < outer < inner
    assert _pairs(argv, "--chdir") == ["/opt/ml"]


def test_tmp_size_hosts_and_hostname() -> None:
    argv = bwrap_argv(spec(limits=Limits(tmp_mb=64), hostname="algo-1"), LAYOUT, hosts_fd=9)
    assert _index(argv, "--size", str(64 * MB), "--tmpfs", "/tmp")
    assert _index(argv, "--ro-bind-data", "9", "/etc/hosts")
    assert _pairs(argv, "--hostname") == ["algo-1"]
    assert hosts_file({"algo-1": "127.0.0.1"}).decode().splitlines()[-1] == "127.0.0.1 algo-1"


@pytest.mark.parametrize(
    "bad",
    [
        {"argv": []},
        {"cwd": "relative"},
        {"mounts": [Mount(Path("/"), "relative/target")]},
        {"mounts": [Mount(Path("/"), "/a/../etc")]},
        {"mounts": [Mount(Path("/does/not/exist"), "/x")]},
        {"hosts": {"bad name": "127.0.0.1"}},
    ],
)
def test_bad_specs_are_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        bwrap_argv(spec(**bad), LAYOUT)


def test_environment_is_an_allow_list() -> None:
    env = base_environment({"MINE": "1", "HOME": "/opt/ml"}, ["/venv/bin"])
    assert env["PATH"] == "/venv/bin:/usr/local/bin:/usr/bin:/bin"
    assert env["HOME"] == "/opt/ml" and env["TMPDIR"] == "/tmp" and env["MINE"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert set(env) == {"PATH", "LANG", "LC_ALL", "HOME", "TMPDIR", "TZ", "PYTHONUNBUFFERED",
                        "PYTHONDONTWRITEBYTECODE", "MINE"}  # fmt: skip


def test_limits_become_prlimit_options_unless_a_cgroup_enforces_them() -> None:
    limits = Limits(memory_mb=256, cpu_seconds=30, max_processes=64, max_file_mb=10)
    assert limit_argv(limits, memory_by_cgroup=True, processes_by_cgroup=True) == [
        "prlimit", "--cpu=30", f"--fsize={10 * MB}", "--",
    ]  # fmt: skip
    fallback = limit_argv(limits, memory_by_cgroup=False, processes_by_cgroup=False)
    assert "--nproc=64" in fallback and f"--data={data_limit_bytes(256)}" in fallback
    assert data_limit_bytes(256) > 256 * MB  # headroom: RLIMIT_DATA counts more than the resident set
    assert limit_argv(Limits(), memory_by_cgroup=False, processes_by_cgroup=False) == []


def test_layout_hides_state_and_home_and_shows_python_under_them(tmp_path: Path, monkeypatch) -> None:
    home = tmp_path / "home"
    python = home / ".pyenv" / "versions" / "3.11"
    python.mkdir(parents=True)
    state = tmp_path / "state"
    state.mkdir()
    monkeypatch.setenv("HOME", str(home))
    layout = Layout.detect(state, [str(python), "/usr/lib/python3"], "/usr/bin/bwrap")
    assert str(state) in layout.hidden and str(home) in layout.hidden
    assert layout.shown == (str(python),)  # /usr/lib is not hidden: nothing to show again
