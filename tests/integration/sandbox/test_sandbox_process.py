"""The sandbox's process semantics, without a gateway: signals, kill, network, limits, visibility.

A plain Unix-socket server stands in for the gateway, so these run in a second or two each.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kennel.runtime.sandbox import Limits, Mount, Sandbox, SandboxSpec, gateway_socket
from kennel.runtime.sandbox.core import probe

pytestmark = pytest.mark.skipif(probe() is not None, reason=f"no sandbox here: {probe()}")


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    state = tmp_path_factory.mktemp("sandbox") / "state"
    state.mkdir()
    (state / "kennel.db").write_text("secret")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(gateway_socket(state)))
    server.listen()

    def answer() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            conn.sendall(b"gateway says hi")
            conn.close()

    threading.Thread(target=answer, daemon=True).start()
    yield state
    server.close()


@pytest.fixture(scope="module")
def sandbox(state: Path) -> Iterator[Sandbox]:
    box = Sandbox.from_environment(gateway_port=free_port(), state_dir=state)
    yield box
    box.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(sandbox: Sandbox, code: str, **spec) -> tuple[int, str]:
    spec.setdefault("cwd", "/")
    proc = sandbox.spawn(
        SandboxSpec(argv=[sys.executable, "-c", code], env=spec.pop("env", {}), **spec),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out.decode()


def test_gateway_reachable_and_nothing_else(sandbox: Sandbox, state: Path) -> None:
    outside = socket.socket()
    outside.bind(("127.0.0.1", 0))
    outside.listen()
    code = f"""
