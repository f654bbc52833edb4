"""What the platform itself writes: START/END/REPORT lines, stream names, and its error payloads.

Formats follow the Lambda developer guide (python-logging) and what AWS returns for timeouts and
crashed runtimes (aws-semantics.md §2). REPORT fields are tab-separated as CloudWatch stores them;
``Init Duration`` appears only on the first request an on-demand environment serves.
"""

from __future__ import annotations

import base64
import math
import signal
import time
import uuid

TAIL_BYTES = 4096
SYNC_PAYLOAD_LIMIT = 6 * 1024 * 1024
ASYNC_PAYLOAD_LIMIT = 1024 * 1024
RESPONSE_LIMIT = SYNC_PAYLOAD_LIMIT


def stream_name(version: str, now: float | None = None) -> str:
    """``YYYY/MM/DD/[$LATEST]<32 hex>``: one stream per environment."""
    day = time.strftime("%Y/%m/%d", time.gmtime(time.time() if now is None else now))
    return f"{day}/[{version}]{uuid.uuid4().hex}"


def start_line(request_id: str, version: str) -> str:
    return f"START RequestId: {request_id} Version: {version}"


def end_line(request_id: str) -> str:
    return f"END RequestId: {request_id}"


def report_line(
    request_id: str,
    duration_ms: float,
    memory_mb: int,
    max_memory_mb: int,
    init_ms: float | None = None,
    status: str | None = None,
    error_type: str | None = None,
) -> str:
    parts = [
        f"REPORT RequestId: {request_id}",
        f"Duration: {duration_ms:.2f} ms",
        f"Billed Duration: {billed_ms(duration_ms)} ms",
        f"Memory Size: {memory_mb} MB",
        f"Max Memory Used: {max_memory_mb} MB",
    ]
    if init_ms is not None:
        parts.append(f"Init Duration: {init_ms:.2f} ms")
    if status is not None:
        parts.append(f"Status: {status}")
    if error_type is not None:
        parts.append(f"Error Type: {error_type}")
    return "\t".join(parts) + "\t"


def billed_ms(duration_ms: float) -> int:
    """Lambda bills in 1 ms increments, rounding up."""
    return max(1, math.ceil(duration_ms))


def timeout_line(request_id: str, timeout_s: float, now: float) -> str:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    return f"{stamp} {request_id} Task timed out after {timeout_s:.2f} seconds"


def timeout_error(request_id: str, timeout_s: float) -> dict:
    return {
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
        "errorType": "Sandbox.Timedout",
    }


def exit_error(request_id: str | None, returncode: int | None, *, out_of_memory: bool = False) -> dict:
    """A runtime that died (exit, signal, or killed for exceeding its memory)."""
    prefix = f"RequestId: {request_id} " if request_id else ""
    return {
        "errorMessage": f"{prefix}Error: Runtime exited with error: {exit_reason(returncode)}",
        "errorType": "Runtime.OutOfMemory" if out_of_memory else "Runtime.ExitError",
    }


def response_too_large(size: int) -> dict:
    return {
        "errorMessage": f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({RESPONSE_LIMIT} bytes).",
        "errorType": "Function.ResponseSizeTooLarge",
    }


_SIGNAL_WORDS = {
    signal.SIGKILL: "killed",
    signal.SIGSEGV: "segmentation fault",
    signal.SIGABRT: "aborted",
    signal.SIGTERM: "terminated",
    signal.SIGBUS: "bus error",
    signal.SIGILL: "illegal instruction",
    signal.SIGFPE: "floating point exception",
}


def exit_reason(returncode: int | None) -> str:
    """How the Go runtime AWS uses words a process's end ("exit status 1", "signal: killed")."""
    if returncode is None:
        return "signal: killed"
    if returncode < 0:
        try:
            sig = signal.Signals(-returncode)
        except ValueError:
            return f"signal {-returncode}"
        return f"signal: {_SIGNAL_WORDS.get(sig, sig.name.lower())}"
    return f"exit status {returncode}"


def tail(log_text: str) -> str:
    """X-Amz-Log-Result: the last 4 KB of the invocation's log, base64."""
    data = log_text.encode("utf-8")[-TAIL_BYTES:]
    return base64.b64encode(data).decode()


def log_events(text: str, when: float) -> list[tuple[float, str]]:
    """Split captured output into CloudWatch events, one per line as the runtime's stdout gives them.

    Only newlines split: the runtime joins a traceback's lines with carriage returns to keep it one event.
    """
    return [(when, line) for line in text.split("\n") if line.strip()]
