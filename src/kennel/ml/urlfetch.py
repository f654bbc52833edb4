"""Fetch an image URL on behalf of a client without becoming an SSRF proxy.

Each hop's host is resolved once, every resolved address is checked against the policy, and the
connection goes to that already-checked address (the hostname is only used for the ``Host`` header
and TLS verification), so a DNS answer that changes between check and connect cannot redirect us to
an internal service. Redirects are followed by hand so every hop goes through the same checks.
"""

from __future__ import annotations

import http.client
import ipaddress
import socket
import ssl
import threading
import time
from urllib.parse import urljoin, urlsplit

from .errors import UrlFetchError, UrlNotAllowedError

_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 << 10
_USER_AGENT = "kennel-urlfetch/1"

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Prefixes that carry an IPv4 address inside an IPv6 one; the embedded address decides.
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def fetch_url(
    url: str,
    *,
    max_bytes: int = 10 << 20,
    timeout_s: float = 10.0,
    allow_private: bool = False,
    max_redirects: int = 3,
    ssl_context: ssl.SSLContext | None = None,
) -> bytes:
    """GET ``url`` (http/https only) and return the body, at most ``max_bytes`` of it.

    ``timeout_s`` bounds the whole fetch, redirects included, not just each socket operation, so a
    server that trickles bytes cannot hold a worker indefinitely. ``ssl_context`` defaults to
    ``ssl.create_default_context()`` (system CAs, hostname checking).
    """
    deadline = time.monotonic() + timeout_s
    context = ssl_context or ssl.create_default_context()
    current = url
    for hop in range(max_redirects + 1):
        target = _Target.parse(current)
        addresses = _resolve(target.host, target.port, deadline)
        if not allow_private:
            for address in addresses:
                reason = _forbidden_reason(address)
                if reason:
                    raise UrlNotAllowedError(
                        f"refusing to fetch {_display(current)}: {target.host} resolves to {address}, "
                        f"which is {reason}. Only public internet addresses may be fetched."
                    )
        status, location, body = _fetch_once(target, addresses, deadline, max_bytes, context)
        if status in _REDIRECTS:
            if not location:
                raise UrlFetchError(f"{_display(current)} answered HTTP {status} without a Location header")
            if hop == max_redirects:
                raise UrlFetchError(
                    f"{_display(url)} redirected more than {max_redirects} times; give the final URL instead"
                )
            current = urljoin(current, location)
            continue
        if not 200 <= status < 300:
            raise UrlFetchError(f"{_display(current)} answered HTTP {status}; expected 2xx")
        return body
    raise AssertionError("unreachable: the loop either returns or raises")


class _Target:
    __slots__ = ("host", "host_header", "path", "port", "scheme")

    def __init__(self, scheme: str, host: str, port: int, path: str, host_header: str) -> None:
        self.scheme, self.host, self.port, self.path, self.host_header = scheme, host, port, path, host_header

    @classmethod
    def parse(cls, url: str) -> _Target:
        try:
            parts = urlsplit(url.strip())
            port = parts.port
        except ValueError as exc:
            raise UrlFetchError(f"{_display(url)} is not a valid URL: {exc}") from exc
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise UrlNotAllowedError(
                f"refusing to fetch {_display(url)}: only http:// and https:// URLs are allowed, "
                f"not {scheme + '://' if scheme else 'a URL without a scheme'}"
            )
        if parts.username is not None or parts.password is not None:
            raise UrlNotAllowedError(
                f"refusing to fetch {_display(url)}: URLs with credentials are not supported"
            )
        host = parts.hostname
        if not host:
            raise UrlFetchError(f"{_display(url)} has no host name")
        try:
            ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
        except UnicodeError as exc:
            raise UrlFetchError(f"{_display(url)} has an invalid host name: {exc}") from exc
        default_port = 443 if scheme == "https" else 80
        port = port or default_port
        shown_host = f"[{ascii_host}]" if ":" in ascii_host else ascii_host
        host_header = shown_host if port == default_port else f"{shown_host}:{port}"
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        if any(ord(c) < 0x21 or ord(c) == 0x7F for c in path):
            raise UrlFetchError(f"{_display(url)} contains spaces or control characters; percent-encode them")
        return cls(scheme, ascii_host, port, path, host_header)


def _resolve(host: str, port: int, deadline: float) -> list[IPAddress]:
    infos = _getaddrinfo_until(host, port, deadline)
    addresses: list[IPAddress] = []
    for family, _type, _proto, _canon, sockaddr in infos:
        if family not in (socket.AF_INET, socket.AF_INET6):
            continue
        # Strip an IPv6 scope id ("fe80::1%eth0"); ip_address() rejects it in some Python versions.
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise UrlFetchError(f"host {host!r} has no IPv4 or IPv6 address")
    return addresses


def _getaddrinfo_until(host: str, port: int, deadline: float) -> list[tuple]:
    """``getaddrinfo`` has no timeout of its own; run it in a daemon thread and stop waiting at the deadline.

    A resolver that hangs leaves that thread behind until the system resolver gives up, which is
    cheaper than holding the request (and the caller's worker) for it.
    """
    infos: list[tuple] = []
    errors: list[Exception] = []
    done = threading.Event()

    def lookup() -> None:
        try:
            infos.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except (OSError, UnicodeError) as exc:  # gaierror is an OSError
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=lookup, name="kennel-urlfetch-dns", daemon=True).start()
    if not done.wait(_remaining(deadline, f"resolving {host!r}")):
        raise UrlFetchError(f"timed out resolving host {host!r}")
    if errors:
        raise UrlFetchError(f"could not resolve host {host!r}: {errors[0]}") from errors[0]
    return infos


