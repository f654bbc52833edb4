"""An S3 request body, spooled while its digest is computed: bytes in memory, then a temporary file.

S3 signs the body's SHA-256, so a request must be read whole (and refused, if the signature does not
match) before any of it reaches the store.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
from collections.abc import AsyncIterator
from concurrent.futures import Executor
from pathlib import Path

SPOOL_IN_MEMORY = 8 * 1024 * 1024
_CHUNK = 1024 * 1024


class Spool:
    """The request body: bytes in memory, or a temporary file once it outgrows memory."""

    def __init__(self, spool_dir: Path) -> None:
        self._dir = spool_dir
        self._memory = bytearray()
        self._file = None
        self.size = 0
        self._hash = hashlib.sha256()
        self.trailers: dict[str, str] | None = None  # checksum trailers of a decoded aws-chunked body

    def write(self, chunk: bytes) -> None:
        self._hash.update(chunk)
        self.size += len(chunk)
        if self._file is None and len(self._memory) + len(chunk) <= SPOOL_IN_MEMORY:
            self._memory += chunk
            return
        if self._file is None:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._file = tempfile.TemporaryFile(dir=self._dir)  # noqa: SIM115 - closed by close()
            self._file.write(self._memory)
            self._memory = bytearray()
        self._file.write(chunk)

    @property
    def sha256(self) -> str:
        return self._hash.hexdigest()

    def reader(self):
        """A blocking ``read(n)`` over the whole body, from the start."""
        if self._file is None:
            view, offset = bytes(self._memory), 0

            def read(n: int) -> bytes:
                nonlocal offset
                piece = view[offset : offset + n]
                offset += len(piece)
                return piece

            return read
        self._file.seek(0)
        return self._file.read

    def small_body(self) -> bytes | None:
        return bytes(self._memory) if self._file is None else None

    async def chunks(self, executor: Executor | None = None) -> AsyncIterator[bytes]:
        assert self._file is not None
        loop = asyncio.get_running_loop()
        self._file.seek(0)
        while chunk := await loop.run_in_executor(executor, self._file.read, _CHUNK):
            yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
