"""Run the gateway: in the foreground, or detached with a PID file so `kennel down` can stop it."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kennel.runtime.loop import ticker
from kennel.runtime.sandbox import gateway_socket
from kennel.settings import Settings

RUNTIME_FILE = "gateway.json"
LOG_FILE = "gateway.log"


@dataclass(frozen=True)
class Running:
    pid: int
    port: int
    started: float
    sandboxed: bool = True  # False: KENNEL_SANDBOX=off, user code runs unconfined

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def read_running(state_dir: Path) -> Running | None:
    """The gateway recorded in the state directory, if its process is still alive."""
    try:
        data = json.loads((state_dir / RUNTIME_FILE).read_text())
        running = Running(
            int(data["pid"]), int(data["port"]), float(data["started"]), bool(data.get("sandboxed", True))
        )
    except (OSError, ValueError, KeyError):
        return None
    return running if _alive(running.pid) else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie or a recycled PID is not our gateway.
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    return b"kennel" in cmdline and "\nState:\tZ" not in status


def healthy(port: int, timeout_s: float = 1.0) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/_kennel/health", timeout=timeout_s) as response:
            return response.status == 200
    except OSError:
        return False


def serve(settings: Settings, *, parent_pid: int = 0) -> None:
    """Foreground: build the cloud, record PID and port, serve until SIGINT/SIGTERM (or, with
    ``parent_pid``, until that parent process is gone)."""
    from kennel.cloud.sealing import is_secret_name

    if any(is_secret_name(name) for name in os.environ):
        # /proc/<pid>/environ shows the environment a process was started with, whatever os.environ
        # says later, so a shell's exported keys would stay readable there: start over without them.
        # exec keeps the PID, so Ctrl-C and `kennel down` reach this same process.
        command = _server_command(settings, settings.port, parent_pid)
        os.execve(sys.executable, command, _gateway_environment(settings))
    import uvicorn

    from kennel.cloud.cloudstate import Cloud
    from kennel.cloud.frontdoor import guarded_protocol
    from kennel.cloud.gateway import Gateway
    from kennel.runtime.heap import freeze_startup_heap

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.umask(0o077)  # the store, its WAL files and everything else the gateway writes: owner-only
    port = settings.port or free_port()
    settings = settings.model_copy(update={"port": port})
    cloud = Cloud(settings)
    if settings.s3_eager_start:
        cloud.objects.start_in_background()  # S3 is ready by the time a user's first upload arrives
    runtime = settings.state_dir / RUNTIME_FILE
    record = {"pid": os.getpid(), "port": port, "started": time.time(), "sandboxed": cloud.sandbox.confined}
    runtime.write_text(json.dumps(record))
    app = Gateway(cloud)  # preloads every service model and routing table
    freeze_startup_heap()  # so no full collection walks them mid-request (see runtime/heap.py)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=port,
        log_level="warning",
        access_log=False,
        lifespan="on",
        # Idle, header and write deadlines and the per-address connection cap (see cloud/frontdoor.py).
        http=guarded_protocol(settings),
        timeout_keep_alive=settings.keep_alive_timeout_s,  # type: ignore[arg-type]  # a float works
    )
    # Two listeners, one app: TCP for clients, and a Unix socket that sandboxed user code reaches
    # through the sandbox's relay (a network namespace cannot see the host's loopback).
    listeners = [_tcp_listener(settings.host, port), _unix_listener(gateway_socket(settings.state_dir))]
    # uvicorn handles SIGTERM/SIGINT while it runs, then re-raises the signal under the handler found
    # before it started: with the default one, SIGTERM (`kennel down`) would kill the process before
    # the cleanup below stops model servers and function environments and flushes logs.
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    if parent_pid:
        ticker("parent-watch", 0.5, _orphan_check(parent_pid)).start()
    try:
        uvicorn.Server(config).run(sockets=listeners)
    finally:
        cloud.close()
        for listener in listeners:
            listener.close()
        with contextlib.suppress(OSError):
            gateway_socket(settings.state_dir).unlink()
        with contextlib.suppress(OSError):
            if json.loads(runtime.read_text()).get("pid") == os.getpid():
                runtime.unlink()


def _tcp_listener(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    return sock


def _unix_listener(path: Path) -> socket.socket:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()  # left by a gateway that did not stop cleanly
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    os.chmod(path, 0o600)  # only the owner (the relay runs as the gateway's user)
    return sock


def _exit_on_sigterm(signum, frame) -> None:
    raise SystemExit(0)


def _orphan_check(parent_pid: int) -> Callable[[], None]:
    """A gateway started for a test session or a benchmark stops with the process that started it: a
    killed pytest used to leave its gateway (and SeaweedFS, model servers, function environments)
    running, detached in its own session. Once the parent is gone this process is re-parented, so
    ``getppid`` changes; one SIGTERM then takes the same clean path as ``kennel down`` (a second one
    would interrupt that clean-up)."""
    sent = False

    def check() -> None:
        nonlocal sent
        if not sent and os.getppid() != parent_pid:
            sent = True
            logging.getLogger("kennel.server").warning("parent process %d is gone: stopping", parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)

    return check


def start_detached(settings: Settings, *, wait_s: float = 60.0, follow_caller: bool = False) -> Running:
    """Start the gateway in its own session; return once it answers its health route.
    ``follow_caller``: the gateway stops when this process is gone (tests, benchmarks), rather than
    outliving it as ``kennel up`` means it to."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    port = settings.port or free_port()
    log = (settings.state_dir / LOG_FILE).open("ab")
    cmd = _server_command(settings, port, os.getpid() if follow_caller else 0)
    # The gateway's own environment holds no secret (`kennel env` output exported in this shell included).
    proc = subprocess.Popen(
        cmd,
        stdout=log,
        stderr=log,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
        env=_gateway_environment(settings),
    )
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(
                f"the gateway exited with code {proc.returncode}; see {settings.state_dir / LOG_FILE}"
            )
        if healthy(port, 0.5):
            running = read_running(settings.state_dir)
            if running is not None:
                return running
        time.sleep(0.1)
    stop_pid(proc.pid)
    raise RuntimeError(
        f"the gateway did not become healthy in {wait_s:.0f} s; see {settings.state_dir / LOG_FILE}"
    )


