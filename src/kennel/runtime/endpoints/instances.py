"""One model-server instance as the gateway sees it: a sandboxed process, its log, its keep-alive connections.

The process starts through the :class:`~kennel.runtime.sandbox.Sandbox` (its own session, PID and
network namespace; the model directory read-only; the gateway relayed in; it dies with the gateway).
It listens on a path-based Unix socket in a directory of its own that is bound into its sandbox: the
gateway cannot reach a port inside a private network namespace, and nothing but the gateway (root,
through a 0700 directory) can reach the socket, so ``/invocations`` is no unauthenticated side door on
loopback. Its stdout and stderr are one pipe, read line by line into a buffer that the fleet flushes
to CloudWatch Logs; the last lines are kept to explain a failed start. Requests reuse HTTP/1.1
connections: a fresh connection per request would cost more than the rest of the routing together.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from kennel.runtime.endpoints.artifacts import export_dir_for
from kennel.runtime.endpoints.contract import SERVER_MODULE
from kennel.runtime.endpoints.profiles import ResourceProfile
from kennel.runtime.sandbox import Limits, Mount, Sandbox, SandboxProcess, SandboxSpec

_LOG_BUFFER_LINES = 10_000
_TMP_MB = 2048  # the instance's private /tmp
_SOCKET = "model.sock"


class UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a path-based Unix socket (keep-alive works as over TCP)."""

    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self.path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


