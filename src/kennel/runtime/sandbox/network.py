"""Network namespaces for sandboxes, made and held by the relay process (see ``relay.py``)."""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
import threading
from pathlib import Path

log = logging.getLogger("kennel.sandbox")


class SandboxNetwork:
    """A network namespace that one or more sandboxes join: only ``lo``, the gateway relayed in at
    ``127.0.0.1:<gateway port>``, and each other (the hosts of one training job). ``close()`` it when
    every sandbox in it is done; processes still inside keep the namespace alive until they end."""

    def __init__(self, relay: RelayProcess, ident: int, netns_path: str, label: str) -> None:
        self._relay = relay
        self.ident = ident
        self.netns_path = netns_path  # what ``nsenter --net=`` opens
        self.label = label
        self.closed = False

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._relay.drop(self.ident)

    def __enter__(self) -> SandboxNetwork:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SandboxNetwork({self.label!r}, {self.netns_path})"


class RelayError(RuntimeError):
    pass


class RelayProcess:
    """The relay child, started on first use; one request at a time over its stdin and stdout."""

    def __init__(self, socket_path: Path, port: int) -> None:
        self.socket_path = socket_path
        self.port = port
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()

    def _ensure(self) -> subprocess.Popen:
        if self._proc is not None and self._proc.poll() is None:
            return self._proc
        if self._proc is not None:
            log.error("the sandbox relay exited with code %s; starting a new one", self._proc.returncode)
        if not self.port:
            raise RelayError("the sandbox needs the gateway's port (0 was given)")
        proc = subprocess.Popen(
            [sys.executable, "-s", "-m", "kennel.runtime.sandbox.relay",
             "--socket", str(self.socket_path), "--port", str(self.port)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            start_new_session=True,  # a Ctrl-C meant for the gateway must not cut its sandboxes off first
            env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8", "PYTHONPATH": _kennel_root()},
        )  # fmt: skip
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "ready":
            proc.kill()
            proc.wait()
            raise RelayError("the sandbox relay did not start (see the gateway log)")
        self._proc = proc
        return proc

    def _ask(self, command: str) -> list[str]:
        with self._lock:
            proc = self._ensure()
            assert proc.stdin is not None and proc.stdout is not None
            try:
                proc.stdin.write(command + "\n")
                proc.stdin.flush()
                answer = proc.stdout.readline().split()
            except (OSError, ValueError) as exc:
                raise RelayError(f"the sandbox relay failed: {exc}") from exc
        if not answer or answer[0] != "ok":
            raise RelayError("the sandbox relay refused: " + (" ".join(answer[1:]) or "no answer"))
        return answer[1:]

    def new(self, label: str) -> SandboxNetwork:
        ident, path = self._ask("new")
        return SandboxNetwork(self, int(ident), path, label)

    def drop(self, ident: int) -> None:
        if self._proc is None or self._proc.poll() is not None:
            return  # its namespaces went with it
        try:
            self._ask(f"drop {ident}")
        except RelayError as exc:
            log.warning("dropping sandbox network %s: %s", ident, exc)

    def close(self) -> None:
        with self._lock:
            proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            assert proc.stdin is not None
            proc.stdin.close()  # the relay exits when its stdin closes
        try:
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _kennel_root() -> str:
    import kennel

    return str(Path(kennel.__file__).resolve().parent.parent)
