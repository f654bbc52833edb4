"""What tests see of sandboxed model servers from the host.

Inside its sandbox every model server is PID 2, so a script cannot say which host process it is. It
writes a token to its private /tmp instead, and the host reads it at ``/proc/<pid>/root/tmp/...``.
"""

from __future__ import annotations

import os
from pathlib import Path

from kennel.runtime.endpoints.contract import SERVER_MODULE

TOKEN_FILE = "/tmp/instance-token"
# Pasted into test scripts: a token per process, written once where the host can read it.
TOKEN_CODE = f"""
def instance_token():
    import os, uuid
    if not os.path.exists({TOKEN_FILE!r}):
        with open({TOKEN_FILE!r}, "w") as fh:
            fh.write(uuid.uuid4().hex)
    with open({TOKEN_FILE!r}) as fh:
        return fh.read()
"""


def model_servers(state_dir: Path, environ_has: str | None = None) -> set[int]:
    """Host PIDs of this gateway's model-server processes (not bwrap's monitor and reaper, which carry
    the same command line), optionally only those whose environment holds ``environ_has``."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            exe = os.readlink(entry / "exe")
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        ours = SERVER_MODULE.encode() in cmdline and str(state_dir).encode() in cmdline
        if not ours or not Path(exe).name.startswith("python"):
            continue
        if environ_has is None or environ_has.encode() in environ:
            found.add(int(entry.name))
    return found


def token(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/root{TOKEN_FILE}").read_text()
    except OSError:
        return None
