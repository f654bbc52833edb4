"""One execution environment: a child process running ``bootstrap``, driven over two pipes.

The process is started through the :class:`~kennel.runtime.sandbox.Sandbox`: it sees the function's
code directory (read-only), the Python installation, its own 512 MB ``/tmp`` (``TMPDIR``/``HOME``) and
the gateway relayed at ``AWS_ENDPOINT_URL``, and nothing of the state directory, the gateway or other
functions. A timeout or ``close()`` kills everything inside. Its stdout and stderr go to a log file at
the descriptor level, so C extensions and subprocesses are captured too. After each invocation the
parent reads what was appended and truncates the file.

Memory: ``MemorySize`` is the sandbox's memory limit (a cgroup: the kernel ends the environment when it
goes over, ``Runtime.OutOfMemory``). Where no cgroup can be made (or unconfined, ``KENNEL_SANDBOX=off``),
the thread waiting for the answer samples the main process's resident set every 50 ms and kills the
environment once it passes ``MemorySize``; ``RLIMIT_AS`` would count the virtual reservations of thread
stacks and arenas and fail a boto3 import far below its real footprint. Max Memory Used comes from the
child's own ``ru_maxrss``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import kennel
from kennel.runtime.functions import reports
from kennel.runtime.functions.ipc import Closed, Expired, FrameReader, write_frame
from kennel.runtime.sandbox import Limits, Mount, Sandbox, SandboxProcess, SandboxSpec

INIT_LIMIT_S = 10.0  # AWS caps the Init phase of on-demand environments at 10 s
TMP_MB = 512  # Lambda's default ephemeral storage
MAX_PROCESSES = 1024  # Lambda's limit on processes and threads
_PAGE = os.sysconf("SC_PAGE_SIZE")
_KENNEL_ROOT = str(Path(kennel.__file__).resolve().parent.parent)


@dataclass(frozen=True)
class FunctionSpec:
    """What an environment needs to know about the function version it runs."""

    name: str
    version: str  # "$LATEST" or a published number
    revision: str  # changes with code or configuration: older environments are retired
    code_dir: Path
    handler: str
    runtime: str
    timeout_s: int
    memory_mb: int
    role_arn: str
    region: str
    account: str
    endpoint_url: str
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def log_group(self) -> str:
        return f"/aws/lambda/{self.name}"

    @property
    def function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account}:function:{self.name}"


@dataclass
class Outcome:
    """One invocation as the platform saw it."""

    request_id: str
    payload: bytes
    error: dict | None  # the error payload for function errors (the payload carries it too)
    duration_ms: float
    max_memory_mb: int
    init_ms: float | None = None
    status: str | None = None  # REPORT's "Status:" (timeout, error)
    output: str = ""  # what the function wrote during the invocation
    events: list[tuple[float, str]] = field(default_factory=list)  # START … REPORT for CloudWatch

    @property
    def function_error(self) -> str | None:
        return "Unhandled" if self.error is not None else None

    @property
    def log_text(self) -> str:
        return "".join(message + "\n" for _, message in self.events)


class InitFailed(Exception):
    def __init__(self, error: dict, output: str, init_ms: float, max_memory_mb: int, status: str) -> None:
        super().__init__(error.get("errorMessage", ""))
        self.error, self.output, self.init_ms = error, output, init_ms
        self.max_memory_mb, self.status = max_memory_mb, status


class Environment:
    def __init__(
        self,
        spec: FunctionSpec,
        credentials: Mapping[str, str],
        root: Path,
        *,
        sandbox: Sandbox,
        provisioned: bool = False,
        python: str = sys.executable,
    ) -> None:
        self.spec = spec
        self.sandbox = sandbox
        self.provisioned = provisioned
        self.stream = reports.stream_name(spec.version)
        self.dir = Path(root) / uuid.uuid4().hex
        self.tmp = self.dir / "tmp"
        self.tmp.mkdir(parents=True)
        self.log_path = self.dir / "output.log"
        self.init_ms: float | None = None
        self.init_output = ""  # what the Init phase printed; logged before the first START
        self.served = 0
        self.created = time.time()
        self.last_used = time.monotonic()
        self.max_memory_mb = 0
        self._oom = False
        self._dead = False
        parent_read, child_write = os.pipe()
        child_read, parent_write = os.pipe()
        env = self._environ(credentials, child_read, child_write)
        code_dir = str(spec.code_dir)
        sandboxed = SandboxSpec(
            argv=[python, "-s", "-u", "-m", "kennel.runtime.functions.bootstrap"],
            env=env,
            cwd=code_dir,
            mounts=[Mount(Path(code_dir), code_dir)],
            limits=Limits(memory_mb=spec.memory_mb, max_processes=MAX_PROCESSES, tmp_mb=TMP_MB),
            label=f"lambda {spec.name}:{spec.version}",
        )
        try:
            with open(self.log_path, "ab") as log:
                self.process: SandboxProcess = sandbox.spawn(
                    sandboxed, stdout=log, stderr=subprocess.STDOUT, pass_fds=(child_read, child_write)
                )
        finally:
            os.close(child_read)
            os.close(child_write)
        # The kernel enforces MemorySize through the sandbox's cgroup; otherwise _watch samples it.
        self._sampled_memory = not (
            sandbox.confined and sandbox.cgroups is not None and sandbox.cgroups.memory
        )
        self._main_pid: int | None = None
        self._log_fd = os.open(self.log_path, os.O_RDWR)
        self._write_fd = parent_write
        self._reader = FrameReader(parent_read)
        self._started = time.monotonic()

    def _environ(self, credentials: Mapping[str, str], read_fd: int, write_fd: int) -> dict[str, str]:
        spec = self.spec
        env = {
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
            "HOME": "/tmp" if self.sandbox.confined else str(self.tmp),
            "TMPDIR": "/tmp" if self.sandbox.confined else str(self.tmp),
            "PYTHONPATH": _KENNEL_ROOT,
            "LAMBDA_TASK_ROOT": str(spec.code_dir),
            "LAMBDA_RUNTIME_DIR": str(Path(__file__).parent),
            "_HANDLER": spec.handler,
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "AWS_LAMBDA_FUNCTION_NAME": spec.name,
            "AWS_LAMBDA_FUNCTION_VERSION": spec.version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": spec.log_group,
            "AWS_LAMBDA_LOG_STREAM_NAME": self.stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": "provisioned-concurrency" if self.provisioned else "on-demand",
            "AWS_REGION": spec.region,
            "AWS_DEFAULT_REGION": spec.region,
            "AWS_ENDPOINT_URL": spec.endpoint_url,
            "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
            "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
            "AWS_SESSION_TOKEN": credentials["SessionToken"],
            "_KENNEL_LAMBDA_FDS": f"{read_fd},{write_fd}",
        }
        if os.environ.get("LD_LIBRARY_PATH"):
            env["LD_LIBRARY_PATH"] = os.environ["LD_LIBRARY_PATH"]
        env.update(spec.variables)
        return env

    # ----- lifecycle --------------------------------------------------------------------------------
    @property
    def alive(self) -> bool:
        return not self._dead and self.process.poll() is None

    def wait_ready(self, request_id: str | None = None, limit_s: float = INIT_LIMIT_S) -> float:
        """Block until Init finishes; returns its duration (ms) or raises InitFailed (environment dead).

        ``request_id``: the invocation that caused this cold start (None for provisioned environments).
        """
        deadline = self._started + limit_s
        try:
            header, _ = self._reader.read(deadline, self._watch)
        except Expired:
            self.kill()
            error = {
                "errorMessage": f"Init phase timed out after {limit_s:.2f} seconds",
                "errorType": "Sandbox.Timedout",
            }
            raise self._init_failed(error, "timeout") from None
        except Closed:
            self.kill()
            error = reports.exit_error(request_id, self._exit_code(), out_of_memory=self._oom)
            raise self._init_failed(error, "error") from None
        self.init_ms = (time.monotonic() - self._started) * 1000
        self.max_memory_mb = _mb(header.get("maxrss_kb", 0))
        self.init_output = self._take_output()
        if self.sandbox.note:  # every log stream says so when code runs unconfined
            self.init_output = f"{self.sandbox.note}\n{self.init_output}"
        if header.get("type") != "ready":
            self.kill()
            raise self._init_failed(header.get("error") or {}, "error")
        return self.init_ms

    def _init_failed(self, error: dict, status: str) -> InitFailed:
        elapsed = (time.monotonic() - self._started) * 1000
        memory = self.spec.memory_mb if self._oom else self.max_memory_mb
        return InitFailed(error, self._take_output(), elapsed, memory, status)

    def kill(self) -> None:
        if self._dead:
            return
        self._dead = True
        self.process.kill()  # the whole sandbox, processes the function started included
        with contextlib.suppress(OSError):
            os.close(self._write_fd)
        with contextlib.suppress(OSError):
            os.close(self._reader.fd)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def discard(self) -> None:
        """Kill the process and remove its directory (its /tmp goes with it)."""
        self.kill()
        if self._log_fd >= 0:  # kept open until now: a dead environment's last output is still read
            fd, self._log_fd = self._log_fd, -1
            with contextlib.suppress(OSError):
                os.close(fd)
        shutil.rmtree(self.dir, ignore_errors=True)

    def _exit_code(self) -> int | None:
        try:
            self.process.wait(timeout=2)
        except subprocess.TimeoutExpired:
            return None
        if self.process.out_of_memory():
            self._oom = True
        return self.process.exit_status

    def _watch(self) -> None:
        """Called every 50 ms while the child works: the memory limit, where no cgroup enforces it."""
        if not self._sampled_memory:
            return
        if self._main_pid is None:
            self._main_pid = self.process.main_pid()
            if self._main_pid is None:
                return
        try:
            with open(f"/proc/{self._main_pid}/statm", "rb") as statm:
                rss = int(statm.read().split()[1]) * _PAGE
        except (OSError, ValueError, IndexError):
            return
        if rss > self.spec.memory_mb * 1024 * 1024:
            self._oom = True
            self.process.kill()

    def _take_output(self) -> str:
        """What the child appended since the last call; the file is emptied (the child appends with
        O_APPEND, so it keeps writing at the new end). Unchanged size costs one fstat."""
        try:
            size = os.fstat(self._log_fd).st_size
            if not size:
                return ""
            data = os.pread(self._log_fd, size, 0)
            os.ftruncate(self._log_fd, 0)
        except OSError:
            return ""
        return data.decode("utf-8", errors="replace")

    # ----- invocations ------------------------------------------------------------------------------
    def invoke(
        self, request_id: str, payload: bytes, invoked_arn: str, client_context: dict | None = None
    ) -> Outcome:
        spec = self.spec
        started_wall = time.time()
        started = time.monotonic()
        deadline = started + spec.timeout_s
        header = {
            "id": request_id,
            "deadline_ms": int((started_wall + spec.timeout_s) * 1000),
            "arn": invoked_arn,
            "client_context": client_context,
        }
        status = None
        try:
            write_frame(self._write_fd, header, payload)
            answer, body = self._reader.read(deadline, self._watch)
        except Expired:
            self.kill()
            status = "timeout"
            error = reports.timeout_error(request_id, spec.timeout_s)
            body = _dumps(error)
        except Closed:
            self.kill()
            status = "error"
            error = reports.exit_error(request_id, self._exit_code(), out_of_memory=self._oom)
            body = _dumps(error)
        else:
            error = None
            self.max_memory_mb = max(self.max_memory_mb, _mb(answer.get("maxrss_kb", 0)))
            if answer.get("error"):
                error = _json_or_none(body) or {"errorMessage": "", "errorType": "Unknown"}
            elif len(body) > reports.RESPONSE_LIMIT:
                error = reports.response_too_large(len(body))
                body = _dumps(error)
        duration_ms = (time.monotonic() - started) * 1000
        self.served += 1
        self.last_used = time.monotonic()
        memory = spec.memory_mb if self._oom else self.max_memory_mb
        init_ms = self.init_ms if self.served == 1 and not self.provisioned else None
        output = self._take_output()
        ended = time.time()
        events = [(started_wall, reports.start_line(request_id, spec.version))]
        events += reports.log_events(output, ended)
        if status == "timeout":
            events.append((ended, reports.timeout_line(request_id, spec.timeout_s, ended)))
        events.append((ended, reports.end_line(request_id)))
        error_type = error.get("errorType") if status == "error" and error else None
        report = reports.report_line(
            request_id, duration_ms, spec.memory_mb, memory, init_ms, status, error_type
        )
        events.append((ended, report))
        return Outcome(request_id, body, error, duration_ms, memory, init_ms, status, output, events)


def _mb(kilobytes: int) -> int:
    return max(1, round(kilobytes / 1024))


def _dumps(value: dict) -> bytes:
    return json.dumps(value).encode()


def _json_or_none(body: bytes) -> dict | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
