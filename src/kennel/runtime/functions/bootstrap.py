"""The execution-environment process: ``python -m kennel.runtime.functions.bootstrap``.

Started by ``environment.Environment`` with the environment AWS gives a Python function (``_HANDLER``,
``LAMBDA_TASK_ROOT``, ``AWS_LAMBDA_*``, the role's credentials, ``AWS_ENDPOINT_URL`` …) plus two pipe
descriptors in ``_KENNEL_LAMBDA_FDS``. It imports the handler once (the Init phase), reports ready or
the init error, then answers one invocation at a time until the pipe closes. stdout and stderr are the
environment's log file, which the parent cuts per invocation; this process only flushes them before
answering so every line written during an invocation belongs to it.

Error payloads follow the Python runtime interface client: ``errorMessage``, ``errorType``,
``requestId``, ``stackTrace`` (frames of this module left out), ``Runtime.ImportModuleError`` and
friends for handlers that cannot be loaded.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import resource
import sys
import time
import traceback

from kennel.runtime.functions.ipc import Closed, FrameReader, write_frame

_request_id = ""


class Fault(Exception):
    def __init__(self, error_type: str, message: str, trace: list[str] | None = None) -> None:
        super().__init__(message)
        self.error_type, self.message, self.trace = error_type, message, trace or []


class ClientContext:
    """``context.client_context`` for callers that send X-Amz-Client-Context."""

    def __init__(self, data: dict) -> None:
        self.client = data.get("client")
        self.custom = data.get("custom")
        self.env = data.get("env")


class LambdaContext:
    """The handler's second argument, with the attributes the Python runtime documents."""

    def __init__(self, request_id: str, deadline_ms: int, invoked_arn: str, client_context: dict | None):
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = ClientContext(client_context) if client_context else None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext([aws_request_id={self.aws_request_id},function_name={self.function_name},"
            f"function_version={self.function_version},invoked_function_arn={self.invoked_function_arn}])"
        )


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.aws_request_id = _request_id
        return True


class _StdoutHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        sys.stdout.write(self.format(record))


def _setup_logging() -> None:
    # The runtime's text format, so log lines in CloudWatch read as they do on AWS.
    logging.Formatter.converter = time.gmtime
    handler = _StdoutHandler()
    handler.setFormatter(
        logging.Formatter(
            "[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(aws_request_id)s\t%(message)s\n",
            "%Y-%m-%dT%H:%M:%S",
        )
    )
    handler.addFilter(_RequestIdFilter())
    logging.getLogger().addHandler(handler)


def _user_frames(tb) -> list[str]:
    frames = traceback.extract_tb(tb)
    for index, frame in enumerate(frames):
        if not frame.filename.endswith("/bootstrap.py"):
            frames = frames[index:]
            break
    return traceback.format_list(frames)


def load_handler(spec: str):
    try:
        module_name, function_name = spec.rsplit(".", 1)
    except ValueError as exc:
        raise Fault("Runtime.MalformedHandlerName", f"Bad handler '{spec}': {exc}") from None
    if module_name.split(".")[0] in sys.builtin_module_names:
        raise Fault(
            "Runtime.BuiltInModuleConflict", f"Cannot use built-in module {module_name} as a handler module"
        )
    try:
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise Fault("Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}") from None
    except SyntaxError as exc:
        trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
        raise Fault(
            "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module_name}': {exc}", trace
        ) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise Fault("Runtime.HandlerNotFound", f"Handler '{function_name}' missing on module '{module_name}'")
    return handler


def error_payload(error_type: str, message: str, trace: list[str], request_id: str | None) -> dict:
    """The runtime's error document; Init errors have no request yet and say so with ``""``."""
    return {
        "errorMessage": message,
        "errorType": error_type,
        "requestId": request_id or "",
        "stackTrace": trace,
    }


def log_error(error: dict) -> None:
    # One log event per error, as the runtime writes it: lines joined by carriage returns.
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error.get("stackTrace"):
        lines.append("Traceback (most recent call last):")
        lines += [line for item in error["stackTrace"] for line in item.splitlines()]
    sys.stdout.write("\r".join(lines) + "\n")


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()


def _max_rss_kb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def invoke(handler, header: dict, body: bytes) -> tuple[dict, bytes]:
    global _request_id
    request_id = _request_id = header["id"]
    context = LambdaContext(request_id, header["deadline_ms"], header["arn"], header.get("client_context"))
    error = None
    payload = b""
    try:
        event = json.loads(body) if body else {}
        result = handler(event, context)
        try:
            payload = json.dumps(result).encode()
        except (TypeError, ValueError) as exc:
            raise Fault("Runtime.MarshalError", f"Unable to marshal response: {exc}") from None
    except Fault as fault:
        error = error_payload(fault.error_type, fault.message, fault.trace, request_id)
    except Exception as exc:
        error = error_payload(type(exc).__name__, str(exc), _user_frames(exc.__traceback__), request_id)
    if error is not None:
        log_error(error)
        payload = json.dumps(error).encode()
    _flush()
    _request_id = ""
    return {"error": error is not None, "maxrss_kb": _max_rss_kb()}, payload


def main() -> None:
    read_fd, write_fd = (int(fd) for fd in os.environ.pop("_KENNEL_LAMBDA_FDS").split(","))
    task_root = os.environ["LAMBDA_TASK_ROOT"]
    sys.path.insert(0, task_root)
    os.chdir(task_root)
    _setup_logging()
    try:
        handler = load_handler(os.environ["_HANDLER"])
    except Fault as fault:
        error = error_payload(fault.error_type, fault.message, fault.trace, None)
    except Exception as exc:
        error = error_payload(type(exc).__name__, str(exc), _user_frames(exc.__traceback__), None)
    else:
        error = None
    if error is not None:
        log_error(error)
        _flush()
        write_frame(write_fd, {"type": "init_error", "error": error, "maxrss_kb": _max_rss_kb()})
        sys.exit(1)
    _flush()
    write_frame(write_fd, {"type": "ready", "maxrss_kb": _max_rss_kb()})
    reader = FrameReader(read_fd)
    while True:
        try:
            header, body = reader.read()
        except Closed:
            return
        answer, payload = invoke(handler, header, body)
        write_frame(write_fd, answer, payload)


if __name__ == "__main__":
    main()
