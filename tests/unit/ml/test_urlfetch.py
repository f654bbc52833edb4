from __future__ import annotations

import contextlib
import ipaddress
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from kennel.ml import urlfetch
from kennel.ml.errors import UrlFetchError, UrlNotAllowedError
from kennel.ml.urlfetch import fetch_url

PAYLOAD = bytes(range(256)) * 64  # 16 KiB


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # keep pytest output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if "Content-Length" not in (headers or {}):
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        # The client may have given up already, as the timeout and size-limit tests intend.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(body)

    def do_GET(self) -> None:
        parts = urlsplit(self.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        if route == "/img":
            self._send(200, PAYLOAD, {"Content-Type": "image/png"})
        elif route == "/host":
            self._send(200, self.headers.get("Host", "").encode())
        elif route == "/redirect":
            self._send(int(query.get("code", "302")), headers={"Location": query["to"]})
        elif route == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif route == "/no-location":
            self._send(302)
        elif route.startswith("/status/"):
            self._send(int(route.rsplit("/", 1)[1]), b"nope")
        elif route == "/big-declared":
            self._send(200, b"x" * 200_000)
        elif route == "/big-streamed":
            # HTTP/1.0 without Content-Length: the body runs until the connection closes.
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(50):
                    self.wfile.write(b"y" * 10_000)
            except (BrokenPipeError, ConnectionResetError):
                pass
        elif route == "/slow":
            time.sleep(float(query.get("s", "2")))
            self._send(200, b"late")
        elif route == "/trickle":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            try:
                for _ in range(100):
                    self.wfile.write(b"z")
                    self.wfile.flush()
                    time.sleep(0.1)
            except (BrokenPipeError, ConnectionResetError):
                pass
        else:
            self._send(404, b"unknown route")


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def _serve(server: ThreadingHTTPServer) -> Iterator[str]:
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    yield from _serve(_Server(("127.0.0.1", 0), _Handler))


@pytest.fixture
def loopback_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Treat 127.0.0.1 as public so redirect checks can be exercised against the local server."""
    real = urlfetch._forbidden_reason

    def patched(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
        return None if str(address) == "127.0.0.1" else real(address)

    monkeypatch.setattr(urlfetch, "_forbidden_reason", patched)


def test_fetch_ok(server: str) -> None:
    assert fetch_url(f"http://{server}/img", allow_private=True) == PAYLOAD


def test_host_header_uses_the_hostname(server: str) -> None:
    port = server.rsplit(":", 1)[1]
    body = fetch_url(f"http://localhost:{port}/host", allow_private=True)
    assert body.decode() == f"localhost:{port}"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/x",
        "http://10.0.0.1/x",
        "http://192.168.1.20/x",
        "http://172.16.0.1/x",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/x",
        "http://localhost/x",
        "http://0.0.0.0/x",
        "http://[::ffff:10.0.0.1]/x",
        "http://[::ffff:127.0.0.1]/x",
        "http://[fe80::1]/x",
        "http://[fd00::1]/x",
        "http://100.64.0.1/x",
        "http://224.0.0.1/x",
        "http://2130706433/x",  # 127.0.0.1 written as one decimal number
        "https://127.0.0.1/x",
    ],
)
def test_private_addresses_refused_by_default(url: str) -> None:
    with pytest.raises(UrlNotAllowedError) as info:
        fetch_url(url)
    assert info.value.status_code == 403
    assert "resolves to" in str(info.value)


def test_refusal_names_the_address() -> None:
    with pytest.raises(UrlNotAllowedError, match=r"169\.254\.169\.254.*link-local"):
        fetch_url("http://169.254.169.254/")


@pytest.mark.parametrize(
    "address",
    ["8.8.8.8", "93.184.216.34", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e"],
)
def test_public_addresses_allowed(address: str) -> None:
    assert urlfetch._forbidden_reason(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "address",
    ["2002:a00:1::", "64:ff9b::a00:1", "::ffff:192.168.0.1", "240.0.0.1", "255.255.255.255", "::"],
)
def test_embedded_and_reserved_addresses_refused(address: str) -> None:
    assert urlfetch._forbidden_reason(ipaddress.ip_address(address))


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/a.jpg",
        "file:///etc/passwd",
        "gopher://example.com/",
        "example.com/a.jpg",
        "data:,x",
    ],
)
def test_non_http_schemes_refused(url: str) -> None:
    with pytest.raises(UrlNotAllowedError, match="only http:// and https://"):
        fetch_url(url)


def test_credentials_refused() -> None:
    with pytest.raises(UrlNotAllowedError, match="credentials"):
        fetch_url("http://user:pw@example.com/a.jpg")


@pytest.mark.parametrize("url", ["http:///nohost", "http://[::1/x", "http://example.com:99999/"])
def test_malformed_urls(url: str) -> None:
    with pytest.raises(UrlFetchError):
        fetch_url(url)


def test_redirects_followed(server: str) -> None:
    url = f"http://{server}/redirect?to=/img&code=301"
    assert fetch_url(url, allow_private=True) == PAYLOAD
    absolute = f"http://{server}/redirect?to=http://{server}/img&code=307"
    assert fetch_url(absolute, allow_private=True) == PAYLOAD


def test_redirect_to_private_address_refused(server: str, loopback_is_public: None) -> None:
    assert fetch_url(f"http://{server}/img") == PAYLOAD  # the first hop itself is allowed
    for target in ("http://10.0.0.1/x", "http://169.254.169.254/", "http://[::1]/"):
        with pytest.raises(UrlNotAllowedError, match="resolves to"):
            fetch_url(f"http://{server}/redirect?to={target}")


def test_redirect_to_other_scheme_refused(server: str) -> None:
    with pytest.raises(UrlNotAllowedError, match="only http"):
        fetch_url(f"http://{server}/redirect?to=file:///etc/passwd", allow_private=True)


def test_redirect_limit(server: str) -> None:
    with pytest.raises(UrlFetchError, match="redirected more than 3 times"):
        fetch_url(f"http://{server}/loop", allow_private=True)
    chain = f"http://{server}/redirect?to=/redirect%3Fto%3D/img"
    with pytest.raises(UrlFetchError, match="more than 1 times"):
        fetch_url(chain, allow_private=True, max_redirects=1)
    assert fetch_url(chain, allow_private=True, max_redirects=2) == PAYLOAD


def test_redirect_without_location(server: str) -> None:
    with pytest.raises(UrlFetchError, match="without a Location"):
        fetch_url(f"http://{server}/no-location", allow_private=True)


@pytest.mark.parametrize("status", [404, 500, 204])
def test_status_codes(server: str, status: int) -> None:
    url = f"http://{server}/status/{status}"
    if status == 204:
        assert fetch_url(url, allow_private=True) == b""
        return
    with pytest.raises(UrlFetchError, match=f"HTTP {status}"):
        fetch_url(url, allow_private=True)


def test_declared_length_over_limit_refused_early(server: str) -> None:
    with pytest.raises(UrlFetchError, match="200000 bytes; the limit is 100000"):
        fetch_url(f"http://{server}/big-declared", allow_private=True, max_bytes=100_000)


def test_streamed_body_over_limit_aborted(server: str) -> None:
    with pytest.raises(UrlFetchError, match="more than the limit of 100000 bytes"):
        fetch_url(f"http://{server}/big-streamed", allow_private=True, max_bytes=100_000)
    assert len(fetch_url(f"http://{server}/big-streamed", allow_private=True)) == 500_000


def test_exact_limit_is_fine(server: str) -> None:
    assert fetch_url(f"http://{server}/img", allow_private=True, max_bytes=len(PAYLOAD)) == PAYLOAD


def test_slow_response_times_out(server: str) -> None:
    started = time.monotonic()
    with pytest.raises(UrlFetchError, match="timed out"):
        fetch_url(f"http://{server}/slow?s=2", allow_private=True, timeout_s=0.5)
    assert time.monotonic() - started < 1.5


def test_trickling_body_hits_the_overall_deadline(server: str) -> None:
    # Each byte arrives well within the socket timeout; only a whole-fetch deadline stops this.
    started = time.monotonic()
    with pytest.raises(UrlFetchError, match="timed out"):
        fetch_url(f"http://{server}/trickle", allow_private=True, timeout_s=0.8)
    assert time.monotonic() - started < 2.0


def test_connection_refused(server: str) -> None:
    with pytest.raises(UrlFetchError, match="could not connect"):
        fetch_url("http://127.0.0.1:1/x", allow_private=True, timeout_s=2)


def test_unresolvable_host(monkeypatch: pytest.MonkeyPatch) -> None:
    # Stubbed so the test never waits on whatever resolver this machine has.
    def fail(*args: object, **kwargs: object) -> list:
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(urlfetch.socket, "getaddrinfo", fail)
    with pytest.raises(UrlFetchError, match=r"could not resolve host 'no-such-host\.invalid'"):
        fetch_url("http://no-such-host.invalid/x", timeout_s=2)


def test_hanging_resolver_bounded_by_the_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    release = threading.Event()

    def hang(*args: object, **kwargs: object) -> list:
        release.wait(5)
        raise socket.gaierror(socket.EAI_AGAIN, "temporary failure")

    monkeypatch.setattr(urlfetch.socket, "getaddrinfo", hang)
    started = time.monotonic()
    try:
        with pytest.raises(UrlFetchError, match="timed out resolving"):
            fetch_url("http://slow-dns.example/x", timeout_s=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 1.5


# --- TLS: the connection goes to the pinned IP, but the certificate is checked against the hostname ----


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not available to make a test certificate")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "1", "-subj", "/CN=kennel.test", "-addext", "subjectAltName=DNS:kennel.test",
            "-keyout", str(key), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    server = _Server(("127.0.0.1", 0), _Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    for address in _serve(server):
        yield address.rsplit(":", 1)[1], cert


@pytest.fixture
def fake_dns(monkeypatch: pytest.MonkeyPatch) -> None:
    real = urlfetch._resolve

    def resolve(host: str, port: int, deadline: float) -> list:
        if host.endswith(".test"):
            return [ipaddress.ip_address("127.0.0.1")]
        return real(host, port, deadline)

    monkeypatch.setattr(urlfetch, "_resolve", resolve)


def test_https_verifies_against_the_hostname(tls_server: tuple[str, Path], fake_dns: None) -> None:
    port, cert = tls_server
    trusted = ssl.create_default_context(cafile=str(cert))
    body = fetch_url(f"https://kennel.test:{port}/img", allow_private=True, ssl_context=trusted)
    assert body == PAYLOAD
    with pytest.raises(UrlFetchError, match="certificate"):
        fetch_url(f"https://other.test:{port}/img", allow_private=True, ssl_context=trusted)


def test_https_default_context_rejects_self_signed(tls_server: tuple[str, Path], fake_dns: None) -> None:
    port, _ = tls_server
    with pytest.raises(UrlFetchError, match="certificate"):
        fetch_url(f"https://kennel.test:{port}/img", allow_private=True)


def test_https_still_applies_the_address_policy(tls_server: tuple[str, Path], fake_dns: None) -> None:
    port, _ = tls_server
    with pytest.raises(UrlNotAllowedError, match=r"kennel\.test resolves to 127\.0\.0\.1"):
        fetch_url(f"https://kennel.test:{port}/img")
