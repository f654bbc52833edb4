"""SeaweedFS's security files: a CA and leaves that verify, owner-only files, a config that names them."""

from __future__ import annotations

import socket
import threading
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from kennel.cloud.objectstore import weedsecurity
from kennel.cloud.objectstore.weedsecurity import COMPONENTS


def test_files_are_private_and_chain_to_the_ca(tmp_path: Path) -> None:
    security = weedsecurity.ensure(tmp_path)
    assert security.directory.stat().st_mode & 0o777 == 0o700
    assert not (security.directory / "ca.key").exists()  # nothing can issue another certificate
    ca = x509.load_pem_x509_certificate(security.ca_cert.read_bytes())
    for component in COMPONENTS:
        for path in (security.cert(component), security.key(component)):
            assert path.stat().st_mode & 0o777 == 0o600
        leaf = x509.load_pem_x509_certificate(security.cert(component).read_bytes())
        leaf.verify_directly_issued_by(ca)
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "127.0.0.1" in [str(ip) for ip in names.get_values_for_type(x509.IPAddress)]
        assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
    assert security.config.stat().st_mode & 0o777 == 0o600
    security.client_context()  # loads: the client pair matches


def test_config_turns_on_mtls_everywhere_and_jwt(tmp_path: Path) -> None:
    security = weedsecurity.ensure(tmp_path)
    config = tomllib.loads(security.config.read_text())
    assert config["grpc"]["ca"] == str(security.ca_cert)
    for component in ("master", "volume", "filer", "s3", "client"):
        assert Path(config["grpc"][component]["cert"]).exists()
    for component in ("master", "volume"):
        assert config["https"][component]["ca"] == str(security.ca_cert)  # client certificates required
    assert config["https"]["client"]["enabled"] is True
    keys = [config["jwt"]["signing"]["key"], config["jwt"]["signing"]["read"]["key"],
            config["jwt"]["filer_signing"]["key"], config["jwt"]["filer_signing"]["read"]["key"]]  # fmt: skip
    assert all(len(k) >= 40 for k in keys) and len(set(keys)) == 4
    assert config["access"]["ui"] is False


def test_second_start_keeps_keys_and_certificates(tmp_path: Path) -> None:
    first = weedsecurity.ensure(tmp_path)
    before = {p.name: p.read_bytes() for p in first.directory.iterdir()}
    config = first.config.read_text()
    second = weedsecurity.ensure(tmp_path)
    assert {p.name: p.read_bytes() for p in second.directory.iterdir()} == before
    assert second.config.read_text() == config


def test_a_missing_certificate_reissues_all(tmp_path: Path) -> None:
    security = weedsecurity.ensure(tmp_path)
    old_ca = security.ca_cert.read_bytes()
    security.cert("volume").unlink()
    weedsecurity.ensure(tmp_path)
    assert security.cert("volume").exists() and security.ca_cert.read_bytes() != old_ca


def test_config_follows_a_moved_state_directory_and_keeps_jwt_keys(tmp_path: Path) -> None:
    first = weedsecurity.ensure(tmp_path / "a")
    keys = tomllib.loads(first.config.read_text())["jwt"]
    (tmp_path / "a").rename(tmp_path / "b")
    moved = weedsecurity.ensure(tmp_path / "b")
    config = tomllib.loads(moved.config.read_text())
    assert config["jwt"] == keys
    assert config["grpc"]["ca"] == str(tmp_path / "b" / "tls" / "ca.crt")


def _one_shot_server(reply: bytes) -> tuple[int, threading.Thread]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def answer() -> None:
        with listener, listener.accept()[0] as conn:
            conn.recv(64)
            if reply:
                conn.sendall(reply)

    thread = threading.Thread(target=answer, daemon=True)
    thread.start()
    return port, thread


def test_plaintext_grpc_is_detected() -> None:
    settings_frame = b"\x00\x00\x06\x04\x00\x00\x00\x00\x00" + b"\x00\x03\x00\x00\x00\x64"
    port, thread = _one_shot_server(settings_frame)
    assert weedsecurity.plaintext_grpc_answers(port)
    thread.join(timeout=5)
    port, thread = _one_shot_server(b"\x15\x03\x03\x00\x02\x02\x50")  # a TLS alert: not plaintext gRPC
    assert not weedsecurity.plaintext_grpc_answers(port)
    thread.join(timeout=5)
