"""User code tries to escape: a Lambda function and a model's ``model_fn``, each against a live gateway.

Both run the same probe: list and read the state directory and its store, read the gateway's
``/proc/<pid>/environ`` and any other process's environment (another function's secret, the admin's
key), signal the gateway, undo the mounts that hide the host, write outside their sandbox, and connect
to SeaweedFS's ports, another endpoint's model-server socket and the gateway's own Unix socket. Every
attempt must fail, while the gateway's API still answers the code as its own role.
"""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import sys
import tarfile
import uuid
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from tests.integration.support.endpoints import serve
from tests.integration.support.lambda_functions import call, create, lambda_client, package, unique
from tests.integration.support.roles import service_role, trust

from kennel.runtime.endpoints.instances import short_socket_root

# Both probes knock on model-server sockets the same way: a bare /invocations, no signature.
UNIX_PROBE = r"""
def unix(path):
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(2)
        sock.connect(path)
        sock.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        return sock.recv(100).decode("latin-1")
"""

PROBE = (
    r"""
import ctypes, json, os, signal, socket, urllib.request
"""
    + UNIX_PROBE
    + r"""


def probe(cfg):
    out = {}

    def attempt(name, fn):
        try:
            out[name] = {"ok": True, "value": fn()}
        except Exception as exc:
            out[name] = {"ok": False, "error": type(exc).__name__}

    state, gw, tag = cfg["state"], cfg["gw"], cfg["tag"]
    attempt("list_state", lambda: sorted(os.listdir(state)))
    attempt("read_store", lambda: len(open(os.path.join(state, "kennel.db"), "rb").read()))

    def relative():
        found = [p for n in range(1, 10) for p in ["../" * n + "kennel.db"] if os.path.exists(p)]
        if not found:
            raise FileNotFoundError("no kennel.db above the working directory")
        return found

    attempt("relative_store", relative)
    attempt("gateway_environ", lambda: open(f"/proc/{gw}/environ", "rb").read().decode("latin-1"))
    attempt("gateway_cmdline", lambda: open(f"/proc/{gw}/cmdline", "rb").read().decode("latin-1"))
    attempt("signal_gateway", lambda: os.kill(gw, signal.SIGCONT))

    def scan():
        hits = []
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                data = open(f"/proc/{pid}/environ", "rb").read()
            except OSError:
                continue
            # Reversed in the configuration, which the model's own environment carries.
            if any(secret[::-1].encode() in data for secret in cfg["secrets"]):
                hits.append(pid)
        if not hits:
            raise PermissionError("no secret in any visible environment")
        return hits

    attempt("other_environments", scan)

    def unmount():
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.umount2(state.encode(), 2) != 0:
            raise OSError(ctypes.get_errno(), "umount2")
        return os.listdir(state)

    attempt("unmount_state", unmount)
    for i, target in enumerate(cfg["writes"]):
        attempt(f"write_{i}", lambda target=target: open(target, "w").write(tag))

    def connect(port):
        with socket.create_connection(("127.0.0.1", port), timeout=2):
            return port

    for port in cfg["seaweed"]:
        attempt(f"seaweed_{port}", lambda port=port: connect(port))

    for i, path in enumerate(cfg["sockets"]):
        attempt(f"socket_{i}", lambda path=path: unix(path))
    health = urllib.request.urlopen(f"http://127.0.0.1:{cfg['port']}/_kennel/health", timeout=10)
    out["gateway_health"] = health.status
    return out


def handler(event, context):
    import boto3

    results = probe(event)
    results["caller"] = boto3.client("sts").get_caller_identity()["Arn"]
    try:
        boto3.client("iam").list_users()
        results["list_users"] = "allowed"
    except Exception as exc:
        results["list_users"] = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
    return results


def model_fn(model_dir):
    return probe(json.loads(os.environ["PROBE"]))


def transform_fn(results, body, content_type, accept):
    return json.dumps(results), "application/json"
"""
)
ECHO = (
    "def model_fn(model_dir):\n    return 1\n\ndef transform_fn(m, body, ct, accept):\n    return body, ct\n"
)
ATTEMPTS = ("list_state", "gateway_environ")  # always present; the rest are checked by prefix


def _artifact(root: Path, source: str) -> Path:
    (root / "code").mkdir(parents=True)
    (root / "code" / "inference.py").write_text(source)
    with tarfile.open(root / "model.tar.gz", "w:gz") as tar:
        tar.add(root / "code", arcname="code")
    return root / "model.tar.gz"


def _endpoint(sm, name: str, url: Path, role: str, **env: str) -> None:
    serve(sm, name, {"ModelDataUrl": str(url), "Environment": env}, role=role, instance_type="ml.t2.medium")


