"""Sealing: AES-GCM round trips, associated data, the key file's safety, and the schema-1 migration."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest
from sqlalchemy import select

from kennel.cloud import sealing
from kennel.cloud.auth import tables as t
from kennel.cloud.sealing import SEALED_PREFIX, Sealer, SealingError, load_or_create_key
from kennel.cloud.services.lambda_ import tables as lt
from kennel.cloud.statestore import SCHEMA_VERSION, StateStore


def test_round_trip_and_fresh_nonce_each_time() -> None:
    sealer = Sealer(os.urandom(32))
    first = sealer.seal("wJalrXUtnFEMI/K7MDENG", "iam_access_keys.secret")
    second = sealer.seal("wJalrXUtnFEMI/K7MDENG", "iam_access_keys.secret")
    assert first.startswith(SEALED_PREFIX) and first != second
    assert "wJalr" not in first
    assert sealer.open(first, "iam_access_keys.secret") == "wJalrXUtnFEMI/K7MDENG"


def test_column_is_associated_data() -> None:
    sealer = Sealer(os.urandom(32))
    token = sealer.seal("value", "sts_sessions.session_token")
    with pytest.raises(SealingError, match="does not open"):
        sealer.open(token, "sts_sessions.secret")


def test_other_key_tampering_and_plaintext_refused() -> None:
    sealer = Sealer(os.urandom(32))
    token = sealer.seal("value", "c")
    with pytest.raises(SealingError):
        Sealer(os.urandom(32)).open(token, "c")
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    with pytest.raises(SealingError):
        sealer.open(flipped, "c")
    with pytest.raises(SealingError, match="not sealed"):
        sealer.open("plain", "c")
    with pytest.raises(SealingError):
        Sealer(b"short")


def test_key_file_created_0600_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "state" / "secrets.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert (path.stat().st_mode & 0o777) == 0o600
    assert load_or_create_key(path) == key
    assert [p.name for p in path.parent.iterdir()] == ["secrets.key"]  # no temporary left behind


def test_concurrent_creation_agrees(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    keys: list[bytes] = []
    threads = [threading.Thread(target=lambda: keys.append(load_or_create_key(path))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert len(keys) == 8 and len(set(keys)) == 1


def test_unsafe_key_files_refused(tmp_path: Path) -> None:
    path = tmp_path / "secrets.key"
    load_or_create_key(path)
    os.chmod(path, 0o644)
    with pytest.raises(SealingError, match="chmod 600"):
        load_or_create_key(path)
    os.chmod(path, 0o600)
    link = tmp_path / "link.key"
    link.symlink_to(path)
    with pytest.raises(OSError):
        load_or_create_key(link)  # O_NOFOLLOW: a planted link does not redirect the key
    (tmp_path / "torn.key").write_bytes(b"x" * 5)
    os.chmod(tmp_path / "torn.key", 0o600)
    with pytest.raises(SealingError, match="5 bytes"):
        load_or_create_key(tmp_path / "torn.key")


def test_environment_scrubbing() -> None:
    env = {
        "AWS_SECRET_ACCESS_KEY": "s",
        "AWS_PROFILE": "p",
        "GITHUB_TOKEN": "t",
        "DB_PASSWORD": "p",
        "PATH": "/usr/bin",
        "KENNEL_STATE_DIR": "/x",
    }
    assert sealing.without_secrets(env) == {"PATH": "/usr/bin", "KENNEL_STATE_DIR": "/x"}


def _add_key(store: StateStore, secret: str) -> None:
    with store.write() as conn:
        conn.execute(t.users.insert().values(name="u", user_id="AIDAU", path="/", created=1.0))
        conn.execute(
            t.access_keys.insert().values(
                access_key_id="AKIAU", secret=secret, user_name="u", status="Active", created=1.0
            )
        )
        conn.execute(lt.functions.insert().values(name="f", created=1.0, next_version=1, tags="{}"))
        conn.execute(
            lt.versions.insert().values(
                function="f",
                version="$LATEST",
                config='{"Variables": {"API": "LAMBDAVARIABLE"}}',
                code_sha="0",
                code_size=0,
                modified=1.0,
                revision="r",
            )
        )


def _files(state: Path) -> bytes:
    return b"".join(p.read_bytes() for p in state.iterdir() if p.name.startswith("kennel.db"))


def test_store_seals_on_write_and_opens_on_read(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "kennel.db")
    _add_key(store, "STORESECRETVALUE")
    with store.read() as conn:
        assert conn.execute(select(t.access_keys.c.secret)).scalar_one() == "STORESECRETVALUE"
        assert "LAMBDAVARIABLE" in conn.execute(select(lt.versions.c.config)).scalar_one()
    assert b"STORESECRETVALUE" not in _files(tmp_path) and b"LAMBDAVARIABLE" not in _files(tmp_path)
    store.close()


def test_schema_1_store_is_sealed_and_scrubbed_on_open(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "kennel.db")
    _add_key(store, "placeholder")
    store.close()
    raw = sqlite3.connect(tmp_path / "kennel.db")
    raw.execute("PRAGMA secure_delete=OFF")  # as a schema-1 Kennel wrote its files
    raw.execute("UPDATE iam_access_keys SET secret='OLDPLAINSECRET'")
    raw.execute("""UPDATE lambda_versions SET config='{"Variables": {"K": "OLDPLAINVARIABLE"}}'""")
    raw.execute("UPDATE kennel_meta SET value='1' WHERE key='schema_version'")
    raw.commit()
    raw.close()
    assert b"OLDPLAINSECRET" in _files(tmp_path)

    store = StateStore(tmp_path / "kennel.db")
    with store.read() as conn:
        assert conn.execute(select(t.access_keys.c.secret)).scalar_one() == "OLDPLAINSECRET"
        assert "OLDPLAINVARIABLE" in conn.execute(select(lt.versions.c.config)).scalar_one()
    store.close()
    raw = sqlite3.connect(tmp_path / "kennel.db")
    assert raw.execute("SELECT value FROM kennel_meta").fetchone()[0] == str(SCHEMA_VERSION)
    assert raw.execute("SELECT secret FROM iam_access_keys").fetchone()[0].startswith(SEALED_PREFIX)
    raw.close()
    data = _files(tmp_path)
    assert b"OLDPLAINSECRET" not in data and b"OLDPLAINVARIABLE" not in data


def test_store_with_another_key_does_not_open(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "kennel.db")
    _add_key(store, "S")
    store.close()
    other = tmp_path / "other.key"
    load_or_create_key(other)
    store = StateStore(tmp_path / "kennel.db", key_file=other)
    with pytest.raises(SealingError), store.read() as conn:
        conn.execute(select(t.access_keys.c.secret)).all()
    store.close()


def test_a_sealed_store_without_its_key_says_so(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "kennel.db")
    _add_key(store, "S")
    store.close()
    (tmp_path / "secrets.key").unlink()
    with pytest.raises(SealingError, match=r"secrets\.key is missing"):
        StateStore(tmp_path / "kennel.db")
    assert not (tmp_path / "secrets.key").exists()  # no new key that could seal nothing old
