"""A second `make demo` in the same workdir starts from a new local cloud, not the first run's state."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from kennel.cloud.server import RUNTIME_FILE
from kennel.demo.cloud import fresh_cloud


def test_nothing_to_remove_on_a_first_run(tmp_path: Path) -> None:
    assert fresh_cloud(tmp_path / "cloud") is False


def test_a_previous_runs_state_and_gateway_are_gone(tmp_path: Path) -> None:
    state = tmp_path / "cloud"
    (state / "objects").mkdir(parents=True)
    (state / "kennel.db").write_text("the first run's jobs")
    # Stands in for a gateway the first run left behind: stopped by the PID its runtime file records.
    # (its command line names kennel, as the server's does: a recycled PID is never stopped)
    left = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "kennel-stand-in"])
    (state / RUNTIME_FILE).write_text(json.dumps({"pid": left.pid, "port": 1, "started": 0}))
    try:
        assert fresh_cloud(state) is True
        assert left.wait(timeout=15) is not None and not state.exists()
    finally:
        if left.poll() is None:
            left.kill()
