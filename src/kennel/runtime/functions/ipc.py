"""Frames between the gateway and an environment process, over a pair of pipes.

A frame is two big-endian u32 lengths, a JSON header and a raw body: payloads (up to 6 MB) travel as
bytes, never re-encoded inside JSON. Pipes rather than a socket: nothing else on the machine can
connect to them, and the parent learns of a dead child from EOF at once. Imported by every environment
process, so it stays on the standard library and cheap to import.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time

_LENGTHS = struct.Struct("!II")
_CHUNK = 1 << 16


class Closed(Exception):
    """The other end is gone (the process exited, or the pipe closed mid-frame)."""


class Expired(Exception):
    """No complete frame arrived before the deadline."""


def write_frame(fd: int, header: dict, body: bytes = b"") -> None:
    head = json.dumps(header, separators=(",", ":")).encode()
    data = memoryview(_LENGTHS.pack(len(head), len(body)) + head + body)
    try:
        while data:
            written = os.write(fd, data)
            data = data[written:]
    except (BrokenPipeError, OSError) as exc:
        raise Closed(str(exc)) from None


class FrameReader:
    """Reads frames from ``fd``; a deadline bounds the wait and ``tick`` runs while waiting.

    ``tick`` (called every ``tick_s`` while no data arrives) is where the parent checks the child's
    memory: no watchdog thread, and no cost at all for invocations that answer within one tick.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._buffer = bytearray()

    def read(self, deadline: float | None = None, tick=None, tick_s: float = 0.05) -> tuple[dict, bytes]:
        need = _LENGTHS.size
        while len(self._buffer) < need:
            self._fill(deadline, tick, tick_s)
        head_len, body_len = _LENGTHS.unpack_from(self._buffer)
        need += head_len + body_len
        while len(self._buffer) < need:
            self._fill(deadline, tick, tick_s)
        start = _LENGTHS.size
        header = json.loads(bytes(self._buffer[start : start + head_len]))
        body = bytes(self._buffer[start + head_len : need])
        del self._buffer[:need]
        return header, body

    def _fill(self, deadline: float | None, tick, tick_s: float) -> None:
        if deadline is not None or tick is not None:
            poller = select.poll()
            poller.register(self.fd, select.POLLIN | select.POLLHUP | select.POLLERR)
            while True:
                wait = tick_s if tick is not None else None
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Expired()
                    wait = left if wait is None else min(wait, left)
                if poller.poll(None if wait is None else max(1, int(wait * 1000))):
                    break
                if tick is not None:
                    tick()
        try:
            chunk = os.read(self.fd, max(_CHUNK, len(self._buffer)))
        except OSError as exc:
            raise Closed(str(exc)) from None
        if not chunk:
            raise Closed("end of stream")
        self._buffer += chunk
