"""SeaweedFS answers nobody but Kennel: its master, volume, filer and gRPC ports from another process.

The probes find the ports as an attacker would (the weed process's command line) and try, without
Kennel's certificates or keys: HTTP and HTTPS on the master and volume ports (status pages, the
master's ``/dir/assign`` and ``/dir/lookup`` that hand out volume JWTs), the filer's HTTP port, every
gRPC port over TLS with no client certificate, and ``weed shell`` listing buckets. A positive control
with Kennel's own client certificate shows each probe would have seen the data had the door been open.
"""

from __future__ import annotations

import json
import os
import socket
import ssl
import subprocess
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.integration.conftest import LiveCloud, start_gateway, stop_gateway

from kennel.cloud.objectstore.seaweed import weed_binary
from kennel.cloud.objectstore.weedsecurity import WeedSecurity

pytestmark = pytest.mark.timeout(300)
CONTENT = b"objectstore-security-" + uuid.uuid4().hex.encode()
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # HTTP/2 + SETTINGS


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveCloud, str]]:
    cloud = start_gateway(tmp_path_factory.mktemp("weedsec") / "state")
    s3 = cloud.client("s3")
    bucket = f"secure-{uuid.uuid4().hex[:10]}"
    s3.create_bucket(Bucket=bucket)
    s3.put_object(Bucket=bucket, Key="secret.txt", Body=CONTENT)
    yield cloud, bucket
    stop_gateway(cloud)


def weed_ports(state_dir: Path) -> dict[str, int]:
    pid = int((state_dir / "objects" / "weed.pid").read_text())
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    ports = {}
    for arg in args:
        name, _, value = arg.lstrip("-").partition("=")
        if name.endswith((".port", ".port.grpc")) and value.isdigit() and int(value) > 0:
            ports[name] = int(value)
    return ports


def http_get(url: str, context: ssl.SSLContext | None = None) -> tuple[int | None, bytes]:
    """(status, body) or (None, b"") when the connection or TLS handshake is refused."""
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except (urllib.error.URLError, OSError, ssl.SSLError):
        return None, b""


def no_client_cert(trusting: Path | None = None) -> ssl.SSLContext:
    """TLS as a stranger: trusts the server (even its CA, to isolate the client-certificate check)."""
    context = (
        ssl.create_default_context(cafile=str(trusting)) if trusting else ssl._create_unverified_context()
    )
    context.check_hostname = bool(trusting)
    return context


def tls_exchange(port: int, context: ssl.SSLContext) -> bytes | None:
    """Handshake and send an HTTP/2 preface; what came back, or None when the server refused us."""
    try:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
        ):
            tls.sendall(PREFACE)
            return tls.recv(1024)  # TLS 1.3 reports a refused client certificate here
    except (ssl.SSLError, OSError):
        return None


def weed_shell(ports: dict[str, int], commands: str, *, config_dir: Path | None, cwd: Path) -> str:
    master = f"127.0.0.1:{ports['master.port']}.{ports['master.port.grpc']}"
    filer = f"127.0.0.1:{ports['filer.port']}.{ports['filer.port.grpc']}"
    binary = weed_binary()
    assert binary is not None
    argv = [binary] + ([f"-config_dir={config_dir}"] if config_dir else [])
    argv += ["shell", f"-master={master}", f"-filer={filer}"]
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(cwd)}
    try:
        done = subprocess.run(argv, input=commands + "\nexit\n", capture_output=True, text=True,
                              cwd=cwd, env=env, timeout=20)  # fmt: skip
        return done.stdout + done.stderr
    except subprocess.TimeoutExpired as exc:  # without credentials it keeps retrying the master
        return (exc.stdout or b"").decode(errors="replace") + (exc.stderr or b"").decode(errors="replace")


