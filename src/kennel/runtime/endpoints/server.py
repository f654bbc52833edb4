"""One model-server instance: the SageMaker serving-container contract on a Unix socket (or a port).

    python -m kennel.runtime.endpoints.server --model-dir DIR --socket PATH --threads N

Kennel starts it inside a sandbox, listening on a Unix socket only the gateway can reach; ``--port``
serves on loopback TCP instead, for running a model by hand.

``GET /ping`` answers 200 once the model is loaded (the port only opens then); ``POST /invocations``
runs the artifact's handler (see ``handlers.py``) in a worker thread, with a per-request time limit.
Kennel's built-in handler gets dynamic batching (``KENNEL_MAX_BATCH_SIZE``, default 8 on CPU and 32
on a GPU, 1 turns it off; ``KENNEL_MAX_BATCH_DELAY_MS``, default 2). User scripts run
``SAGEMAKER_MODEL_SERVER_WORKERS`` requests at a time (default 1, as one toolkit worker does).

Each instance is its own process, so a crash in user code costs this instance, never the gateway.
A watchdog ends the process if the gateway that started it goes away.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kennel.runtime.endpoints.batching import BatchingPredictor
from kennel.runtime.endpoints.contract import BATCH_SIZE, CUSTOM_ATTRIBUTES, HANDLER_US, MAX_BODY_BYTES
from kennel.runtime.endpoints.handlers import HandlerLoadError, InvocationFailure, LoadedHandler
from kennel.runtime.heap import freeze_startup_heap


class ModelServer:
    """The ASGI application; built around an already-loaded handler."""

    def __init__(
        self,
        handler: LoadedHandler,
        *,
        batcher: BatchingPredictor | None = None,
        workers: int = 1,
        timeout_s: float = 60.0,
        max_body_bytes: int = MAX_BODY_BYTES + 64 * 1024,
    ) -> None:
        self.handler = handler
        self.batcher = batcher
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.executor = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="invoke")

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return
        path, method = scope["path"], scope["method"]
        if path == "/ping":
            await _respond(send, 200, b"", "text/plain")
        elif path == "/invocations" and method == "POST":
            await self._invocation(scope, receive, send)
        elif path == "/invocations":
            await _respond(send, 405, b"use POST /invocations", "text/plain")
        else:
            await _respond(send, 404, f"no route {method} {path}".encode(), "text/plain")

    async def _invocation(self, scope: dict, receive, send) -> None:
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        chunks, size = [], 0
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                await _respond(send, 413, f"request body exceeds {self.max_body_bytes} bytes".encode())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self.executor, self.run, b"".join(chunks), headers)
        try:
            status, body, content_type, extra = await asyncio.wait_for(work, self.timeout_s)
        except TimeoutError:
            message = f"the model did not answer within {self.timeout_s:g} s"
            print(f"invocation timed out: {message}", file=sys.stderr, flush=True)
            await _respond(send, 504, message.encode())
            return
        await _respond(send, status, body, content_type, extra)

    def run(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, str, dict[str, str]]:
        """One invocation, in a worker thread: (status, body, content type, extra headers)."""
        started = time.perf_counter()
        content_type, accept = headers.get("content-type"), headers.get("accept")
        extra: dict[str, str] = {}
        try:
            if self.batcher is not None:
                with self.batcher.request():
                    response = self.handler.invoke(body, content_type, accept, headers)
                extra[BATCH_SIZE] = str(self.batcher.last_batch_size)
            else:
                response = self.handler.invoke(body, content_type, accept, headers)
        except InvocationFailure as failure:
            extra[HANDLER_US] = str(int((time.perf_counter() - started) * 1e6))
            return failure.status, failure.message.encode("utf-8", "replace"), "text/plain", extra
        extra[HANDLER_US] = str(int((time.perf_counter() - started) * 1e6))
        for name, value in response.headers.items():
            if name.lower() == CUSTOM_ATTRIBUTES:
                extra[CUSTOM_ATTRIBUTES] = value
        return 200, response.body, response.content_type, extra


async def _respond(
    send, status: int, body: bytes, content_type: str = "text/plain", extra: dict[str, str] | None = None
) -> None:
    headers = [
        (b"content-type", content_type.encode("latin-1")),
        (b"content-length", str(len(body)).encode()),
    ]
    for name, value in (extra or {}).items():
        headers.append((name.encode("latin-1"), value.encode("latin-1", "replace")))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _env_int(env: dict[str, str], name: str, default: int, minimum: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise HandlerLoadError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise HandlerLoadError(f"{name} must be at least {minimum}; got {value}")
    return value


def build_server(
    model_dir: Path, env: dict[str, str], *, timeout_s: float = 60.0, gpu: bool = False
) -> ModelServer:
    """Load the model and wrap it for serving (batching for the built-in handler)."""
    handler = LoadedHandler(model_dir, env, work_dir=model_dir.parent if model_dir.parent.is_dir() else None)
    if not handler.is_builtin:
        workers = _env_int(env, "SAGEMAKER_MODEL_SERVER_WORKERS", 1, 1)
        return ModelServer(handler, workers=workers, timeout_s=timeout_s)
    max_batch = _env_int(env, "KENNEL_MAX_BATCH_SIZE", 32 if gpu else 8, 1)
    delay_ms = _env_int(env, "KENNEL_MAX_BATCH_DELAY_MS", 2, 0)
    model: Any = handler.model
    model.predictor.warmup()  # the first forward pass is the slowest; pay it before /ping says ready
    batcher = None
    if max_batch > 1:
        batcher = BatchingPredictor(model.predictor, max_batch_size=max_batch, max_delay_s=delay_ms / 1000)
        model.predictor = batcher
    # Enough request threads to decode a full batch while the previous one runs.
    return ModelServer(handler, batcher=batcher, workers=max(4, 2 * max_batch), timeout_s=timeout_s)


def _watch_parent(parent_pid: int) -> None:
    while True:
        time.sleep(0.5)
        if os.getppid() != parent_pid:
            # No farewell line: the log pipe's reader was the gateway, and writing to it now would fail.
            os._exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve one model with the SageMaker container contract.")
    parser.add_argument("--model-dir", type=Path, required=True)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--socket", help="listen on this Unix socket path")
    where.add_argument("--port", type=int, help="listen on this loopback TCP port")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--threads", type=int, default=0, help="intra-op threads (0: all cores)")
    parser.add_argument("--timeout-s", type=float, default=60.0, help="per-request time limit")
    parser.add_argument("--parent-pid", type=int, default=0, help="exit when this process is gone")
    args = parser.parse_args(argv)
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid,), daemon=True).start()
    import torch
    import uvicorn

    # The handler says which runtime it chose and why (and when it exported the model) through
    # logging; those lines belong in the instance's log stream, which is this process's output.
    ml_log = logging.getLogger("kennel.ml")
    if not ml_log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        ml_log.addHandler(handler)
        ml_log.setLevel(logging.INFO)
        ml_log.propagate = False
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    gpu = torch.cuda.is_available()
    started = time.monotonic()
    try:
        app = build_server(args.model_dir, dict(os.environ), timeout_s=args.timeout_s, gpu=gpu)
    except Exception as exc:
        import traceback

        traceback.print_exc()
        # The last line is what the endpoint's FailureReason quotes.
        print(f"kennel-model-server: failed to load the model: {type(exc).__name__}: {exc}", file=sys.stderr)
        sys.exit(3)
    batching = f"batching up to {app.batcher.max_batch_size}" if app.batcher else "no batching"
    predictor = getattr(getattr(app.handler, "model", None), "predictor", None)
    runtime = (
        f"runtime {predictor.runtime} {predictor.precision}, " if app.handler.is_builtin and predictor else ""
    )
    print(
        f"kennel-model-server: loaded {app.handler.source} in {time.monotonic() - started:.1f} s "
        f"({runtime}{batching}, {torch.get_num_threads()} threads, {'cuda' if gpu else 'cpu'}); "
        f"listening on {args.socket or f'{args.host}:{args.port}'}",
        flush=True,
    )
    freeze_startup_heap()  # torch's and the model's objects stay out of every later collection
    config = uvicorn.Config(
        app,
        host=args.host,
        port=args.port or 0,
        uds=args.socket,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=75,  # the router keeps connections open between requests
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()


if __name__ == "__main__":
    main()