class InstanceFailed(Exception):
    """The instance could not start or stopped; ``reason`` is written for the endpoint's FailureReason."""

    def __init__(self, reason: str, *, port_in_use: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.port_in_use = port_in_use


class InstanceUnreachable(Exception):
    """The request could not be delivered or its answer never came (the process died, say)."""


class InstanceTimeout(Exception):
    """The instance accepted the request but did not answer in time."""


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-cased names
    body: bytes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_instance_id() -> str:
    return "i-" + secrets.token_hex(9)[:17]


class Instance:
    def __init__(
        self,
        *,
        variant: str,
        model_dir: Path,
        environment: Mapping[str, str],
        profile: ResourceProfile,
        gpu_index: int | None = None,
        timeout_s: float = 60.0,
        clock: Callable[[], float] = time.time,
        sandbox: Sandbox,
        socket_root: Path,
    ) -> None:
        self.id = new_instance_id()
        self.sandbox = sandbox
        self.socket_dir = _socket_dir(Path(socket_root), self.id)
        self.socket_path = str(self.socket_dir / _SOCKET)
        self.variant = variant
        self.stream = f"{variant}/{self.id}"  # AWS names endpoint log streams <variant>/<instance id>
        self.model_dir = Path(model_dir)
        self.export_dir = export_dir_for(self.model_dir)
        self.environment = dict(environment)
        self.profile = profile
        self.gpu_index = gpu_index
        self.timeout_s = timeout_s
        self.clock = clock
        self.proc: SandboxProcess | None = None
        self._main_pid: int | None = None
        self.healthy = False
        self.retired = False  # taken out of routing (draining or replaced)
        self.outstanding = 0  # requests in flight; the router's lock guards it
        self.ping_failures = 0
        self._pool: list[http.client.HTTPConnection] = []
        self._pool_lock = threading.Lock()
        self._tail: deque[str] = deque(maxlen=40)
        self._buffer: deque[tuple[float, str]] = deque(maxlen=_LOG_BUFFER_LINES)
        self._log_lock = threading.Lock()
        self._pump: threading.Thread | None = None
        self._cpu_prev: tuple[float, float] | None = None

    # --- lifecycle ---------------------------------------------------------------------------------

    def child_env(self) -> dict[str, str]:
        """Added to the sandbox's allow-listed base: nothing of the gateway's own environment."""
        env = self.profile.child_environment(self.gpu_index)
        env.update(self.environment)
        env["PYTHONUNBUFFERED"] = "1"
        env["PYTHONPATH"] = _KENNEL_ROOT
        if self.export_dir is not None:
            env[EXPORT_DIR_ENV] = str(self.export_dir)
        return env

    def start(self) -> None:
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        model_dir = str(self.model_dir)
        cmd = [
            sys.executable,
            "-m",
            SERVER_MODULE,
            "--model-dir",
            model_dir,
            "--socket",
            self.socket_path,
            "--threads",
            str(self.profile.threads),
            "--timeout-s",
            str(self.timeout_s),
        ]
        if not self.sandbox.confined:  # inside, the sandbox ends with the gateway by itself
            cmd += ["--parent-pid", str(os.getpid())]
        spec = SandboxSpec(
            argv=cmd,
            env=self.child_env(),
            cwd=model_dir,
            mounts=[
                Mount(self.model_dir, model_dir),
                Mount(self.socket_dir, str(self.socket_dir), writable=True),
                *(
                    [Mount(self.export_dir, str(self.export_dir), writable=True)]
                    if self.export_dir is not None
                    else []
                ),
            ],
            limits=Limits(tmp_mb=_TMP_MB),
            label=f"model server {self.stream}",
        )
        self.proc = self.sandbox.spawn(spec, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        if self.sandbox.note:  # the instance's log stream says so when code runs unconfined
            self.note(self.sandbox.note)
        self._pump = threading.Thread(target=self._read_output, name=f"log-{self.id}", daemon=True)
        self._pump.start()

    def wait_ready(self, timeout_s: float, cancelled: Callable[[], bool] = lambda: False) -> None:
        """Block until ``/ping`` answers 200; raise :class:`InstanceFailed` if the process exits first."""
        deadline = time.monotonic() + timeout_s
        while True:
            code = self.exit_code()
            if code is not None:
                if self._pump is not None:
                    self._pump.join(timeout=2)  # the failure line may still be in the pipe
                reason = self.failure_reason(code)
                raise InstanceFailed(reason, port_in_use="address already in use" in reason.lower())
            if cancelled():
                raise InstanceFailed("the deployment was cancelled")
            if self.ping(timeout_s=2.0):
                self.healthy = True
                return
            if time.monotonic() > deadline:
                raise InstanceFailed(
                    f"instance {self.id} did not pass the ping health check within {timeout_s:.0f} s"
                )
            time.sleep(0.1)

    def exit_code(self) -> int | None:
        if self.proc is None or self.proc.poll() is None:
            return None
        return self.proc.exit_status

    def wait_exit(self, timeout_s: float) -> int | None:
        """The exit code if the process ends within ``timeout_s`` (a dropped connection often comes
        a moment before the process is reaped)."""
        if self.proc is None:
            return None
        try:
            self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        return self.proc.exit_status

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, grace_s: float = 5.0) -> None:
        self.healthy = False
        self.retired = True
        self.close_connections()
        proc = self.proc
        if proc is None or proc.poll() is not None:
            shutil.rmtree(self.socket_dir, ignore_errors=True)
            return
        try:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        except ProcessLookupError:
            pass
        finally:
            shutil.rmtree(self.socket_dir, ignore_errors=True)

    def failure_reason(self, code: int | None) -> str:
        lines = [line for line in self._tail if line.strip()]
        marked = [line for line in lines if line.startswith("kennel-model-server: failed")]
        if marked:
            detail = marked[-1].removeprefix("kennel-model-server: ")
        else:
            detail = " | ".join(lines[-3:]) or "no output"
        return f"instance {self.id} exited with code {code} before it was healthy: {detail}"

    # --- output ------------------------------------------------------------------------------------

    def _read_output(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for raw in iter(self.proc.stdout.readline, b""):
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._log_lock:
                self._tail.append(text)
                self._buffer.append((self.clock(), text))
        self.proc.stdout.close()

    def take_log_events(self) -> list[tuple[float, str]]:
        with self._log_lock:
            events = list(self._buffer)
            self._buffer.clear()
        return events

    def note(self, message: str) -> None:
        """A line in this instance's log stream written by the platform (start, exit, replacement)."""
        with self._log_lock:
            self._tail.append(message)
            self._buffer.append((self.clock(), message))

    def output_done(self) -> bool:
        return self._pump is None or not self._pump.is_alive()

    # --- health and resources ------------------------------------------------------------------------

    def ping(self, timeout_s: float = 2.0) -> bool:
        conn = UnixHTTPConnection(self.socket_path, timeout_s)
        try:
            conn.request("GET", "/ping")
            response = conn.getresponse()
            response.read()
            return response.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def sample(self) -> tuple[float, float] | None:
        """(CPU % summed over cores, memory % of the machine) since the previous sample."""
        if not self.alive():
            return None
        if self._main_pid is None:  # the server itself, not the sandbox's monitor
            self._main_pid = self.proc.main_pid()  # type: ignore[union-attr]
            if self._main_pid is None:
                return None
        try:
            with open(f"/proc/{self._main_pid}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        cpu_s = (int(fields[11]) + int(fields[12])) / ticks
        rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        now = time.monotonic()
        previous, self._cpu_prev = self._cpu_prev, (now, cpu_s)
        if previous is None:  # the first sample covers the process's life so far
            try:
                with open("/proc/uptime") as fh:
                    elapsed = float(fh.read().split()[0]) - int(fields[19]) / ticks
            except (OSError, ValueError, IndexError):
                return None
            previous = (now - elapsed, 0.0)
        if now <= previous[0]:
            return None
        return 100.0 * (cpu_s - previous[1]) / (now - previous[0]), 100.0 * rss / total

    # --- requests ------------------------------------------------------------------------------------

    def _checkout(self, timeout: float) -> tuple[http.client.HTTPConnection, bool]:
        with self._pool_lock:
            conn = self._pool.pop() if self._pool else None
        if conn is not None:
            conn.timeout = timeout
            if conn.sock is not None:
                conn.sock.settimeout(timeout)
            return conn, True
        conn = UnixHTTPConnection(self.socket_path, timeout)
        conn.connect()
        return conn, False

    def _checkin(self, conn: http.client.HTTPConnection) -> None:
        if self.retired:
            conn.close()
            return
        with self._pool_lock:
            self._pool.append(conn)

    def close_connections(self) -> None:
        with self._pool_lock:
            pool, self._pool = self._pool, []
        for conn in pool:
            conn.close()

    def post(self, body: bytes, headers: dict[str, str], timeout_s: float) -> Reply:
        """POST /invocations; a stale keep-alive connection is retried once on a fresh one."""
        for attempt in (0, 1):
            try:
                conn, reused = self._checkout(timeout_s)
            except TimeoutError as exc:
                raise InstanceUnreachable(f"instance {self.id} did not accept a connection: {exc}") from exc
            except OSError as exc:
                raise InstanceUnreachable(f"instance {self.id} is not accepting connections ({exc})") from exc
            try:
                conn.request("POST", "/invocations", body=body, headers=headers)
                response = conn.getresponse()
                data = response.read()
            except TimeoutError as exc:
                conn.close()
                raise InstanceTimeout(f"instance {self.id} did not answer within {timeout_s:g} s") from exc
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                # The server closes idle connections after a while: only a reused one is worth retrying.
                if reused and attempt == 0 and isinstance(exc, ConnectionError | http.client.BadStatusLine):
                    continue
                raise InstanceUnreachable(
                    f"instance {self.id} closed the connection without answering ({type(exc).__name__})"
                ) from exc
            if response.will_close:
                conn.close()
            else:
                self._checkin(conn)
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, data)
        raise AssertionError("unreachable")  # pragma: no cover


_KENNEL_ROOT = str(Path(__file__).resolve().parents[3])
# kennel.ml.export.EXPORT_DIR_ENV, spelled out: importing that module would load torch into the gateway.
EXPORT_DIR_ENV = "KENNEL_EXPORT_DIR"


def short_socket_root() -> Path:
    """Where instance sockets go when the state directory's path is too long for a Unix socket."""
    return Path(tempfile.gettempdir()) / f"kennel-{os.getuid()}"


def _socket_dir(root: Path, instance_id: str) -> Path:
    """A short directory for the instance's socket (a Unix socket path has at most 107 bytes)."""
    path = root / instance_id
    if len(str(path / _SOCKET)) < 100:
        return path
    with contextlib.suppress(OSError):
        short = short_socket_root()
        short.mkdir(mode=0o700, exist_ok=True)
        return short / instance_id
    return path
