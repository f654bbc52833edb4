"""The aws CLI (v1, from PyPI, installed beside this Python) against a live gateway, configured only by
environment variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BESIDE = Path(sys.executable).with_name("aws")
AWS = [str(BESIDE)] if BESIDE.exists() else ["aws"]  # the command, for tests that run it themselves


def aws(cloud, *args: str, ok: bool = True) -> dict:
    """The CLI's JSON answer (``ok=False``: it must fail, and its stderr is returned)."""
    command = [str(BESIDE), *args, "--output", "json"]
    done = subprocess.run(command, env=cloud.cli_env(), capture_output=True, text=True, timeout=90)
    assert (done.returncode == 0) == ok, (args, done.stderr)
    return json.loads(done.stdout) if ok and done.stdout.strip() else {"stderr": done.stderr}
