"""The guarded HTTP protocol's deadlines and per-address cap, driven with a fake transport on a real loop
(the live-socket cases are in tests/integration/front_door/test_front_door_fairness.py; a write stall is only
practical to provoke here)."""

from __future__ import annotations

import asyncio

from uvicorn.config import Config
from uvicorn.server import ServerState

from kennel.cloud.frontdoor import guarded_protocol
from kennel.settings import Settings

# Margins of 0.2 s or more around every deadline, so a busy machine does not make these flaky.
LIMITS = Settings(
    header_timeout_s=0.6, body_timeout_s=0.6, keep_alive_timeout_s=0.2, max_connections_per_client=2
)


class FakeTransport(asyncio.Transport):
    def __init__(self, peer: str = "10.0.0.1") -> None:
        super().__init__()
        self.peer = peer
        self.written = b""
        self.closed = False
        self.protocol = None

    def get_extra_info(self, name, default=None):
        return {"peername": (self.peer, 40000), "sockname": ("127.0.0.1", 4566)}.get(name, default)

    def write(self, data) -> None:
        self.written += bytes(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope, receive, send) -> None:
    if scope["path"] == "/big":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"5")]})
        await send({"type": "http.response.body", "body": b"hello"})
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _connect(cls, state: ServerState, peer: str = "10.0.0.1"):
    config = Config(app=_app, lifespan="off", log_level="warning")
    config.load()
    protocol = cls(config=config, server_state=state, app_state={}, _loop=asyncio.get_running_loop())
    transport = FakeTransport(peer)
    transport.protocol = protocol
    protocol.connection_made(transport)
    return protocol, transport


def test_deadlines_by_phase_and_the_per_address_cap() -> None:
    async def scenario() -> None:
        cls, state = guarded_protocol(LIMITS), ServerState()
        # Idle: no bytes at all.
        _, idle = _connect(cls, state)
        # Headers: started, never finished; more bytes do not push the deadline back.
        slow, headers = _connect(cls, state)
        slow.data_received(b"GET / HTTP/1.1\r\n")
        # A third connection from the same address is over the cap: 503 and closed at once.
        _, third = _connect(cls, state)
        assert third.closed and third.written.startswith(b"HTTP/1.1 503 ")
        # Another address has its own count.
        _, other = _connect(cls, state, peer="10.0.0.2")
        assert not other.closed
        await asyncio.sleep(0.35)
        assert idle.closed and not headers.closed
        slow.data_received(b"Host: x\r\n")
        await asyncio.sleep(0.5)
        assert headers.closed
        await asyncio.sleep(0.05)  # connection_lost ran: the places are free again
        assert cls.per_client == {}  # every connection above has been closed (idle ones too)
        _, again = _connect(cls, state)
        assert not again.closed

    asyncio.run(scenario())


def test_an_answered_request_leaves_an_idle_connection_and_a_stalled_reader_is_dropped() -> None:
    async def scenario() -> None:
        cls, state = guarded_protocol(LIMITS), ServerState()
        protocol, transport = _connect(cls, state)
        protocol.data_received(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        await asyncio.sleep(0.05)
        assert transport.written.startswith(b"HTTP/1.1 200 ") and not transport.closed
        await asyncio.sleep(0.4)  # keep-alive idle
        assert transport.closed
        # A reader that stops reading: the transport asks the protocol to pause writing and never resumes.
        protocol, transport = _connect(cls, state)
        protocol.data_received(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        protocol.pause_writing()
        await asyncio.sleep(0.4)
        protocol.resume_writing()  # progress: the stall clock stops
        protocol.pause_writing()
        await asyncio.sleep(0.4)
        assert not transport.closed
        await asyncio.sleep(0.5)
        assert transport.closed

    asyncio.run(scenario())


def test_a_body_the_application_never_read_must_still_arrive_in_time() -> None:
    async def scenario() -> None:
        cls, state = guarded_protocol(LIMITS), ServerState()
        protocol, transport = _connect(cls, state)
        # /big answers without reading the body; the rest of it never comes.
        protocol.data_received(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc")
        await asyncio.sleep(0.35)
        assert transport.written.startswith(b"HTTP/1.1 200 ") and not transport.closed
        await asyncio.sleep(0.5)
        assert transport.closed

    asyncio.run(scenario())