def _forbidden_reason(address: IPAddress) -> str | None:
    """Why ``address`` must not be fetched from, or None for a public unicast address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]  # the client address; the server half is public by design
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            inner = _forbidden_reason(embedded)
            if inner:
                return f"an IPv6 address wrapping {embedded} ({inner})"
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "a loopback address"),
        (address.is_link_local, "a link-local address (cloud metadata services live here)"),
        (address.is_multicast, "a multicast address"),
        (address.is_private, "a private-network address"),
        (address.is_reserved, "a reserved address"),
        # Catches what the flags above miss, e.g. carrier-grade NAT space 100.64.0.0/10.
        (not address.is_global, "not a globally routable address"),
    )
    for hit, reason in checks:
        if hit:
            return reason
    return None


class _PinnedHTTPSConnection(http.client.HTTPSConnection):
    """TCP to a pre-validated IP, but TLS (SNI and certificate check) against the original hostname."""

    def __init__(self, ip: str, port: int, *, server_hostname: str, context: ssl.SSLContext, timeout: float):
        super().__init__(ip, port, timeout=timeout, context=context)
        self._server_hostname = server_hostname
        self._pinned_context = context

    def connect(self) -> None:
        http.client.HTTPConnection.connect(self)
        self.sock = self._pinned_context.wrap_socket(self.sock, server_hostname=self._server_hostname)


def _remaining(deadline: float, what: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise UrlFetchError(f"timed out {what}")
    return left


def _fetch_once(
    target: _Target,
    addresses: list[IPAddress],
    deadline: float,
    max_bytes: int,
    context: ssl.SSLContext,
) -> tuple[int, str | None, bytes]:
    where = f"{target.scheme}://{target.host_header}"
    conn = _connect(target, addresses, deadline, context)
    # Kept here because http.client drops conn.sock once a "Connection: close" response takes over the
    # socket; the response still reads through it, so its timeout can still be tightened.
    sock = conn.sock
    assert sock is not None  # _connect only returns connected connections
    try:
        try:
            conn.request(
                "GET",
                target.path,
                headers={
                    "Host": target.host_header,
                    "User-Agent": _USER_AGENT,
                    "Accept": "image/*, */*;q=0.5",
                    # Compressed transfer would let a small response expand past max_bytes after the check.
                    "Accept-Encoding": "identity",
                    "Connection": "close",
                },
            )
            sock.settimeout(_remaining(deadline, f"waiting for {where}"))
            response = conn.getresponse()
            status = response.status
            if status in _REDIRECTS:
                return status, response.getheader("Location"), b""
            if not 200 <= status < 300:
                return status, None, b""
            declared = response.getheader("Content-Length")
            if declared and declared.strip().isdigit() and int(declared) > max_bytes:
                raise UrlFetchError(
                    f"{where}{target.path} is {int(declared)} bytes; the limit is {max_bytes} bytes"
                )
            chunks: list[bytes] = []
            received = 0
            while True:
                sock.settimeout(_remaining(deadline, f"downloading {where}{target.path}"))
                # read1 returns whatever one recv() brings; read(n) would block until n bytes arrived,
                # so a trickling server could outlive the deadline one byte at a time.
                chunk = response.read1(min(_CHUNK, max_bytes - received + 1))
                if not chunk:
                    break
                received += len(chunk)
                if received > max_bytes:
                    raise UrlFetchError(
                        f"{where}{target.path} sent more than the limit of {max_bytes} bytes; aborted"
                    )
                chunks.append(chunk)
            return status, None, b"".join(chunks)
        except TimeoutError as exc:
            raise UrlFetchError(f"timed out talking to {where}") from exc
        except ssl.SSLError as exc:
            raise UrlFetchError(f"TLS error talking to {where}: {exc}") from exc
        except (http.client.HTTPException, OSError) as exc:
            raise UrlFetchError(f"fetching {where}{target.path} failed: {exc or type(exc).__name__}") from exc
    finally:
        conn.close()


def _connect(
    target: _Target, addresses: list[IPAddress], deadline: float, context: ssl.SSLContext
) -> http.client.HTTPConnection:
    errors: list[str] = []
    for address in addresses:
        timeout = _remaining(deadline, f"connecting to {target.host}")
        conn: http.client.HTTPConnection
        if target.scheme == "https":
            conn = _PinnedHTTPSConnection(
                str(address), target.port, server_hostname=target.host, context=context, timeout=timeout
            )
        else:
            conn = http.client.HTTPConnection(str(address), target.port, timeout=timeout)
        try:
            conn.connect()
            return conn
        except ssl.SSLCertVerificationError as exc:
            conn.close()
            # A certificate failure will not improve on another address of the same host.
            raise UrlFetchError(
                f"TLS certificate check failed for {target.host}: {exc.verify_message}"
            ) from exc
        except ssl.SSLError as exc:
            conn.close()
            errors.append(f"{address}: TLS error {exc}")
        except TimeoutError:
            conn.close()
            errors.append(f"{address}: connection timed out")
        except OSError as exc:
            conn.close()
            errors.append(f"{address}: {exc.strerror or exc}")
    raise UrlFetchError(f"could not connect to {target.host}:{target.port} ({'; '.join(errors)})")


def _display(url: str, limit: int = 200) -> str:
    """The URL for an error message: truncated, so a huge data blob pasted as a URL stays readable."""
    text = repr(url)
    return text if len(text) <= limit else text[: limit - 4] + "...'"
