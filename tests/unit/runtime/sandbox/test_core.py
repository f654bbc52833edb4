"""Choosing the sandbox (KENNEL_SANDBOX) and the unconfined mode's contract."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kennel.runtime.sandbox import UNCONFINED_NOTE, Mount, Sandbox, SandboxSpec, SandboxUnavailable, core


def test_off_is_an_explicit_choice_and_says_so(tmp_path: Path, caplog) -> None:
    with caplog.at_level("WARNING"):
        box = Sandbox.from_environment(gateway_port=1, state_dir=tmp_path, env={"KENNEL_SANDBOX": "off"})
    try:
        assert not box.confined and box.note == UNCONFINED_NOTE
        assert UNCONFINED_NOTE in caplog.text
        code = tmp_path / "code"
        code.mkdir()
        spec = SandboxSpec(
            argv=[sys.executable, "-c", "import os; print(os.getcwd(), os.environ.get('SECRETISH'))"],
            env={},
            cwd="/opt/ml/code",
            mounts=[Mount(code, "/opt/ml/code")],
        )
        proc = box.spawn(spec, stdout=subprocess.PIPE)
        out, _ = proc.communicate(timeout=30)
        # Unconfined, a cwd inside a mount target is read at its source; the environment is still the
        # allow-list.
        assert out.decode().split() == [str(code), "None"]
    finally:
        box.close()


def test_unknown_values_and_missing_bwrap_are_refused(tmp_path: Path, monkeypatch) -> None:
    with pytest.raises(SandboxUnavailable, match="'maybe'"):
        Sandbox.from_environment(gateway_port=1, state_dir=tmp_path, env={"KENNEL_SANDBOX": "maybe"})
    monkeypatch.setattr(core, "probe", lambda: "bwrap (bubblewrap) is not installed")
    with pytest.raises(SandboxUnavailable, match="KENNEL_SANDBOX=off"):
        Sandbox.from_environment(gateway_port=1, state_dir=tmp_path, env={})


def test_exit_status_reads_bwraps_signal_convention() -> None:
    proc = core.SandboxProcess.__new__(core.SandboxProcess)  # no process: only the arithmetic
    proc._child_created = False
    proc.confined = True
    for code, expected in ((0, 0), (3, 3), (137, -9), (143, -15)):
        proc.returncode = code
        assert proc.exit_status == expected
    proc.confined = False
    proc.returncode = 137
    assert proc.exit_status == 137


def test_gateway_socket_stays_short(tmp_path: Path) -> None:
    assert core.gateway_socket(tmp_path) == tmp_path / "gateway.sock"
    deep = tmp_path / ("d" * 120)
    assert len(str(core.gateway_socket(deep))) < 108
