"""The relay: network namespaces for sandboxes, each reaching only the gateway.

    python -m kennel.runtime.sandbox.relay --socket <gateway unix socket> --port <gateway port>

One relay process serves every namespace of a :class:`~kennel.runtime.sandbox.Sandbox`. For each it
makes a fresh network namespace (only ``lo``, brought up here), listens on ``127.0.0.1:<port>`` inside
it and forwards every connection to the gateway's path-based Unix socket, which no network namespace
scopes. So ``AWS_ENDPOINT_URL=http://127.0.0.1:<port>`` works unchanged inside, and nothing else on the
host's loopback is reachable from there. Sandboxed processes join a namespace with
``nsenter --net=/proc/<relay pid>/fd/<n>``: the relay keeps the namespace's descriptor open.

The relay runs outside any sandbox (it is Kennel's code, not the user's); it is driven by lines on stdin
(``new`` → ``ok <id> <path>``, ``drop <id>`` → ``ok``) and exits when stdin closes, i.e. with its owner.
One namespace is kept prepared so that a spawn does not wait for one to be made.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import fcntl
import os
import socket
import struct
import sys
import threading
from collections import deque

_CLONE_NEWNET = 0x40000000
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_CHUNK = 256 * 1024


class Space:
    """One network namespace: its descriptor and the relay's listener inside it."""

    def __init__(self, ns_fd: int, listener: socket.socket) -> None:
        self.ns_fd = ns_fd
        self.listener = listener
        self.server: asyncio.AbstractServer | None = None

    def close(self) -> None:
        if self.server is not None:
            self.server.close()
        self.listener.close()
        with contextlib.suppress(OSError):
            os.close(self.ns_fd)


def make_space(port: int) -> Space:
    """A new network namespace with a listener on 127.0.0.1:port, made on a thread of its own:
    unshare(CLONE_NEWNET) moves only the calling thread, and that thread ends right after."""
    result: list[Space | BaseException] = []

    def work() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.unshare(_CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"unshare(CLONE_NEWNET): {os.strerror(err)}")
            _loopback_up()
            listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind(("127.0.0.1", port))
            listener.listen(128)
            listener.setblocking(False)
            result.append(Space(os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC), listener))
        except BaseException as exc:  # reported to the caller, whatever it was
            result.append(exc)

    thread = threading.Thread(target=work, name="netns")
    thread.start()
    thread.join()
    if isinstance(result[0], BaseException):
        raise result[0]
    return result[0]


def _loopback_up() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


class Relay:
    def __init__(self, socket_path: str, port: int) -> None:
        self.socket_path = socket_path
        self.port = port
        self.spaces: dict[int, Space] = {}
        self.spare: deque[Space] = deque()
        self._next = 0

    async def new(self) -> str:
        space = self.spare.popleft() if self.spare else make_space(self.port)
        space.server = await asyncio.start_server(self._forward, sock=space.listener)
        self._next += 1
        self.spaces[self._next] = space
        asyncio.get_running_loop().call_soon(self._prepare)  # after this reply is on its way
        return f"ok {self._next} /proc/{os.getpid()}/fd/{space.ns_fd}"

    def _prepare(self) -> None:
        if not self.spare:
            with contextlib.suppress(OSError):
                self.spare.append(make_space(self.port))

    def drop(self, ident: int) -> str:
        space = self.spaces.pop(ident, None)
        if space is not None:
            space.close()
        return "ok"

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_unix_connection(self.socket_path, limit=_CHUNK)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pump(reader, up_writer), _pump(up_reader, writer))
        finally:
            writer.close()
            up_writer.close()

    async def serve(self) -> None:
        loop = asyncio.get_running_loop()
        commands = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(commands), sys.stdin)
        self._prepare()
        print("ready", flush=True)
        while line := await commands.readline():
            words = line.decode().split()
            try:
                if words == ["new"]:
                    answer = await self.new()
                elif len(words) == 2 and words[0] == "drop":
                    answer = self.drop(int(words[1]))
                else:
                    answer = f"err unknown command {line!r}"
            except Exception as exc:  # one failed namespace must not end the relay for all others
                answer = f"err {type(exc).__name__}: {exc}"
            sys.stdout.write(answer.replace("\n", " ") + "\n")
            sys.stdout.flush()
        for space in [*self.spaces.values(), *self.spare]:
            space.close()


async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
    try:
        while data := await source.read(_CHUNK):
            sink.write(data)
            await sink.drain()
        if sink.can_write_eof():
            sink.write_eof()  # half-close: HTTP clients may shut down their side first
    except (OSError, asyncio.IncompleteReadError):
        sink.close()
    except asyncio.CancelledError:
        sink.close()
        raise


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Network namespaces that reach only the gateway.")
    parser.add_argument("--socket", required=True, help="the gateway's Unix socket")
    parser.add_argument("--port", type=int, required=True, help="the gateway's TCP port, served inside")
    args = parser.parse_args(argv)
    asyncio.run(Relay(args.socket, args.port).serve())


if __name__ == "__main__":
    main()