def _seaweed_ports(state: Path) -> list[int]:
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().decode("latin-1") if entry.name.isdigit() else ""
        except OSError:
            continue
        if "weed" in cmdline.split("\0")[0] and str(state) in cmdline:
            return sorted({int(p) for p in re.findall(r"port(?:\.grpc)?=(\d+)", cmdline) if int(p)})
    return []


@pytest.fixture(scope="module")
def setup(cloud, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """An S3 store, another endpoint, another function with a secret, and the probe's configuration."""
    state = cloud.state_dir
    cloud.client("s3").create_bucket(Bucket=f"escape-{uuid.uuid4().hex[:8]}")  # SeaweedFS runs from here on
    sm_role = service_role(cloud)
    other = unique("other")
    _endpoint(cloud.client("sagemaker"), other, _artifact(tmp_path_factory.mktemp("echo"), ECHO), sm_role)
    lam = lambda_client(cloud)
    iam = cloud.client("iam")
    role = iam.create_role(RoleName=unique("escape"), AssumeRolePolicyDocument=trust("lambda.amazonaws.com"))
    iam.attach_role_policy(
        RoleName=role["Role"]["RoleName"],
        PolicyArn="arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole",
    )
    marker = uuid.uuid4().hex
    neighbour = create(lam, role["Role"]["Arn"], Environment={"Variables": {"SECRET_MARKER": marker}})
    assert call(lam, neighbour, {"op": "count"})[1] == {"count": 1}  # its environment stays warm
    tag = uuid.uuid4().hex[:8]
    writes = [str(state / f"escape-{tag}"), f"/root/escape-{tag}", f"/tmp/escape-{tag}",
              str(Path(sys.prefix) / f"escape-{tag}"), f"/usr/escape-{tag}",
              f"/etc/escape-{tag}"]  # fmt: skip
    # Model servers' sockets live under the state directory, or in a short directory under the temp
    # directory where that path would pass a Unix socket's 107 bytes.
    model_sockets = [*(state / "sagemaker").rglob("*.sock"), *short_socket_root().glob("*/*.sock")]
    sockets = [str(p) for p in model_sockets] + [str(state / "gateway.sock")]
    config = {
        "state": str(state), "gw": cloud.pid, "tag": tag, "port": int(cloud.endpoint.rsplit(":", 1)[1]),
        "secrets": [marker[::-1], cloud.secret_access_key[::-1]], "writes": writes,
        "seaweed": _seaweed_ports(state), "sockets": sockets,
    }  # fmt: skip
    assert config["seaweed"], "SeaweedFS's ports were not found: the probe would prove nothing"
    assert len(sockets) >= 2, "the other endpoint's model-server socket was not found"
    yield {"config": config, "lam": lam, "role": role["Role"], "sm_role": sm_role, "writes": writes,
           "other": other}  # fmt: skip
    with contextlib.suppress(ClientError):
        cloud.client("sagemaker").delete_endpoint(EndpointName=other)


def _assert_contained(results: dict, setup: dict) -> None:
    print(json.dumps(results, indent=1))  # what each attempt met (`pytest -rP` shows it)
    for name in ATTEMPTS:
        assert name in results
    for name, outcome in results.items():
        if name in ("gateway_health", "caller", "list_users", "list_state") or name.startswith("write_"):
            continue
        assert outcome["ok"] is False, f"{name} succeeded: {outcome}"
    # The state directory is an empty tmpfs inside (only the mount points of the code's own directories).
    listing = results["list_state"].get("value") or []
    assert not {"kennel.db", "gateway.json", "gateway.sock", "objects"} & set(listing), listing
    # Writes either failed (read-only) or went to the sandbox's private tmpfs: nothing reached the host.
    for i, target in enumerate(setup["writes"]):
        assert not Path(target).exists(), f"write_{i} reached the host: {target}"
    assert results["gateway_health"] == 200  # the gateway's API is reachable from inside


def test_a_lambda_function_cannot_escape(setup) -> None:
    lam = setup["lam"]
    name = create(lam, setup["role"]["Arn"], zip=package(PROBE), Timeout=60, MemorySize=256)
    response, results = call(lam, name, setup["config"])
    assert "FunctionError" not in response, results
    _assert_contained(results, setup)
    # It reaches the gateway as its own role, with that role's rights only.
    assert results["caller"].endswith(f"assumed-role/{setup['role']['RoleName']}/{name}")
    assert results["list_users"] == "AccessDenied"


def test_a_model_fn_cannot_escape(cloud, setup, tmp_path: Path) -> None:
    sm = cloud.client("sagemaker")
    name = unique("probe")
    url = _artifact(tmp_path, PROBE)
    _endpoint(sm, name, url, setup["sm_role"], PROBE=json.dumps(setup["config"], separators=(",", ":")))
    try:
        reply = cloud.client("sagemaker-runtime").invoke_endpoint(
            EndpointName=name, Body=b"{}", ContentType="application/json"
        )
        results = json.loads(reply["Body"].read())
        _assert_contained(results, setup)
    finally:
        sm.delete_endpoint(EndpointName=name)


TRAINING_MAIN = r"""
import json, os
import boto3
from probe import probe

results = probe(json.loads(os.environ["SM_HP_PROBE"]))  # the hyperparameter, as the toolkit exports it
results["caller"] = boto3.client("sts").get_caller_identity()["Arn"]
try:
    boto3.client("iam").list_users()
    results["list_users"] = "allowed"
except Exception as exc:
    results["list_users"] = getattr(exc, "response", {}).get("Error", {}).get("Code", type(exc).__name__)
json.dump(results, open("/opt/ml/model/results.json", "w"))
"""


def test_a_training_script_cannot_escape(cloud, setup) -> None:
    from tests.integration.support.training import (
        ensure_bucket,
        job_request,
        read_model,
        upload_code,
        wait_done,
    )

    s3, sm = cloud.client("s3"), cloud.client("sagemaker")
    bucket = "sagemaker-escape-tests"
    ensure_bucket(s3, bucket)
    cloud.client("iam").attach_role_policy(
        RoleName="SageMakerRole", PolicyArn="arn:aws:iam::aws:policy/AmazonSageMakerFullAccess"
    )
    name = unique("escape-job")
    code = upload_code(s3, bucket, name, {"probe.py": PROBE, "train.py": TRAINING_MAIN})
    request = job_request(name, setup["sm_role"], bucket, code, hyperparameters={"probe": setup["config"]})
    sm.create_training_job(**request)
    job = wait_done(sm, name, timeout_s=120)
    assert job["TrainingJobStatus"] == "Completed", job.get("FailureReason")
    results = json.loads(read_model(s3, job["ModelArtifacts"]["S3ModelArtifacts"])["results.json"])
    _assert_contained(results, setup)
    assert results["caller"] == "arn:aws:sts::000000000000:assumed-role/SageMakerRole/SageMaker"
    assert results["list_users"] == "AccessDenied"


OTHER_USER_PROBE = (
    r"""
import json, os, socket, sys, urllib.error, urllib.request
"""
    + UNIX_PROBE
    + r"""
cfg = json.loads(sys.argv[1])
out = {}
def attempt(name, fn):
    try:
        out[name] = {"ok": True, "value": fn()}
    except Exception as exc:
        out[name] = {"ok": False, "error": type(exc).__name__}
def get(port, path):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=3) as reply:
        return reply.status, reply.read(200).decode("latin-1")
for port in cfg["seaweed"]:
    for path in ("/", "/cluster/status", "/status", "/dir/status"):
        attempt(f"seaweed_{port}{path}", lambda port=port, path=path: get(port, path))
for i, path in enumerate(cfg["sockets"]):
    attempt(f"socket_{i}", lambda path=path: unix(path))
attempt("list_state", lambda: os.listdir(cfg["state"]))
def unsigned_invoke():
    request = urllib.request.Request(
        f"http://127.0.0.1:{cfg['port']}/endpoints/{cfg['endpoint']}/invocations", data=b"{}",
        headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status
    except urllib.error.HTTPError as exc:
        raise PermissionError(exc.code) from None
attempt("unsigned_invoke", unsigned_invoke)
print(json.dumps(out))
"""
)


def test_another_local_user_reads_nothing_and_invokes_nothing(cloud, setup) -> None:
    """uid nobody, outside every sandbox: no object, no model server, no state, no unsigned invoke."""
    config = dict(setup["config"], endpoint=setup["other"])
    done = subprocess.run(
        ["/usr/bin/python3", "-I", "-c", OTHER_USER_PROBE, json.dumps(config)],
        capture_output=True, text=True, timeout=120, user=65534, group=65534, cwd="/",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout)
    print(json.dumps(results, indent=1))
    assert any(name.startswith("seaweed_") for name in results) and "unsigned_invoke" in results
    for name, outcome in results.items():
        # The store's S3 port answers its health check (/status: 200, no body) to anyone, as any S3
        # endpoint does; everything else it serves needs a signature with the key only Kennel holds.
        empty_health = name.endswith("/status") and outcome["ok"] and outcome["value"] == [200, ""]
        assert outcome["ok"] is False or empty_health, f"uid nobody got {name}: {outcome}"
