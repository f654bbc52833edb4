"""``Content-Encoding: aws-chunked`` bodies: decode them and check every chunk's signature.

SDKs that stream uploads (``x-amz-content-sha256: STREAMING-…``) frame the body in chunks, each
signed with a signature chained from the request's own, and may append checksum trailers. The
gateway re-signs what it forwards to SeaweedFS, so it must verify the chain itself and forward the
plain bytes. Format and string-to-sign: AWS's "Signature Calculations for the Authorization Header:
Transferring Payload in Multiple Chunks" (sigv4-streaming).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_MAX_HEADER_LINE = 4096
_HEX_SIZE = re.compile(r"[0-9a-fA-F]{1,16}")  # 16 hex digits: 2^64-1, the most any SDK could announce


class ChunkedError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass
class ChunkSigner:
    """Chains chunk signatures from the seed (the Authorization header's signature)."""

    signing_key: bytes
    amz_date: str
    scope: str
    previous: str

    def expect(self, chunk: bytes) -> str:
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256-PAYLOAD", self.amz_date, self.scope, self.previous, EMPTY_SHA256,
             hashlib.sha256(chunk).hexdigest()]
        )  # fmt: skip
        self.previous = hmac.new(self.signing_key, to_sign.encode(), hashlib.sha256).hexdigest()
        return self.previous


def signing_key(secret: str, date: str, region: str, service: str) -> bytes:
    key = ("AWS4" + secret).encode()
    for part in (date, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return key


@dataclass
class Decoded:
    size: int = 0
    trailers: dict[str, str] = field(default_factory=dict)


_CHECKSUMS: dict[str, Callable[[], object]] = {"x-amz-checksum-sha256": hashlib.sha256,
                                               "x-amz-checksum-sha1": hashlib.sha1}  # fmt: skip


class _Crc32:
    def __init__(self) -> None:
        self.value = 0

    def update(self, data: bytes) -> None:
        self.value = zlib.crc32(data, self.value)

    def digest(self) -> bytes:
        return self.value.to_bytes(4, "big")


def decode(
    read: Callable[[int], bytes],
    write: Callable[[bytes], None],
    signer: ChunkSigner | None,
    *,
    max_size: int | None = None,
) -> Decoded:
    """Stream ``read`` → ``write``, checking signatures (when ``signer``) and checksum trailers.

    ``max_size``: the encoded body's length. No chunk can be larger, so a chunk announcing more (say
    2^64-1 bytes) is refused from its header, before anything is buffered for it."""
    reader = _Reader(read)
    out = Decoded()
    checksums = {"x-amz-checksum-crc32": _Crc32(), **{k: make() for k, make in _CHECKSUMS.items()}}
    while True:
        header = reader.line()
        size_text, _, extension = header.partition(";")
        size_text = size_text.strip()
        if not _HEX_SIZE.fullmatch(size_text):
            raise ChunkedError("IncompleteBody", f"Malformed aws-chunked header {header[:80]!r}")
        size = int(size_text, 16)
        if max_size is not None and size > max_size - out.size:
            raise ChunkedError(
                "IncompleteBody",
                f"An aws-chunked chunk announces {size} bytes; the whole body is {max_size} bytes.",
            )
        data = reader.exact(size)
        if signer is not None:
            provided = extension.partition("chunk-signature=")[2].strip()
            if not hmac.compare_digest(provided, signer.expect(data)):
                raise ChunkedError(
                    "SignatureDoesNotMatch",
                    "The request signature we calculated does not match the signature you provided "
                    "(aws-chunked chunk signature).",
                )
        if size == 0:
            break
        for checksum in checksums.values():
            checksum.update(data)  # type: ignore[attr-defined]
        write(data)
        out.size += size
        if reader.line() != "":
            raise ChunkedError("IncompleteBody", "aws-chunked data is not followed by CRLF")
    for line in _trailer_lines(reader):
        name, _, value = line.partition(":")
        out.trailers[name.strip().lower()] = value.strip()
    for name, value in out.trailers.items():
        if name in checksums:
            computed = base64.b64encode(checksums[name].digest()).decode()  # type: ignore[attr-defined]
            if computed != value:
                raise ChunkedError(
                    "BadDigest", f"The {name[len('x-amz-checksum-') :].upper()} you specified did not match "
                    "the calculated checksum."
                )  # fmt: skip
    return out


def _trailer_lines(reader: _Reader) -> Iterator[str]:
    while True:
        try:
            line = reader.line()
        except ChunkedError:
            return  # no final CRLF after the zero chunk: tolerated, as S3 does
        if line == "":
            return
        if not line.startswith("x-amz-trailer-signature"):
            yield line


class _Reader:
    def __init__(self, read: Callable[[int], bytes]) -> None:
        self._read = read
        self._buffer = b""

    def _fill(self) -> bool:
        more = self._read(1024 * 1024)
        self._buffer += more
        return bool(more)

    def line(self) -> str:
        while b"\r\n" not in self._buffer:
            if len(self._buffer) > _MAX_HEADER_LINE or not self._fill():
                raise ChunkedError("IncompleteBody", "The aws-chunked body ended early")
        line, self._buffer = self._buffer.split(b"\r\n", 1)
        return line.decode("latin-1")

    def exact(self, size: int) -> bytes:
        # Pieces joined once: appending to one bytes object would copy a large chunk over and over.
        pieces, have = [self._buffer], len(self._buffer)
        while have < size:
            more = self._read(min(size - have, 1024 * 1024))
            if not more:
                raise ChunkedError("IncompleteBody", "The aws-chunked body ended early")
            pieces.append(more)
            have += len(more)
        data = pieces[0] if len(pieces) == 1 else b"".join(pieces)
        data, self._buffer = data[:size], data[size:]
        return data
