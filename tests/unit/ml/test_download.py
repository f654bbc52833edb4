from __future__ import annotations

import hashlib
import io
import random
import re
import socket
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from kennel.ml.archive import CorruptArchiveError
from kennel.ml.download import DownloadError, download, fetch_dog_images

# ------------------------------------------------------------------------------- test HTTP server


@dataclass
class _ServerState:
    files: dict[str, bytes] = field(default_factory=dict)
    honor_range: bool = True
    # Send the full Content-Length but close after this many body bytes, on the next request only.
    cut_after: int | None = None
    # Answer range requests with a 206 whose Content-Range starts at 0 instead of where asked.
    wrong_range_start: bool = False
    requests: list[dict[str, str | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: _ServerState

    @property
    def base_url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep pytest output clean

    def do_GET(self) -> None:
        st = self.server.state
        range_header = self.headers.get("Range")
        with st.lock:
            st.requests.append({"path": self.path, "range": range_header})
            cut, st.cut_after = st.cut_after, None
        body = st.files.get(self.path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        total = len(body)
        start, status = 0, 200
        if range_header and st.honor_range:
            m = re.fullmatch(r"bytes=(\d+)-", range_header)
            assert m is not None, range_header
            start = int(m[1])
            if start >= total:
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{total}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
            if st.wrong_range_start:
                start = 0
        chunk = body[start:]
        self.send_response(status)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(chunk)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
        self.end_headers()
        if cut is not None:
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server(("127.0.0.1", 0), _Handler)
    srv.state = _ServerState()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
        thread.join(timeout=5)


# ----------------------------------------------------------------------------------- test data


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _dataset_zip(splits: tuple[str, ...] = ("train", "valid", "test")) -> bytes:
    """A miniature dogImages.zip: same layout, a few bytes per image, plus Finder litter."""
    rng = random.Random(1234)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("dogImages/", b"")
        for split in splits:
            zf.writestr(f"dogImages/{split}/001.Affenpinscher/a.jpg", f"{split}-a".encode())
            zf.writestr(f"dogImages/{split}/002.Afghan_hound/b.jpg", f"{split}-b".encode())
        # Incompressible filler so the archive spans many read chunks.
        zf.writestr("dogImages/train/002.Afghan_hound/big.jpg", rng.randbytes(150_000))
        zf.writestr("__MACOSX/dogImages/._a.jpg", b"junk")
    return buf.getvalue()


def _payload(n: int = 100_000) -> bytes:
    return random.Random(99).randbytes(n)


def _serve(server: _Server, data: bytes, name: str = "/file.bin") -> str:
    server.state.files[name] = data
    return server.base_url + name


# ------------------------------------------------------------------------------------ download()


def test_download_full_file(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    dest = tmp_path / "sub" / "file.bin"

    out = download(url, dest, expected_sha256=_sha(data), progress=False, chunk_bytes=8192)

    assert out == dest
    assert dest.read_bytes() == data
    assert not dest.with_name("file.bin.part").exists()
    assert server.state.requests == [{"path": "/file.bin", "range": None}]


def test_short_transfer_raises_and_keeps_part(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    server.state.cut_after = 30_000
    dest = tmp_path / "file.bin"

    with pytest.raises(DownloadError, match="ended early: got 30000 of 100000 bytes"):
        download(url, dest, progress=False, chunk_bytes=4096)

    part = tmp_path / "file.bin.part"
    assert part.read_bytes() == data[:30_000]
    assert not dest.exists()


def test_resume_after_interrupted_transfer(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    server.state.cut_after = 40_000
    dest = tmp_path / "file.bin"

    with pytest.raises(DownloadError):
        download(url, dest, expected_sha256=_sha(data), progress=False, chunk_bytes=4096)
    download(url, dest, expected_sha256=_sha(data), progress=False, chunk_bytes=4096)

    assert [r["range"] for r in server.state.requests] == [None, "bytes=40000-"]
    assert dest.read_bytes() == data
    assert _sha(dest.read_bytes()) == _sha(data)
    assert not (tmp_path / "file.bin.part").exists()


def test_server_ignoring_range_restarts_from_zero(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    server.state.honor_range = False
    dest = tmp_path / "file.bin"
    # A stale part whose bytes do not even match: appending the 200 body to it would corrupt the file.
    (tmp_path / "file.bin.part").write_bytes(b"\xff" * 12_345)

    download(url, dest, expected_sha256=_sha(data), progress=False)

    assert server.state.requests[0]["range"] == "bytes=12345-"
    assert len(server.state.requests) == 1
    assert dest.read_bytes() == data


def test_wrong_content_range_start_restarts(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    server.state.wrong_range_start = True
    (tmp_path / "file.bin.part").write_bytes(data[:5000])

    download(url, tmp_path / "file.bin", progress=False)

    assert [r["range"] for r in server.state.requests] == ["bytes=5000-", None]
    assert (tmp_path / "file.bin").read_bytes() == data


def test_416_with_complete_part_finishes_without_body(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    (tmp_path / "file.bin.part").write_bytes(data)

    download(url, tmp_path / "file.bin", expected_sha256=_sha(data), progress=False)

    assert [r["range"] for r in server.state.requests] == [f"bytes={len(data)}-"]
    assert (tmp_path / "file.bin").read_bytes() == data


def test_416_with_oversized_part_restarts(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    (tmp_path / "file.bin.part").write_bytes(data + b"trailing garbage")

    download(url, tmp_path / "file.bin", progress=False)

    assert [r["range"] for r in server.state.requests] == [f"bytes={len(data) + 16}-", None]
    assert (tmp_path / "file.bin").read_bytes() == data


def test_sha_mismatch_raises_and_removes_part(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, _payload())
    dest = tmp_path / "file.bin"

    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        download(url, dest, expected_sha256="0" * 64, progress=False)

    assert not (tmp_path / "file.bin.part").exists()
    assert not dest.exists()


def test_existing_dest_is_reused_without_network(server: _Server, tmp_path: Path) -> None:
    data = _payload()
    url = _serve(server, data)
    dest = tmp_path / "file.bin"
    dest.write_bytes(data)

    assert download(url, dest, expected_sha256=_sha(data).upper(), progress=False) == dest
    assert download(url, dest, progress=False) == dest
    assert server.state.requests == []

    # A dest that fails its hash is replaced by a fresh download.
    dest.write_bytes(b"stale")
    download(url, dest, expected_sha256=_sha(data), progress=False)
    assert dest.read_bytes() == data
    assert len(server.state.requests) == 1


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/x.zip", "/etc/passwd", "data:,x"])
def test_non_http_scheme_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(DownloadError, match="only http"):
        download(url, tmp_path / "x", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_error_and_unreachable_host(server: _Server, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="HTTP 404"):
        download(server.base_url + "/missing.zip", tmp_path / "a.zip", progress=False)

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free_port = s.getsockname()[1]
    with pytest.raises(DownloadError, match="could not connect"):
        download(f"http://127.0.0.1:{free_port}/x.zip", tmp_path / "b.zip", progress=False, timeout_s=2)


def test_bad_sha_argument_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="64 hex"):
        download("http://127.0.0.1/x", tmp_path / "x", expected_sha256="abc")


def test_progress_bar_goes_to_stderr(
    server: _Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _payload()
    url = _serve(server, data)

    download(url, tmp_path / "file.bin", progress=True)

    assert (tmp_path / "file.bin").read_bytes() == data
    assert capsys.readouterr().out == ""


# ---------------------------------------------------------------------------- fetch_dog_images()


def test_fetch_dog_images_layout(server: _Server, tmp_path: Path) -> None:
    archive = _dataset_zip()
    url = _serve(server, archive, "/dogImages.zip")
    dest_dir = tmp_path / "data"

    assert fetch_dog_images(dest_dir, url=url, expected_sha256=_sha(archive), progress=False) == dest_dir

    assert sorted(p.name for p in dest_dir.iterdir()) == ["dogImages.zip", "test", "train", "valid"]
    for split in ("train", "valid", "test"):
        assert (dest_dir / split / "001.Affenpinscher" / "a.jpg").read_bytes() == f"{split}-a".encode()
        assert (dest_dir / split / "002.Afghan_hound" / "b.jpg").read_bytes() == f"{split}-b".encode()
    assert (dest_dir / "dogImages.zip").read_bytes() == archive

    # Rerunning reuses the archive instead of downloading it again.
    fetch_dog_images(dest_dir, url=url, expected_sha256=_sha(archive), progress=False)
    assert len(server.state.requests) == 1


def test_fetch_dog_images_without_keeping_archive(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, _dataset_zip(), "/dogImages.zip")
    dest_dir = tmp_path / "data"

    fetch_dog_images(dest_dir, url=url, progress=False, keep_archive=False)

    assert sorted(p.name for p in dest_dir.iterdir()) == ["test", "train", "valid"]
    # Extracted splits without an archive mean a finished earlier run: no second download.
    fetch_dog_images(dest_dir, url=url, progress=False, keep_archive=False)
    assert len(server.state.requests) == 1


def test_fetch_dog_images_resumes_interrupted_download(server: _Server, tmp_path: Path) -> None:
    archive = _dataset_zip()
    url = _serve(server, archive, "/dogImages.zip")
    server.state.cut_after = 50_000
    dest_dir = tmp_path / "data"

    with pytest.raises(DownloadError):
        fetch_dog_images(dest_dir, url=url, progress=False)
    assert sorted(p.name for p in dest_dir.iterdir()) == ["dogImages.zip.part"]

    fetch_dog_images(dest_dir, url=url, expected_sha256=_sha(archive), progress=False)
    assert server.state.requests[1]["range"] == "bytes=50000-"
    assert (dest_dir / "train" / "002.Afghan_hound" / "big.jpg").stat().st_size == 150_000


def test_fetch_dog_images_missing_split(server: _Server, tmp_path: Path) -> None:
    url = _serve(server, _dataset_zip(splits=("train", "valid")), "/dogImages.zip")

    with pytest.raises(DownloadError, match="test"):
        fetch_dog_images(tmp_path / "data", url=url, progress=False)


def test_fetch_dog_images_corrupt_archive_is_deleted(server: _Server, tmp_path: Path) -> None:
    archive = bytearray(_dataset_zip())
    marker = b"train-a"
    at = archive.index(marker)
    archive[at : at + len(marker)] = b"XXXXXXX"
    url = _serve(server, bytes(archive), "/dogImages.zip")
    dest_dir = tmp_path / "data"

    with pytest.raises(CorruptArchiveError, match=r"a\.jpg"):
        fetch_dog_images(dest_dir, url=url, progress=False)
    assert list(dest_dir.iterdir()) == []