def test_master_and_volume_http_refuse_strangers(live) -> None:
    cloud, _bucket = live
    ports = weed_ports(cloud.state_dir)
    security = WeedSecurity(cloud.state_dir / "objects")
    for name in ("master.port", "volume.port"):
        for path in (
            "/dir/status",
            "/dir/assign",
            "/dir/lookup?volumeId=1",
            "/status",
            "/vol/status",
            "/1,01",
        ):
            for scheme, context in (("http", None), ("https", no_client_cert()),
                                    ("https", no_client_cert(security.ca_cert))):  # fmt: skip
                status, body = http_get(f"{scheme}://127.0.0.1:{ports[name]}{path}", context)
                assert status in (None, 400), (name, path, scheme, status, body[:200])
                assert b"Topology" not in body and b"fid" not in body and CONTENT not in body
    # Positive control: with Kennel's client certificate the same request is answered.
    status, body = http_get(f"https://127.0.0.1:{ports['master.port']}/dir/status", security.client_context())
    assert status == 200 and b"Topology" in body


def test_grpc_ports_refuse_a_peer_without_a_client_certificate(live) -> None:
    cloud, _bucket = live
    ports = weed_ports(cloud.state_dir)
    security = WeedSecurity(cloud.state_dir / "objects")
    grpc_ports = {name: port for name, port in ports.items() if name.endswith(".grpc")}
    assert set(grpc_ports) >= {"master.port.grpc", "volume.port.grpc", "filer.port.grpc", "s3.port.grpc"}
    for name, port in grpc_ports.items():
        assert tls_exchange(port, no_client_cert(security.ca_cert)) in (None, b""), name
        # Plaintext gRPC (what an insecure client speaks) gets no HTTP/2 settings frame back.
        with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
            raw.sendall(PREFACE)
            raw.settimeout(5)
            try:
                answer = raw.recv(64)
            except OSError:
                answer = b""
        assert not (len(answer) >= 9 and answer[3] == 0x04), (name, answer)  # 0x04: a SETTINGS frame
        assert tls_exchange(port, security.client_context()), name  # control: Kennel's cert gets in


def test_filer_and_s3_ports_give_nothing_away(live) -> None:
    cloud, bucket = live
    ports = weed_ports(cloud.state_dir)
    for path in ("/", "/buckets/", f"/buckets/{bucket}/", f"/buckets/{bucket}/secret.txt"):
        status, body = http_get(f"http://127.0.0.1:{ports['filer.port']}{path}")
        assert CONTENT not in body and bucket.encode() not in body, (path, status)
    for path in ("/", f"/{bucket}", f"/{bucket}/secret.txt"):
        status, body = http_get(f"http://127.0.0.1:{ports['s3.port']}{path}")
        assert status == 403 and CONTENT not in body and b"<Bucket>" not in body, (path, status)


def test_weed_shell_without_certificates_lists_nothing(live, tmp_path: Path) -> None:
    cloud, bucket = live
    ports = weed_ports(cloud.state_dir)
    stranger = weed_shell(ports, "s3.bucket.list\nfs.ls /buckets", config_dir=None, cwd=tmp_path)
    assert bucket not in stranger, stranger[-2000:]
    # Control: the same shell with Kennel's security.toml does list it (so the probe is meaningful).
    objects = cloud.state_dir / "objects"
    insider = weed_shell(ports, "s3.bucket.list", config_dir=objects, cwd=tmp_path)
    assert bucket in insider, insider[-2000:]


def test_kennel_s3_path_works_and_weed_logs_stay_in_the_state_dir(live) -> None:
    cloud, bucket = live
    assert cloud.client("s3").get_object(Bucket=bucket, Key="secret.txt")["Body"].read() == CONTENT
    objects = cloud.state_dir / "objects"
    pid = int((objects / "weed.pid").read_text())
    args = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    assert f"-logdir={objects / 'logs'}" in args and f"-config_dir={objects}" in args
    assert any((objects / "logs").glob("weed.*.log.INFO.*"))
    assert not any(Path("/tmp").glob(f"weed.*.log.*.{pid}"))  # glog's default, /tmp, is not used
    for path in [objects / "security.toml", *(objects / "tls").iterdir()]:
        assert path.stat().st_mode & 0o077 == 0, path
    environ = Path(f"/proc/{pid}/environ").read_bytes()
    assert b"AWS_" not in environ and b"WEED_" not in environ
    assert json.loads((objects / "identity.json").read_text())["secret"].encode() not in environ
