"""Objects outlive the gateway, a crashed SeaweedFS is restarted on the next request, and `kennel down`
leaves no store process behind."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest
from tests.integration.conftest import start_gateway, stop_gateway

pytestmark = pytest.mark.timeout(300)


def weed_pid(state_dir: Path) -> int | None:
    pid_file = state_dir / "objects" / "weed.pid"
    return int(pid_file.read_text()) if pid_file.exists() else None


def running(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def test_objects_survive_restarts_and_a_store_crash(tmp_path: Path) -> None:
    state = tmp_path / "state"
    cloud = start_gateway(state)
    try:
        s3 = cloud.client("s3")
        s3.create_bucket(Bucket="survivor")
        s3.put_object(Bucket="survivor", Key="a.txt", Body=b"before restart")
        first = weed_pid(state)
        assert first is not None and running(first)
    finally:
        stop_gateway(cloud)
    deadline = time.monotonic() + 10
    while running(first) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not running(first), "kennel down must stop SeaweedFS"

    cloud = start_gateway(state)
    try:
        s3 = cloud.client("s3")
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == ["survivor"]
        assert s3.get_object(Bucket="survivor", Key="a.txt")["Body"].read() == b"before restart"

        crashed = weed_pid(state)
        assert crashed is not None
        os.kill(crashed, signal.SIGKILL)
        while running(crashed):
            time.sleep(0.05)
        s3.put_object(Bucket="survivor", Key="b.txt", Body=b"after crash")
        assert weed_pid(state) not in (None, crashed)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket="survivor")["Contents"]]
        assert keys == ["a.txt", "b.txt"]
    finally:
        stop_gateway(cloud)
