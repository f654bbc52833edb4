"""SeaweedFS's own credentials: every one of its ports answers only a holder of Kennel's keys.

``weed server`` reads ``security.toml`` (here: ``<state>/objects/security.toml``, found through
``-config_dir``). What this module writes there, all generated on first start and owner-only:

- a private CA, and one certificate per component (master, volume, filer, s3) plus one for clients
  (``client``: Kennel's own probes and weed's internal HTTP client), each valid for 127.0.0.1;
- ``[grpc]`` mutual TLS: the master, volume, filer and S3 gRPC ports refuse a peer without a
  certificate from that CA (``weed shell`` or a raw gRPC client from another process gets nothing);
- ``[https.master]`` / ``[https.volume]`` with a client CA: their HTTP ports become mutual TLS. This
  matters beyond the status pages: the master's HTTP ``/dir/assign`` and ``/dir/lookup`` hand out the
  very JWTs that authorise volume writes and reads, so they must not answer strangers;
- JWT signing keys for volume writes and reads and for the filer (its HTTP API is off as well).

Nothing of this goes through the environment; the files live in the 0700 state directory, which user
code never sees once sandboxed. The filer's and S3's local Unix sockets are in that directory too.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import secrets
import socket
import ssl
import tomllib
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

COMPONENTS = ("master", "volume", "filer", "s3", "client")
CONFIG_NAME = "security.toml"
_VALID_DAYS = 3650
_RENEW_BEFORE = datetime.timedelta(days=30)
_HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00"


@dataclass(frozen=True)
class WeedSecurity:
    root: Path  # <state>/objects

    @property
    def directory(self) -> Path:
        return self.root / "tls"

    @property
    def config(self) -> Path:
        return self.root / CONFIG_NAME

    @property
    def ca_cert(self) -> Path:
        return self.directory / "ca.crt"

    def cert(self, component: str) -> Path:
        return self.directory / f"{component}.crt"

    def key(self, component: str) -> Path:
        return self.directory / f"{component}.key"

    def client_context(self) -> ssl.SSLContext:
        """TLS for Kennel's own HTTPS calls to the master: trusts only our CA, presents our client cert."""
        context = ssl.create_default_context(cafile=str(self.ca_cert))
        context.load_cert_chain(str(self.cert("client")), str(self.key("client")))
        return context


def ensure(root: Path) -> WeedSecurity:
    """Create (or renew when close to expiry) the CA, the certificates and ``security.toml``."""
    security = WeedSecurity(root)
    security.directory.mkdir(parents=True, exist_ok=True)
    os.chmod(security.directory, 0o700)
    if not _all_valid(security):
        _issue_all(security)
    # Rewritten every start (paths are absolute and the state directory may have moved: a path weed
    # cannot open would make it serve gRPC without TLS); the JWT keys are kept.
    rendered = render_config(security, _jwt_keys(security.config))
    if not security.config.exists() or security.config.read_text() != rendered:
        _write_private(security.config, rendered.encode())
    return security


def _jwt_keys(config: Path) -> dict[str, str]:
    try:
        jwt = tomllib.loads(config.read_text())["jwt"]
        filer = jwt["filer_signing"]
        keys = {"write": jwt["signing"]["key"], "read": jwt["signing"]["read"]["key"],
                "filer": filer["key"], "filer_read": filer["read"]["key"]}  # fmt: skip
        if all(isinstance(k, str) and len(k) >= 32 for k in keys.values()):
            return keys
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return {name: secrets.token_urlsafe(32) for name in ("write", "read", "filer", "filer_read")}


