"""What a sandboxed process is (pure data) and the bubblewrap command line that makes it.

Everything here is a pure function of a :class:`SandboxSpec` and a :class:`Layout` (what the host looks
like: which directories to hide, which to show again, which devices exist), so the unit tests check the
exact ``bwrap`` argv without starting anything.

Order matters to bubblewrap: later mounts go on top of earlier ones. The system is bound read-only,
then the private directories are hidden under empty tmpfs mounts, then the Python installation is
shown again where it lives under a hidden directory (pyenv keeps it in ``/root``), and only then are the
spec's mounts bound, so a mount whose source lies inside the hidden state directory still appears at
its target.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kennel.runtime.sandbox.network import SandboxNetwork

# Directories that are always a fresh tmpfs inside: /run holds the host's sockets (container runtimes,
# systemd), /opt is where SageMaker containers expect /opt/ml, /var/tmp is a second host scratch area.
_FRESH_DIRS = ("/run", "/opt", "/var/tmp", "/dev/shm")
# Host files that are readable by uid 0 even without capabilities; replaced by an empty file.
_BLANKED_FILES = ("/etc/shadow", "/etc/gshadow", "/etc/shadow-", "/etc/gshadow-")
_BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
MB = 1024 * 1024


@dataclass(frozen=True)
class Mount:
    """A host path visible inside the sandbox."""

    source: Path  # host path (file or directory)
    target: str  # absolute path inside the sandbox (e.g. "/opt/ml/model")
    writable: bool = False


@dataclass(frozen=True)
class Limits:
    """Resource limits. Memory is a cgroup limit where one can be made (see ``limits.py``)."""

    memory_mb: int | None = None
    cpu_seconds: int | None = None
    max_processes: int | None = None
    max_file_mb: int | None = None
    tmp_mb: int = 512  # size of the private /tmp (Lambda: 512 MB by default)


@dataclass
class SandboxSpec:
    argv: Sequence[str]
    env: Mapping[str, str]  # added on top of a minimal allow-listed base (see ``base_environment``)
    cwd: str  # inside the sandbox
    mounts: Sequence[Mount] = ()
    limits: Limits = Limits()
    network: SandboxNetwork | None = None  # None: a private network namespace for this process alone
    hosts: Mapping[str, str] = field(default_factory=dict)  # extra /etc/hosts entries: name → address
    label: str = ""  # for logs and diagnostics
    hostname: str = "localhost"  # inside its own UTS namespace (a training host may want "algo-1")


@dataclass(frozen=True)
class Layout:
    """The host as the sandbox sees it; built once per :class:`Sandbox` (``Layout.detect``)."""

    hidden: tuple[str, ...]  # directories replaced by an empty tmpfs
    shown: tuple[str, ...]  # directories under a hidden one bound back read-only (the Python install)
    devices: tuple[str, ...] = ()  # host device nodes passed through (GPUs)
    blanked: tuple[str, ...] = ()  # host files replaced by an empty one
    bwrap: str = "/usr/bin/bwrap"

    @classmethod
    def detect(cls, state_dir: Path, python_dirs: Sequence[str | Path], bwrap: str) -> Layout:
        home = str(Path.home())
        hidden = _dedupe([str(Path(state_dir).resolve()), home, "/root", "/home"])
        hidden = tuple(d for d in hidden if Path(d).is_dir())
        shown = []
        for raw in python_dirs:
            path = str(Path(raw).resolve())
            if Path(path).exists() and _under_any(path, (*hidden, *_FRESH_DIRS, "/tmp")):
                shown.append(path)
        devices = tuple(sorted(str(p) for p in Path("/dev").glob("nvidia*")))
        blanked = tuple(f for f in _BLANKED_FILES if Path(f).is_file())
        return cls(tuple(hidden), tuple(_dedupe(shown)), devices, blanked, bwrap)


def base_environment(spec_env: Mapping[str, str], extra_path: Sequence[str] = ()) -> dict[str, str]:
    """The allow-listed environment: nothing from the gateway's own environment leaks in."""
    env = {
        "PATH": ":".join([*extra_path, _BASE_PATH]),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": "/tmp",
        "TMPDIR": "/tmp",
        "TZ": "UTC",
        "PYTHONUNBUFFERED": "1",
        "PYTHONDONTWRITEBYTECODE": "1",  # the code directories are read-only
    }
    env.update(spec_env)
    return env


