"""Secrets at rest: nothing in the state directory gives away a key, a session or a Lambda variable.

A gateway of its own (its files are read raw, then it is restarted): users, keys, an assumed-role
session and a function with environment variables are created through boto3, then every file under
the state directory (the SQLite store, its WAL and shared memory included) is searched for them.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import LiveCloud, start_gateway, stop_gateway
from tests.integration.support.lambda_functions import call, create, lambda_client, make_role, unique

from kennel.cloud import server
from kennel.cloud.sealing import SEALED_PREFIX
from kennel.settings import Settings

VARIABLE = "db-password-" + "7" * 24  # a value that only this test writes
SHELL_SECRET = "shell-secret-" + "6" * 24
MODEL_SECRET = "model-api-key-" + "5" * 24


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveCloud]:
    # As if started from a shell that ran `eval $(kennel env)`: the gateway must shed these.
    shell = {"AWS_SECRET_ACCESS_KEY": SHELL_SECRET, "GITHUB_TOKEN": SHELL_SECRET}
    live = start_gateway(tmp_path_factory.mktemp("sealed") / "state", extra_env=shell)
    yield live
    stop_gateway(live)


def test_foreground_gateway_environment_holds_no_secret(own: LiveCloud) -> None:
    """Started with secrets in its environment, the gateway re-executes itself (same PID) without them."""
    environ = Path(f"/proc/{own.pid}/environ").read_bytes()
    assert SHELL_SECRET.encode() not in environ and b"AWS_" not in environ
    assert b"KENNEL_S3_EAGER=0" in environ
    assert server.healthy(int(own.endpoint.rsplit(":", 1)[1]))


def _every_file(state: Path) -> Iterator[Path]:
    for path in state.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def _found_in(state: Path, needles: dict[str, str]) -> list[str]:
    found = []
    for path in _every_file(state):
        data = path.read_bytes()
        found += [f"{what} in {path}" for what, value in needles.items() if value.encode() in data]
    return found


def test_no_secret_in_the_state_directory_and_restart_keeps_working(own: LiveCloud, tmp_path: Path) -> None:
    iam = own.client("iam")
    user = unique("sealed-user")
    iam.create_user(UserName=user)
    iam.attach_user_policy(UserName=user, PolicyArn="arn:aws:iam::aws:policy/IAMReadOnlyAccess")
    key = iam.create_access_key(UserName=user)["AccessKey"]

    role = unique("sealed-role")
    trust = {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
             "Principal": {"AWS": "arn:aws:iam::000000000000:root"}}]}  # fmt: skip
    iam.create_role(RoleName=role, AssumeRolePolicyDocument=json.dumps(trust))
    session = own.client("sts").assume_role(
        RoleArn=f"arn:aws:iam::000000000000:role/{role}", RoleSessionName="sealed"
    )["Credentials"]

    lam = lambda_client(own)
    function = create(lam, make_role(own), Environment={"Variables": {"DB_PASSWORD": VARIABLE}})
    response, payload = call(lam, function, {"op": "context"})
    assert "FunctionError" not in response, payload  # its own role session is stored too

    model_data = tmp_path / "model.tar.gz"
    model_data.write_bytes(b"read when deployed")
    model = unique("sealed-model")
    container = {"Image": "img", "ModelDataUrl": str(model_data), "Environment": {"API_KEY": MODEL_SECRET}}
    own.client("sagemaker").create_model(ModelName=model, PrimaryContainer=container)

    needles = {
        "model environment": MODEL_SECRET,
        "admin secret": own.secret_access_key,
        "user secret": key["SecretAccessKey"],
        "session secret": session["SecretAccessKey"],
        "session token": session["SessionToken"],
        "Lambda variable": VARIABLE,
        "shell secret": SHELL_SECRET,
    }
    db = own.state_dir / "kennel.db"  # searched below with everything else, the gateway log included
    assert Path(f"{db}-wal").exists()  # the WAL is there to be searched, not skipped
    assert _found_in(own.state_dir.parent, needles) == []

    raw = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        secrets = [r[0] for r in raw.execute("SELECT secret FROM iam_access_keys")]
        secrets += [r[0] for r in raw.execute("SELECT secret FROM sts_sessions")]
        tokens = [r[0] for r in raw.execute("SELECT session_token FROM sts_sessions")]
        configs = [r[0] for r in raw.execute("SELECT config FROM lambda_versions")]
    finally:
        raw.close()
    assert len(secrets) >= 4 and len(tokens) >= 2  # admin + user keys; our session + the function's
    assert all(v.startswith(SEALED_PREFIX) for v in secrets + tokens + configs)
    key_file = own.state_dir / "secrets.key"
    assert key_file.stat().st_mode & 0o777 == 0o600 and own.state_dir.stat().st_mode & 0o777 == 0o700

    # The gateway still authenticates each of them, and so does a restarted one (same key file).
    def check(live: LiveCloud) -> None:
        arn = live.client("sts", key=key["AccessKeyId"], secret=key["SecretAccessKey"]).get_caller_identity()
        assert arn["Arn"].endswith(f":user/{user}")
        assumed = live.client(
            "sts",
            key=session["AccessKeyId"],
            secret=session["SecretAccessKey"],
            token=session["SessionToken"],
        ).get_caller_identity()
        assert f"assumed-role/{role}/sealed" in assumed["Arn"]
        described = live.client("sagemaker").describe_model(ModelName=model)
        assert described["PrimaryContainer"]["Environment"] == {"API_KEY": MODEL_SECRET}
        config = lambda_client(live).get_function_configuration(FunctionName=function)
        assert config["Environment"]["Variables"] == {"DB_PASSWORD": VARIABLE}

    check(own)
    port = int(own.endpoint.rsplit(":", 1)[1])
    stop_gateway(own)
    again = start_gateway(own.state_dir, port)
    own.pid = again.pid  # the fixture stops whichever gateway is current
    assert again.secret_access_key == needles["admin secret"]
    check(again)
    response, payload = call(lambda_client(again), function, {"op": "context"})
    assert "FunctionError" not in response, payload
    assert _found_in(own.state_dir.parent, needles) == []


def test_kennel_env_opens_the_admin_key(own: LiveCloud) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "kennel.cli", "env", "--state-dir", str(own.state_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert f"export AWS_SECRET_ACCESS_KEY={own.secret_access_key}\n" in out
    assert f"export AWS_ACCESS_KEY_ID={own.access_key_id}\n" in out


def test_detached_gateway_environment_holds_no_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`eval $(kennel env)` then `kennel up -d`: the shell's keys stay out of the gateway's environment."""
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "shell-secret-" + "9" * 20)
    monkeypatch.setenv("AWS_SESSION_TOKEN", "shell-token-" + "8" * 20)
    monkeypatch.setenv("KENNEL_S3_EAGER", "0")
    settings = Settings(state_dir=tmp_path / "state", port=server.free_port())
    running = server.start_detached(settings, follow_caller=True)
    try:
        environ = Path(f"/proc/{running.pid}/environ").read_bytes()
        assert b"shell-secret-" not in environ and b"shell-token-" not in environ
        assert b"AWS_" not in environ
        assert b"KENNEL_S3_EAGER=0" in environ  # the rest of the environment is passed on
    finally:
        server.stop_pid(running.pid)