def plaintext_grpc_answers(port: int) -> bool:
    """True if ``port`` speaks gRPC without TLS: weed could not load its certificates (it then serves
    in the clear rather than failing), so Kennel must not use it."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
            sock.sendall(_HTTP2_PREFACE)
            answer = sock.recv(16)
    except OSError:
        return False
    return len(answer) >= 9 and answer[3] == 0x04  # an HTTP/2 SETTINGS frame: plaintext gRPC


def render_config(security: WeedSecurity, jwt: dict[str, str]) -> str:
    ca, client = security.ca_cert, "client"
    lines = [
        "# Written by Kennel on first start; owner-only. See kennel/cloud/objectstore/weedsecurity.py.",
        "[jwt.signing]", f'key = "{jwt["write"]}"', "expires_after_seconds = 10",
        "[jwt.signing.read]", f'key = "{jwt["read"]}"', "expires_after_seconds = 10",
        "[jwt.filer_signing]", f'key = "{jwt["filer"]}"', "expires_after_seconds = 10",
        "[jwt.filer_signing.read]", f'key = "{jwt["filer_read"]}"', "expires_after_seconds = 10",
        "[access]", "ui = false",
        "[filer.expose_directory_metadata]", "enabled = false",
        "[grpc]", f'ca = "{ca}"',
    ]  # fmt: skip
    for component in ("master", "volume", "filer", "s3"):
        lines += [f"[grpc.{component}]", f'cert = "{security.cert(component)}"',
                  f'key = "{security.key(component)}"']  # fmt: skip
    lines += ["[grpc.client]", f'cert = "{security.cert(client)}"', f'key = "{security.key(client)}"']
    for component in ("master", "volume"):
        lines += [f"[https.{component}]", f'cert = "{security.cert(component)}"',
                  f'key = "{security.key(component)}"', f'ca = "{ca}"']  # fmt: skip
    lines += ["[https.client]", "enabled = true", f'cert = "{security.cert(client)}"',
              f'key = "{security.key(client)}"', f'ca = "{ca}"']  # fmt: skip
    return "\n".join(lines) + "\n"


def _write_private(path: Path, data: bytes) -> None:
    """Write owner-only from the first byte (no window with a wider mode), replacing atomically."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
    os.replace(temporary, path)


def _all_valid(security: WeedSecurity) -> bool:
    horizon = datetime.datetime.now(datetime.UTC) + _RENEW_BEFORE
    paths = [security.ca_cert] + [security.cert(c) for c in COMPONENTS]
    try:
        certificates = [x509.load_pem_x509_certificate(p.read_bytes()) for p in paths]
        if not all(security.key(c).exists() for c in COMPONENTS):
            return False
    except (OSError, ValueError):
        return False
    ca = certificates[0]
    for certificate in certificates:
        if certificate.not_valid_after_utc < horizon:
            return False
        if certificate is not ca and certificate.issuer != ca.subject:
            return False
    return True


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Kennel object store"),
                      x509.NameAttribute(NameOID.COMMON_NAME, common_name)])  # fmt: skip


def _issue_all(security: WeedSecurity) -> None:
    """A new CA and new leaves. The CA's key is never written: renewing means issuing everything anew."""
    now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=5)  # clock-skew margin
    until = now + datetime.timedelta(days=_VALID_DAYS)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("kennel-objectstore-ca")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(until)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    for component in COMPONENTS:
        key = ec.generate_private_key(ec.SECP256R1())
        leaf = (
            x509.CertificateBuilder()
            .subject_name(_name(f"kennel-{component}"))
            .issuer_name(ca_name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now)
            .not_valid_after(until)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_usage(ca=False), critical=True)
            # Servers answer clients and dial each other, so every leaf serves both roles.
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            .add_extension(
                x509.SubjectAlternativeName(
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
                ),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_private(security.key(component), _pem_key(key))
        _write_private(security.cert(component), leaf.public_bytes(serialization.Encoding.PEM))
    _write_private(security.ca_cert, ca.public_bytes(serialization.Encoding.PEM))


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not ca, content_commitment=False, key_encipherment=False,
        data_encipherment=False, key_agreement=False, key_cert_sign=ca, crl_sign=ca,
        encipher_only=False, decipher_only=False,
    )  # fmt: skip


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