def hosts_file(hosts: Mapping[str, str]) -> bytes:
    lines = ["127.0.0.1 localhost", "::1 localhost ip6-localhost ip6-loopback"]
    lines += [f"{address} {name}" for name, address in hosts.items()]
    return ("\n".join(lines) + "\n").encode()


def bwrap_argv(spec: SandboxSpec, layout: Layout, *, hosts_fd: int | None = None) -> list[str]:
    """The ``bwrap`` command line for ``spec`` (the network namespace is joined before, by nsenter)."""
    _check(spec)
    argv = [layout.bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
    for device in layout.devices:
        argv += ["--dev-bind", device, device]
    argv += ["--size", str(spec.limits.tmp_mb * MB), "--tmpfs", "/tmp"]
    for directory in (*_FRESH_DIRS, *layout.hidden):
        argv += ["--tmpfs", directory]
    for blank in layout.blanked:
        argv += ["--ro-bind", "/dev/null", blank]
    for directory in layout.shown:
        argv += ["--ro-bind", directory, directory]
    for mount in sorted(spec.mounts, key=lambda m: len(PurePosixPath(m.target).parts)):
        argv += ["--bind" if mount.writable else "--ro-bind", str(mount.source), mount.target]
    if hosts_fd is not None:
        argv += ["--ro-bind-data", str(hosts_fd), "/etc/hosts"]
    argv += [
        "--chdir", spec.cwd,
        "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--hostname", spec.hostname,
        "--die-with-parent", "--new-session",
        "--cap-drop", "ALL",  # root inside without capabilities: it cannot unmount what hides the host
        "--",
        *spec.argv,
    ]  # fmt: skip
    return argv


def limit_argv(limits: Limits, *, memory_by_cgroup: bool, processes_by_cgroup: bool) -> list[str]:
    """``prlimit`` options for the limits no cgroup enforces (empty when there are none)."""
    options = []
    if limits.cpu_seconds is not None:
        options.append(f"--cpu={limits.cpu_seconds}")
    if limits.max_file_mb is not None:
        options.append(f"--fsize={limits.max_file_mb * MB}")
    if limits.max_processes is not None and not processes_by_cgroup:
        options.append(f"--nproc={limits.max_processes}")  # not enforced for root: cgroups preferred
    if limits.memory_mb is not None and not memory_by_cgroup:
        # RLIMIT_DATA counts heap and private mappings, not the address space torch reserves; the
        # headroom lets a process use about its limit in resident memory before allocations fail.
        options.append(f"--data={data_limit_bytes(limits.memory_mb)}")
    return ["prlimit", *options, "--"] if options else []


def data_limit_bytes(memory_mb: int) -> int:
    return int(memory_mb * 1.25 + 64) * MB


def _check(spec: SandboxSpec) -> None:
    if not spec.argv:
        raise ValueError("a sandboxed process needs a command")
    for mount in spec.mounts:
        if not PurePosixPath(mount.target).is_absolute() or ".." in PurePosixPath(mount.target).parts:
            raise ValueError(f"mount target {mount.target!r} must be an absolute path without '..'")
        if not Path(mount.source).exists():
            raise ValueError(f"mount source {mount.source} does not exist")
    if not PurePosixPath(spec.cwd).is_absolute():
        raise ValueError(f"cwd {spec.cwd!r} must be an absolute path inside the sandbox")
    for name, address in spec.hosts.items():
        if not name or any(c.isspace() for c in name + address):
            raise ValueError(f"bad /etc/hosts entry {name!r} → {address!r}")


def _under_any(path: str, roots: Sequence[str]) -> bool:
    return any(path == root or path.startswith(root.rstrip("/") + "/") for root in roots)


def _dedupe(items: Sequence[str]) -> list[str]:
    seen: list[str] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen
