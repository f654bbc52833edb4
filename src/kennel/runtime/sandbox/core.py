"""``Sandbox``: the one way a process that runs user code is started.

A confined spawn is one ``Popen`` of this chain, each step ``exec``-ing the next, so the Popen's PID
stays the same process throughout and no helper lingers:

    sh (joins the sandbox's cgroups) → nsenter --net (its network namespace) → prlimit (rlimits) → bwrap

bwrap keeps running outside as the monitor; inside its PID namespace its own reaper is PID 1 and the
user's command PID 2. Signals: bwrap forwards none, and SIGTERM would kill the monitor and so (through
``--die-with-parent``) everything inside with SIGKILL, with no grace. :class:`SandboxProcess` therefore
delivers ``terminate()`` to the user's main process itself, and ``kill()`` to PID 1 of the namespace
first, which makes the kernel kill every process inside; bwrap then exits, so once the Popen is waited
the whole sandbox is gone. A command killed by a signal shows as ``128 + signal`` (bwrap's convention);
``SandboxProcess.exit_status`` turns that back into Popen's negative form.

``--die-with-parent`` is relative to the *thread* that forked (PR_SET_PDEATHSIG), so spawns run on this
object's own long-lived threads, never on a short-lived request or deployment thread.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
import selectors
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from kennel.runtime.loop import consumer_loop
from kennel.runtime.sandbox.limits import Cgroups, Group
from kennel.runtime.sandbox.network import RelayProcess, SandboxNetwork
from kennel.runtime.sandbox.spec import (
    Layout,
    SandboxSpec,
    base_environment,
    bwrap_argv,
    hosts_file,
    limit_argv,
)

log = logging.getLogger("kennel.sandbox")

GATEWAY_SOCKET = "gateway.sock"  # under the state directory; the gateway listens here too
UNCONFINED_NOTE = "KENNEL_SANDBOX=off: user code runs unconfined (no sandbox)"
_JOIN_CGROUPS = 'while [ "$1" != -- ]; do echo $$ > "$1" || exit 125; shift; done; shift; exec "$@"'


class SandboxUnavailable(RuntimeError):
    """bubblewrap cannot run here and ``KENNEL_SANDBOX=off`` was not chosen."""


def gateway_socket(state_dir: Path) -> Path:
    """Where the gateway listens for sandboxes: in the state directory, unless that path is too long
    for a Unix socket (108 bytes), then in a private directory named after it."""
    path = Path(state_dir) / GATEWAY_SOCKET
    if len(str(path)) < 100:
        return path
    digest = hashlib.sha256(str(state_dir).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"kennel-{os.getuid()}" / f"{digest}.sock"


class SandboxProcess(subprocess.Popen):
    """A Popen whose signals reach the sandbox as documented in the module docstring."""

    confined = True
    group: Group | None = None
    label = ""
    killed_by_owner = False  # a SIGKILL from Kennel (a timeout, a stop), not from the OOM killer

    def send_signal(self, sig: int) -> None:
        if self.returncode is not None or not self.confined:
            if self.returncode is None and sig == signal.SIGKILL:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(self.pid, signal.SIGKILL)  # unconfined: its whole session
            return super().send_signal(sig)
        inits = _children(self.pid)
        mains = [pid for init in inits for pid in _children(init)]
        if sig != signal.SIGKILL and mains:
            for pid in mains:
                _signal(pid, sig)
            return
        # Killing (or signalling a command that has not started: nothing could catch it yet).
        if inits and not any(_running(pid) for pid in mains):
            # The command has ended and bwrap's PID 1 is passing its status on: let it, so that an
            # exit status is not turned into "killed".
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(timeout=0.5)
                return
        self._kill_all()

    def _kill_all(self) -> None:
        """SIGKILL to PID 1 of the namespace: the kernel kills all inside, and bwrap exits only after
        it has reaped PID 1, which happens only once every process inside is gone (killing bwrap too
        would end the owner's wait before that). bwrap is held stopped while its children are read, so
        it cannot clone a PID 1 between the lookup and the kill: one orphaned during its setup would
        wait forever, out of reach of --die-with-parent."""
        self.killed_by_owner = True
        _signal(self.pid, signal.SIGSTOP)
        _wait_stopped(self.pid)
        inits = _children(self.pid)
        for pid in inits:
            _signal(pid, signal.SIGKILL)
        _signal(self.pid, signal.SIGCONT if inits else signal.SIGKILL)

    def main_pid(self) -> int | None:
        """The user's main process as the host numbers it (None before it started or after it ended)."""
        if not self.confined:
            return self.pid if self.returncode is None else None
        mains = [pid for init in _children(self.pid) for pid in _children(init)]
        return mains[0] if mains else None

    @property
    def exit_status(self) -> int | None:
        """``returncode`` with bwrap's ``128 + n`` for a command killed by signal n read back as ``-n``."""
        code = self.returncode
        if code is not None and self.confined and 128 < code < 128 + signal.NSIG:
            return 128 - code
        return code

    def out_of_memory(self) -> bool:
        if self.group is None:
            return False
        if self.group.out_of_memory():
            return True
        if self.exit_status != -signal.SIGKILL or not self.group.hit_limit():
            return False
        if not self.killed_by_owner:
            return True  # a SIGKILL nobody in Kennel sent, in a group that reached its limit
        # Kennel's own kill (its owner saw the pipes close) can race the OOM killer's.
        return self.group.settled_out_of_memory()


class Sandbox:
    def __init__(self, *, gateway_port: int, state_dir: Path, enabled: bool = True) -> None:
        self.gateway_port = gateway_port
        self.state_dir = Path(state_dir)
        self.enabled = enabled
        self._closed = False
        self._spawner = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sandbox-spawn")
        self._watch_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = os.pipe()
        self._selector.register(self._wake_r, selectors.EVENT_READ, None)
        # Exited processes' cleanups (network namespaces, cgroups, scratch space) run on the one
        # never-die loop: a cleanup that fails is logged and the next exit is still handled.
        self._reaper = consumer_loop("sandbox-reaper", self._exited, _run_all, interrupt=self._nudge)
        self._reaper.start()
        python_bin = str(Path(sys.executable).parent)
        self._path = (python_bin,)
        if not enabled:
            log.warning(UNCONFINED_NOTE)
            self.cgroups: Cgroups | None = None
            self._relay: RelayProcess | None = None
            return
        bwrap = shutil.which("bwrap") or "/usr/bin/bwrap"
        self._nsenter = shutil.which("nsenter") or "/usr/bin/nsenter"
        # The interpreter, its libraries and Kennel's own code (user code runs Kennel's bootstraps);
        # not the rest of sys.path, which starts with whatever directory the gateway was run from.
        site = [p for p in sys.path if p.endswith(("site-packages", "dist-packages"))]
        python_dirs = [sys.prefix, sys.base_prefix, sys.exec_prefix, _kennel_root(), *site]
        self.layout = Layout.detect(self.state_dir, [p for p in python_dirs if p], bwrap)
        self.cgroups = Cgroups()
        self._relay = RelayProcess(gateway_socket(self.state_dir), gateway_port)
        log.info("user code runs sandboxed (bubblewrap; %s)", self.cgroups.describe())

    @classmethod
    def from_environment(
        cls, *, gateway_port: int, state_dir: Path, env: Mapping[str, str] | None = None
    ) -> Sandbox:
        env = os.environ if env is None else env
        mode = env.get("KENNEL_SANDBOX", "on").strip().lower()
        if mode == "off":
            return cls(gateway_port=gateway_port, state_dir=state_dir, enabled=False)
        if mode not in ("", "on", "1", "true"):
            raise SandboxUnavailable(f"KENNEL_SANDBOX={mode!r}: use 'on' (the default) or 'off'")
        problem = probe()
        if problem:
            raise SandboxUnavailable(
                f"user code cannot be sandboxed here: {problem}. Install bubblewrap "
                "(`apt-get install bubblewrap`, or `make venv` as root) or, knowing that user code then "
                "runs unconfined with the gateway's rights, set KENNEL_SANDBOX=off."
            )
        return cls(gateway_port=gateway_port, state_dir=state_dir)

    @property
    def confined(self) -> bool:
        return self.enabled

    @property
    def note(self) -> str | None:
        """A line for ``kennel status`` and log streams when code runs unconfined."""
        return None if self.enabled else UNCONFINED_NOTE

    def network(self, label: str) -> SandboxNetwork:
        if self._relay is None:
            return SandboxNetwork(_NoRelay(), 0, "", label)
        return self._relay.new(label)

    # --- spawning -------------------------------------------------------------------------------------

    def spawn(
        self,
        spec: SandboxSpec,
        *,
        stdin=subprocess.DEVNULL,
        stdout=None,
        stderr=None,
        pass_fds: Sequence[int] = (),
    ) -> SandboxProcess:
        if self._closed:
            raise RuntimeError("the sandbox is closed")
        env = base_environment(spec.env, self._path)
        if not self.enabled:
            cwd = self._host_cwd(spec)
            return self._on_spawner(
                lambda: self._popen(list(spec.argv), env, cwd, stdin, stdout, stderr, pass_fds), spec, []
            )
        cleanups: list[Callable[[], None]] = []
        hosts_fd = None
        try:
            network = spec.network
            if network is None:  # a private namespace, dropped when the process is gone
                network = self.network(spec.label or "private")
                cleanups.append(network.close)
            assert self.cgroups is not None
            group = self.cgroups.create(spec.limits)
            if group is not None:
                cleanups.append(group.remove)
            fds = list(pass_fds)
            if spec.hosts:
                hosts_fd = _data_fd(hosts_file(spec.hosts))
                fds.append(hosts_fd)
            argv = []
            if group is not None:
                argv += ["/bin/sh", "-c", _JOIN_CGROUPS, "sh", *group.procs, "--"]
            argv += [self._nsenter, f"--net={network.netns_path}"]
            argv += limit_argv(
                spec.limits,
                memory_by_cgroup=group is not None and group.memory_dir is not None,
                processes_by_cgroup=self.cgroups.pids,
            )
            argv += bwrap_argv(spec, self.layout, hosts_fd=hosts_fd)
            proc = self._on_spawner(
                lambda: self._popen(argv, env, "/", stdin, stdout, stderr, fds), spec, cleanups, group
            )
        except BaseException:
            _run_all(cleanups)
            raise
        finally:
            if hosts_fd is not None:  # the child has its copy (or there is no child)
                os.close(hosts_fd)
        return proc

    def _popen(self, argv, env, cwd, stdin, stdout, stderr, pass_fds) -> SandboxProcess:
        return SandboxProcess(
            argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr,
            pass_fds=tuple(pass_fds), start_new_session=True, close_fds=True,
        )  # fmt: skip

    def _on_spawner(self, start, spec: SandboxSpec, cleanups, group: Group | None = None) -> SandboxProcess:
        proc = self._spawner.submit(start).result()
        proc.confined, proc.group, proc.label = self.enabled, group, spec.label
        if cleanups:
            self._watch_exit(proc, cleanups)
        return proc

    def _host_cwd(self, spec: SandboxSpec) -> str:
        """Unconfined, mounts are not made: a cwd inside a mount target is read at the mount's source."""
        for mount in sorted(spec.mounts, key=lambda m: -len(m.target)):
            if spec.cwd == mount.target or spec.cwd.startswith(mount.target.rstrip("/") + "/"):
                return str(Path(mount.source) / os.path.relpath(spec.cwd, mount.target))
        return spec.cwd

    # --- cleaning up after processes -------------------------------------------------------------------

    def _watch_exit(self, proc: SandboxProcess, cleanups: list[Callable[[], None]]) -> None:
        pidfd = os.pidfd_open(proc.pid)  # the PID cannot be reused: nobody has waited for it yet
        with self._watch_lock:
            self._selector.register(pidfd, selectors.EVENT_READ, cleanups)
        self._nudge()

    def _nudge(self) -> None:
        """Wake the reaper's select (a new process to watch, or the loop stopping)."""
        os.write(self._wake_w, b"x")

    def _exited(self, timeout_s: float) -> list[Callable[[], None]] | None:
        """The cleanups of processes that exited within ``timeout_s`` (their pidfds became readable)."""
        ready: list[Callable[[], None]] = []
        for key, _ in self._selector.select(timeout_s):
            if key.data is None:
                os.read(self._wake_r, 4096)
                continue
            with self._watch_lock:
                self._selector.unregister(key.fd)
            os.close(key.fd)
            ready.extend(key.data)
        return ready or None

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._reaper.stop(timeout_s=2)  # its last steps still reap what has exited by now
        with self._watch_lock:
            pending = [key for key in self._selector.get_map().values() if key.data is not None]
        for key in pending:
            os.close(key.fd)
            _run_all(key.data)
        self._spawner.shutdown(wait=False)
        if self._relay is not None:
            self._relay.close()
        if self.cgroups is not None:
            self.cgroups.close()


class _NoRelay:
    """Unconfined networks are the host's own; there is nothing to drop."""

    def drop(self, ident: int) -> None:
        pass


@functools.cache
def probe() -> str | None:
    """Why bubblewrap cannot run a sandbox here (None: it can); asked once per process."""
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        return "bwrap (bubblewrap) is not installed"
    if os.geteuid() != 0:
        return "Kennel's sandbox makes network namespaces and cgroups, which needs root; run as root"
    for tool in ("nsenter", "prlimit"):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    try:
        result = subprocess.run(
            [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--unshare-pid",
             "--unshare-net", "--unshare-ipc", "--cap-drop", "ALL", "--", "/bin/true"],
            capture_output=True, timeout=20, text=True,
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap failed to run: {exc}"
    if result.returncode != 0:
        return f"bwrap failed: {result.stderr.strip() or f'exit status {result.returncode}'}"
    return None


def _children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(x) for x in fh.read().split()]
    except (OSError, ValueError):
        return []


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive and not on its way out (a zombie, or PF_EXITING: its files, pipes
    included, may already be closed while it is still listed)."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    return fields[0] not in ("Z", "X") and not int(fields[6]) & 0x4


def _wait_stopped(pid: int, limit_s: float = 0.2) -> None:
    """Until ``pid`` has really stopped (a signal is delivered when the process next runs)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                if fh.read().rsplit(")", 1)[1].split()[0] in ("T", "t", "Z", "X"):
                    return
        except (OSError, IndexError):
            return
        time.sleep(0.0005)


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)


def _data_fd(data: bytes) -> int:
    """A pipe's read end holding ``data`` (bwrap copies it into a file inside)."""
    read, write = os.pipe()
    try:
        os.write(write, data)  # small (an /etc/hosts): fits in the pipe's buffer
    finally:
        os.close(write)
    return read


def _run_all(cleanups: Sequence[Callable[[], None]]) -> None:
    for cleanup in cleanups:
        try:
            cleanup()
        except Exception:  # every cleanup gets its turn
            log.exception("sandbox cleanup failed")


def _kennel_root() -> str:
    import kennel

    return str(Path(kennel.__file__).resolve().parent.parent)
