"""`kennel up/status/env/down` as a user runs them, and state surviving a restart."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import boto3

KENNEL = [sys.executable, "-m", "kennel.cli"]


def kennel(state_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "KENNEL_STATE_DIR": str(state_dir)}
    return subprocess.run([*KENNEL, *args], env=env, capture_output=True, text=True, timeout=120)


def _client(service: str, exports: dict[str, str]):
    return boto3.session.Session().client(
        service,
        endpoint_url=exports["AWS_ENDPOINT_URL"],
        region_name=exports["AWS_DEFAULT_REGION"],
        aws_access_key_id=exports["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=exports["AWS_SECRET_ACCESS_KEY"],
    )


def _exports(text: str) -> dict[str, str]:
    return dict(
        line.removeprefix("export ").split("=", 1) for line in text.splitlines() if line.startswith("export ")
    )


def test_up_env_down_up_keeps_state(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:
        started = kennel(state, "up", "--detach", "--port", "0")
        assert started.returncode == 0, started.stderr
        assert stat.S_IMODE(state.stat().st_mode) == 0o700
        assert stat.S_IMODE((state / "kennel.db").stat().st_mode) == 0o600
        again = kennel(state, "up", "--detach", "--port", "0")
        assert "already running" in again.stdout
        assert kennel(state, "status").returncode == 0
        exports = _exports(kennel(state, "env").stdout)
        assert exports["AWS_ACCESS_KEY_ID"].startswith("AKIA")
        _client("iam", exports).create_user(UserName="survivor")
        stopped = kennel(state, "down")
        assert "stopped pid" in stopped.stdout
        assert kennel(state, "status").returncode == 1
        assert kennel(state, "up", "--detach", "--port", "0").returncode == 0
        exports = _exports(kennel(state, "env").stdout)
        names = [u["UserName"] for u in _client("iam", exports).list_users()["Users"]]
        assert "survivor" in names and "admin" in names
    finally:
        kennel(state, "down")


def test_iam_audit_and_generated_policy(tmp_path: Path) -> None:
    state = tmp_path / "state"
    try:
        assert kennel(state, "up", "--detach", "--port", "0").returncode == 0
        exports = _exports(kennel(state, "env").stdout)
        iam = _client("iam", exports)
        iam.create_user(UserName="broad")
        iam.attach_user_policy(UserName="broad", PolicyArn="arn:aws:iam::aws:policy/AdministratorAccess")
        key = iam.create_access_key(UserName="broad")["AccessKey"]
        user = boto3.session.Session().client(
            "iam", endpoint_url=exports["AWS_ENDPOINT_URL"], region_name="us-east-1",
            aws_access_key_id=key["AccessKeyId"], aws_secret_access_key=key["SecretAccessKey"],
        )  # fmt: skip
        user.list_roles()
        user.get_user(UserName="broad")
        audit = kennel(state, "iam", "audit", "--json")
        assert audit.returncode == 0, audit.stderr
        import json

        findings = [f for f in json.loads(audit.stdout) if f["principal_arn"].endswith(":user/broad")]
        kinds = {f["kind"] for f in findings}
        assert {"full-access-policy", "broad-action"} <= kinds
        policy = json.loads(
            kennel(state, "iam", "generate-policy", "arn:aws:iam::000000000000:user/broad").stdout
        )
        actions = sorted(a for s in policy["Statement"] for a in s["Action"])
        assert actions == ["iam:GetUser", "iam:ListRoles"]
    finally:
        kennel(state, "down")


def test_foreground_up_stops_cleanly_on_sigint(tmp_path: Path) -> None:
    import signal
    import time

    from kennel.cloud import server

    state = tmp_path / "state"
    env = {**os.environ, "KENNEL_STATE_DIR": str(state)}
    proc = subprocess.Popen(
        [*KENNEL, "up", "--port", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 60
        while (running := server.read_running(state)) is None or not server.healthy(running.port):
            assert proc.poll() is None and time.monotonic() < deadline, (
                proc.stderr.read() if proc.stderr else ""
            )
            time.sleep(0.1)
        assert running.pid == proc.pid
        proc.send_signal(signal.SIGINT)
        # 130 = terminated by SIGINT after a clean shutdown (uvicorn re-raises the signal, as shells expect).
        assert proc.wait(timeout=30) in (0, 130)
        assert server.read_running(state) is None and not (state / server.RUNTIME_FILE).exists()
    finally:
        if proc.poll() is None:
            proc.kill()


_STARTER = """
import sys, time
from pathlib import Path
from kennel.cloud import server
from kennel.settings import Settings
running = server.start_detached(Settings(state_dir=Path(sys.argv[1]), port=0), follow_caller=True)
print(running.pid, flush=True)
time.sleep(600)
"""


def test_a_following_gateway_stops_when_its_starter_is_killed(tmp_path: Path) -> None:
    """Tests and benchmarks start gateways with ``follow_caller``: killing the starter (a pytest stopped
    with SIGKILL) must not leave the gateway, SeaweedFS and model servers running for ever."""
    import signal
    import time

    from kennel.cloud import server

    state = tmp_path / "state"
    starter = subprocess.Popen(
        [sys.executable, "-c", _STARTER, str(state)], stdout=subprocess.PIPE, text=True
    )
    gateway_pid = 0
    try:
        assert starter.stdout is not None
        gateway_pid = int(starter.stdout.readline())
        running = server.read_running(state)
        assert running is not None and running.pid == gateway_pid and server.healthy(running.port)
        os.kill(starter.pid, signal.SIGKILL)  # no clean-up code in the starter runs
        starter.wait(timeout=10)
        deadline = time.monotonic() + 30
        while server.read_running(state) is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        # Gone, and through its clean path: the runtime record is removed only by the gateway's own
        # shutdown code, after it has stopped what it started.
        assert server.read_running(state) is None
        assert not (state / server.RUNTIME_FILE).exists()
        assert "parent process" in (state / server.LOG_FILE).read_text()
    finally:
        if starter.poll() is None:
            starter.kill()
        if gateway_pid and server.read_running(state) is not None:
            server.stop_pid(gateway_pid)