def _server_command(settings: Settings, port: int, parent_pid: int = 0) -> list[str]:
    follow = ["--parent-pid", str(parent_pid)] if parent_pid else []
    return [
        sys.executable,
        "-m",
        "kennel.cloud.server",
        "--state-dir",
        str(settings.state_dir),
        "--port",
        str(port),
        "--region",
        settings.region,
        "--time-scale",
        str(settings.time_scale_s),
        *follow,
    ]


def _gateway_environment(settings: Settings) -> dict[str, str]:
    from kennel.cloud.sealing import without_secrets

    env = without_secrets(os.environ)
    if settings.allow_local_model_data:  # a setting not carried by the command line
        env["KENNEL_ALLOW_LOCAL_MODEL_DATA"] = ":".join(str(d) for d in settings.allow_local_model_data)
    return env


def stop_pid(pid: int, *, grace_s: float = 10.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def stop(state_dir: Path) -> Running | None:
    running = read_running(state_dir)
    if running is not None:
        stop_pid(running.pid)
    with contextlib.suppress(OSError):
        (state_dir / RUNTIME_FILE).unlink()
    return running


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Kennel gateway in the foreground.")
    parser.add_argument("--state-dir", type=Path, default=None)
    parser.add_argument("--port", type=int, default=None)
    parser.add_argument("--region", default=None)
    parser.add_argument("--time-scale", type=float, default=None, help="seconds in one simulated minute")
    parser.add_argument("--parent-pid", type=int, default=0, help="stop when this parent process is gone")
    args = parser.parse_args(argv)
    overrides = {"region": args.region, "time_scale_s": args.time_scale}
    try:
        settings = Settings.from_env(state_dir=args.state_dir, port=args.port, **overrides)
        serve(settings, parent_pid=args.parent_pid)
    except KeyboardInterrupt:
        # Ctrl-C after a clean shutdown (uvicorn re-raises it once it has stopped): the shell's code,
        # not a death by signal. `kennel up` in the foreground re-executes into this module when it
        # drops credential-like variables, so this is its exit too.
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