import json, os, socket
def connect(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            return s.recv(100).decode()
    except OSError as exc:
        return type(exc).__name__
print(json.dumps({{"gateway": connect({sandbox.gateway_port}), "other": connect({outside.getsockname()[1]}),
                  "state": os.path.exists({str(state)!r} + "/kennel.db"), "pid": os.getpid(),
                  "env": sorted(os.environ)}}))
"""
    code_rc, out = run(sandbox, code, env={"MINE": "1"})
    outside.close()
    assert code_rc == 0, out
    seen = json.loads(out)
    assert seen["gateway"] == "gateway says hi"
    assert seen["other"] == "ConnectionRefusedError"
    assert seen["state"] is False and seen["pid"] == 2
    assert "MINE" in seen["env"] and not {"AWS_ACCESS_KEY_ID", "PYTHONPATH", "VIRTUAL_ENV"} & set(seen["env"])


def test_mount_from_inside_the_hidden_state_dir(sandbox: Sandbox, state: Path) -> None:
    model = state / "jobs" / "a" / "model"
    model.mkdir(parents=True)
    code = "open('/opt/ml/model/out.txt', 'w').write('saved'); import os; print(os.listdir('/opt/ml'))"
    rc, out = run(sandbox, code, mounts=[Mount(model, "/opt/ml/model", writable=True)], cwd="/opt/ml/model")
    assert rc == 0, out
    assert (model / "out.txt").read_text() == "saved"


def test_terminate_reaches_the_script_and_kill_ends_everything(sandbox: Sandbox) -> None:
    code = """
import os, signal, sys, time
def bye(signum, frame):
    print("saving", flush=True); sys.exit(7)
signal.signal(signal.SIGTERM, bye)
print("ready", flush=True)
time.sleep(60)
"""
    proc = sandbox.spawn(
        SandboxSpec(argv=[sys.executable, "-c", code], env={}, cwd="/"), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    proc.terminate()
    assert proc.wait(timeout=10) == 7 and proc.stdout.read() == b"saving\n"

    forker = (
        "import subprocess, sys, time; subprocess.Popen(['sleep', '300']); "
        "print('ready', flush=True); time.sleep(300)"
    )
    proc = sandbox.spawn(
        SandboxSpec(argv=[sys.executable, "-c", forker], env={}, cwd="/"), stdout=subprocess.PIPE
    )
    assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    init = subprocess.check_output(["cat", f"/proc/{proc.pid}/task/{proc.pid}/children"]).split()
    inside = subprocess.check_output(["cat", f"/proc/{int(init[0])}/task/{int(init[0])}/children"]).split()
    main = int(inside[0])
    grandchild = int(Path(f"/proc/{main}/task/{main}/children").read_text().split()[0])
    proc.kill()
    proc.wait(timeout=10)
    assert proc.exit_status == -9
    for pid in (int(init[0]), main, grandchild):
        assert not Path(f"/proc/{pid}").exists(), f"{pid} survived"


def test_hosts_of_one_network_reach_each_other(sandbox: Sandbox) -> None:
    port = free_port()
    server = f"""
import socket
s = socket.create_server(("0.0.0.0", {port})); print("listening", flush=True)
c, _ = s.accept(); c.sendall(b"rendezvous"); c.close()
"""
    client = f"""
import socket, time
for _ in range(100):
    try:
        print(socket.create_connection(("algo-1", {port})).recv(100).decode()); break
    except OSError:
        time.sleep(0.05)
"""
    hosts = {"algo-1": "127.0.0.1", "algo-2": "127.0.0.1"}
    with sandbox.network("job") as network:
        first = sandbox.spawn(
            SandboxSpec(argv=[sys.executable, "-c", server], env={}, cwd="/", network=network, hosts=hosts),
            stdout=subprocess.PIPE,
        )
        assert first.stdout is not None and first.stdout.readline() == b"listening\n"
        out = run(sandbox, client, network=network, hosts=hosts)[1]
        first.wait(timeout=10)
    assert out.strip() == "rendezvous"
    # Another namespace (a private one) does not see the job's port.
    rc, out = run(sandbox, f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=1)")
    assert rc != 0 and "ConnectionRefusedError" in out


def test_memory_limit_and_file_limit(sandbox: Sandbox) -> None:
    hog = "x = bytearray(400 * 1024 * 1024); x[::4096] = b'1' * len(x[::4096]); print('survived')"
    proc = sandbox.spawn(
        SandboxSpec(argv=[sys.executable, "-c", hog], env={}, cwd="/", limits=Limits(memory_mb=128)),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = proc.communicate(timeout=60)
    assert b"survived" not in out and proc.returncode != 0
    if sandbox.cgroups is not None and sandbox.cgroups.memory:
        assert proc.exit_status == -9 and proc.out_of_memory()
    rc, out = run(sandbox, "open('/tmp/big', 'wb').write(b'x' * (3 << 20))", limits=Limits(max_file_mb=1))
    assert rc != 0
    rc, out = run(sandbox, "open('/tmp/ok', 'wb').write(b'x' * (3 << 20))", limits=Limits(tmp_mb=2))
    assert rc != 0 and "No space left" in out


def test_cannot_write_outside_or_signal_outside(sandbox: Sandbox, state: Path) -> None:
    code = f"""
import os, json
results = {{}}
for path in ("/usr/evil", "{Path(sys.executable).parent}/evil", "/etc/evil"):
    try:
        open(path, "w").write("x"); results[path] = "written"
    except OSError as exc:
        results[path] = type(exc).__name__
try:
    os.kill({__import__("os").getpid()}, 9); results["kill"] = "sent"
except OSError as exc:
    results["kill"] = type(exc).__name__
print(json.dumps(results))
"""
    out = run(sandbox, code)[1]
    results = json.loads(out)
    assert "written" not in results.values() and results["kill"] == "ProcessLookupError"


def test_spawn_cost(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    for _ in range(5):
        assert run(sandbox, "pass")[0] == 0
    per_spawn = (time.perf_counter() - started) / 5
    assert per_spawn < 1.0


def test_sandboxes_die_with_a_killed_gateway(tmp_path: Path) -> None:
    """SIGKILL of the process that owns the Sandbox (no cleanup runs) still ends everything inside."""
    owner = f"""
import sys, time
from pathlib import Path
from kennel.runtime.sandbox import Sandbox, SandboxSpec
box = Sandbox(gateway_port=1, state_dir=Path({str(tmp_path)!r}))
code = "import subprocess, time; subprocess.Popen(['sleep', '300']); print('up', flush=True); time.sleep(300)"
proc = box.spawn(SandboxSpec(argv=[sys.executable, "-c", code], env={{}}, cwd="/"), stdout=sys.stdout)
time.sleep(300)
"""
    gateway = subprocess.Popen([sys.executable, "-c", owner], stdout=subprocess.PIPE)
    assert gateway.stdout is not None and gateway.stdout.readline() == b"up\n"
    inside = [pid for pid in _descendants(gateway.pid) if b"sleep" in _cmdline(pid)]
    assert inside
    gateway.kill()
    gateway.wait()
    deadline = time.monotonic() + 10
    while any(Path(f"/proc/{pid}").exists() for pid in inside) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not any(Path(f"/proc/{pid}").exists() for pid in inside)


def _descendants(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):  # children are listed per thread that forked them
        try:
            children += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return children + [d for child in children for d in _descendants(child)]


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def test_killing_right_at_start_leaves_nothing_behind(sandbox: Sandbox) -> None:
    """kill()/terminate() at any moment of bwrap's setup: no namespace PID 1 is orphaned."""
    marker = f"marker-{time.monotonic_ns()}"
    for i in range(30):
        proc = sandbox.spawn(
            SandboxSpec(
                argv=[sys.executable, "-c", f"import time; time.sleep(60)  # {marker}"], env={}, cwd="/"
            )
        )
        time.sleep((i % 10) * 0.002)  # land anywhere from before the clone to after the exec
        proc.terminate() if i % 2 else proc.kill()
        proc.wait(timeout=10)
    deadline = time.monotonic() + 5
    while left := [p for p in Path("/proc").glob("[0-9]*") if marker.encode() in _cmdline(int(p.name))]:
        assert time.monotonic() < deadline, f"left behind: {left}"
        time.sleep(0.05)
