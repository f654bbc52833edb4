"""A live gateway per test session: a real process on a random loopback port, driven by real clients."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from kennel.cloud import server
from kennel.cloud.cloudstate import admin_credentials
from kennel.settings import Settings

REGION = "us-east-1"


@dataclass
class LiveCloud:
    endpoint: str
    state_dir: Path
    access_key_id: str
    secret_access_key: str
    pid: int

    def client(
        self,
        service: str,
        *,
        key: str | None = None,
        secret: str | None = None,
        token: str | None = None,
        validate: bool = True,
    ):
        return boto3.session.Session().client(
            service,
            endpoint_url=self.endpoint,
            region_name=REGION,
            aws_access_key_id=key or self.access_key_id,
            aws_secret_access_key=secret or self.secret_access_key,
            aws_session_token=token,
            # validate=False lets invalid input reach the server, to test its own validation.
            config=Config(retries={"max_attempts": 1}, parameter_validation=validate),
        )

    def cli_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(
            AWS_ENDPOINT_URL=self.endpoint,
            AWS_DEFAULT_REGION=REGION,
            AWS_ACCESS_KEY_ID=self.access_key_id,
            AWS_SECRET_ACCESS_KEY=self.secret_access_key,
            AWS_CONFIG_FILE="/dev/null",
            AWS_SHARED_CREDENTIALS_FILE="/dev/null",
        )
        return env


@pytest.fixture(scope="session", autouse=True)
def _local_model_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Every test's tmp_path lives under pytest's base temporary directory: the one local model dir.

    Set in the environment (not a module global: test modules import this file under another name
    than pytest does), so every gateway a test starts, through start_gateway or `kennel up`, gets it."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KENNEL_ALLOW_LOCAL_MODEL_DATA", str(tmp_path_factory.getbasetemp()))
        yield


GATEWAY = [sys.executable, "-m", "kennel.cloud.server"]


def start_gateway(
    state_dir: Path, port: int | None = None, extra_env: dict[str, str] | None = None
) -> LiveCloud:
    port = port or server.free_port()
    log = (state_dir.parent / f"{state_dir.name}-gateway.log").open("ab")
    proc = subprocess.Popen(
        # --parent-pid: the gateway stops when this pytest process is gone, even when it is killed.
        [*GATEWAY, "--state-dir", str(state_dir), "--port", str(port), "--parent-pid", str(os.getpid())],
        stdout=log,
        stderr=log,
        start_new_session=True,
        env={
            **os.environ,
            "KENNEL_S3_EAGER": "0",  # SeaweedFS only in gateways whose tests use S3
            # Tests deploy models from their own temporary directories, and from nowhere else.
            "KENNEL_ALLOW_LOCAL_MODEL_DATA": os.environ.get(
                "KENNEL_ALLOW_LOCAL_MODEL_DATA", str(state_dir.parent)
            ),
            **(extra_env or {}),
        },
    )
    deadline = time.monotonic() + 60
    while not server.healthy(port, 0.5):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"gateway did not start; see {log.name}")
        time.sleep(0.1)
    creds = admin_credentials(Settings(state_dir=state_dir))
    assert creds is not None
    return LiveCloud(
        f"http://127.0.0.1:{port}", state_dir, creds.access_key_id, creds.secret_access_key, proc.pid
    )


def stop_gateway(cloud: LiveCloud) -> None:
    server.stop_pid(cloud.pid)


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    live = start_gateway(tmp_path_factory.mktemp("kennel") / "state")
    yield live
    stop_gateway(live)
