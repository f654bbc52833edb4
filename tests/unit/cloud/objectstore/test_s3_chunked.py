"""aws-chunked decoding against AWS's published example ("Signature Calculations for the
Authorization Header: Transferring Payload in Multiple Chunks", PUT examplebucket/chunkObject.txt)."""

from __future__ import annotations

import base64
import io
import zlib

import pytest

from kennel.cloud.objectstore.chunked import ChunkedError, ChunkSigner, decode, signing_key

SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
SEED = "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9"
EXPECTED = [
    "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
    "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
    "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
]
CHUNKS = [b"a" * 65536, b"a" * 1024, b""]


def signer() -> ChunkSigner:
    return ChunkSigner(
        signing_key(SECRET, "20130524", "us-east-1", "s3"), "20130524T000000Z",
        "20130524/us-east-1/s3/aws4_request", SEED,
    )  # fmt: skip


def framed(signatures: list[str], chunks: list[bytes] = CHUNKS, trailer: bytes = b"\r\n") -> bytes:
    body = b""
    for chunk, signature in zip(chunks, signatures, strict=True):
        body += f"{len(chunk):x};chunk-signature={signature}\r\n".encode() + chunk
        body += b"\r\n" if chunk else b""
    return body + trailer


def test_chunk_signatures_match_the_aws_example() -> None:
    chain = signer()
    assert [chain.expect(chunk) for chunk in CHUNKS] == EXPECTED
    body = framed(EXPECTED)
    assert len(body) == 66824  # the example's Content-Length
    out = io.BytesIO()
    decoded = decode(io.BytesIO(body).read, out.write, signer())
    assert decoded.size == 66560 and out.getvalue() == b"a" * 66560


def test_a_tampered_chunk_is_refused() -> None:
    body = framed(EXPECTED).replace(b"a" * 1024, b"b" + b"a" * 1023)
    with pytest.raises(ChunkedError) as refused:
        decode(io.BytesIO(body).read, io.BytesIO().write, signer())
    assert refused.value.code == "SignatureDoesNotMatch"


def test_unsigned_chunks_with_a_checksum_trailer() -> None:
    data = b"hello world" * 100
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = (
        f"{len(data):x}\r\n".encode() + data + b"\r\n0\r\n" + f"x-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    )
    out = io.BytesIO()
    decoded = decode(io.BytesIO(body).read, out.write, None)
    assert out.getvalue() == data and decoded.trailers == {"x-amz-checksum-crc32": crc}
    wrong = body.replace(crc.encode(), b"AAAAAA==")
    with pytest.raises(ChunkedError) as bad:
        decode(io.BytesIO(wrong).read, io.BytesIO().write, None)
    assert bad.value.code == "BadDigest"


@pytest.mark.parametrize("body", [b"zz\r\nabc", b"10\r\nshort", b"5\r\nabcdeXX0\r\n\r\n", b""])
def test_malformed_framing_is_refused(body: bytes) -> None:
    with pytest.raises(ChunkedError):
        decode(io.BytesIO(body).read, io.BytesIO().write, None)
