"""Connection limits uvicorn does not have: slow and idle clients, and connections per client address.

uvicorn closes an idle keep-alive connection only after a response, so a connection that sends
nothing, half its headers, or half a body that nobody reads stayed open forever. This protocol is
uvicorn's httptools protocol with fixed deadlines, driven by the parser's own callbacks:

* a fresh connection must start a request within ``keep_alive_timeout_s`` (it is idle until then);
* a request's headers must be complete within ``header_timeout_s`` of its first byte (a deadline,
  not reset by more bytes: trickling one byte at a time does not extend it);
* once the headers are complete the application owns the request: the gateway and the S3 proxy read
  the body with an idle timeout of ``body_timeout_s`` and answer AWS's ``RequestTimeout``;
* a response the client does not read (the transport stays paused for writing) for
  ``body_timeout_s`` closes the connection, which unblocks the application's ``send``;
* a body the application did not read (a refusal before the body) must finish arriving within
  ``body_timeout_s`` of the response, or the connection is closed;
* one client address may hold at most ``max_connections_per_client`` connections; the next one is
  answered with a 503 (which AWS SDKs retry with backoff) and closed.

Nothing here runs per byte or per body chunk: timers are armed only when the phase changes.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from kennel.settings import Settings

_REFUSAL_BODY = b"Too many connections from this address; retry shortly."
_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\nconnection: close\r\n"
    b"content-length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n\r\n" + _REFUSAL_BODY
)


class GuardedProtocol(HttpToolsProtocol):
    """Set by :func:`guarded_protocol`: the limits and the shared count of connections per address."""

    header_timeout_s: ClassVar[float]
    body_timeout_s: ClassVar[float]
    keep_alive_timeout_s: ClassVar[float]
    max_per_client: ClassVar[int]
    per_client: ClassVar[dict[str, int]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._write_stall: asyncio.TimerHandle | None = None
        self._address: str | None = None
        self._in_headers = False  # the parser is inside a request line or headers
        self._headers_began: float | None = None  # loop time of the first byte of those headers

    # --- connections per client address -----------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else "local"  # a Unix socket has no peer address
        count = self.per_client.get(address, 0)
        if count >= self.max_per_client:
            transport.write(_REFUSAL)
            transport.close()
            return
        self.per_client[address] = count + 1
        self._address = address
        self._arm(self.keep_alive_timeout_s)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._write_stall is not None:
            self._write_stall.cancel()
            self._write_stall = None
        if self._address is not None:
            left = self.per_client.get(self._address, 1) - 1
            if left > 0:
                self.per_client[self._address] = left
            else:
                self.per_client.pop(self._address, None)
            self._address = None
        super().connection_lost(exc)

    # --- read deadlines, by parser phase ------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Only headers still unfinished after a whole packet need a timer: the usual request arrives in
        # one packet and costs none (this runs per packet, so it stays a few attribute reads).
        if self._in_headers and self._headers_began is not None:
            self._arm(self._headers_began + self.header_timeout_s - self.loop.time())
            self._headers_began = None

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True
        self._disarm()  # the idle deadline: a request has begun
        if self.cycle is None or self.cycle.response_complete:
            self._headers_began = self.loop.time()
        # else: a pipelined request behind one still running; its clock starts when that one answers.

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._headers_began = None
        self._disarm()
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        super().on_message_complete()
        cycle = self.cycle
        if cycle is not None and cycle.response_complete and not self.pipeline:
            # The rest of a body the application never read has arrived: the connection is idle now
            # (uvicorn's own keep-alive timer was cancelled by the bytes that brought it).
            self._arm(self.keep_alive_timeout_s)

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            self._disarm()
            return
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            self._disarm()  # a pipelined request started; the application owns it
        elif cycle is not None and cycle.more_body:
            self._arm(self.body_timeout_s)  # answered before its body was read: let the rest arrive
        elif self._in_headers:
            self._arm(self.header_timeout_s)
        elif self.timeout_keep_alive_task is None or self.timeout_keep_alive > self.keep_alive_timeout_s:
            self._arm(self.keep_alive_timeout_s)  # idle, and uvicorn's own timer is not as short
        else:
            self._disarm()  # idle: uvicorn's keep-alive timer (server.py gives it ours) closes it

    # --- write stalls ---------------------------------------------------------------------------------
    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_stall is None:
            self._write_stall = self.loop.call_later(self.body_timeout_s, self._expire)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._write_stall is not None:
            self._write_stall.cancel()
            self._write_stall = None

    # --- timers ---------------------------------------------------------------------------------------
    def _arm(self, seconds: float) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(seconds, self._expire)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.close()


def guarded_protocol(settings: Settings) -> type[GuardedProtocol]:
    """A protocol class for ``uvicorn.Config(http=...)`` with these settings' limits (a class per
    server, so two gateways in one process would not share their per-address counts)."""
    return type(
        "KennelHttpProtocol",
        (GuardedProtocol,),
        {
            "header_timeout_s": settings.header_timeout_s,
            "body_timeout_s": settings.body_timeout_s,
            "keep_alive_timeout_s": settings.keep_alive_timeout_s,
            "max_per_client": settings.max_connections_per_client,
            "per_client": {},
        },
    )
