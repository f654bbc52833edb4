"""Schema 3: the session-policy columns reach stores written by older versions."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from kennel.cloud.auth import tables as t  # noqa: F401  (registers sts_sessions)
from kennel.cloud.statestore import SCHEMA_VERSION, StateStore


def _columns(db: Path) -> set[str]:
    with sqlite3.connect(db) as raw:
        return {row[1] for row in raw.execute('PRAGMA table_info("sts_sessions")')}


def test_fresh_store_has_the_columns(tmp_path: Path) -> None:
    StateStore(tmp_path / "kennel.db").close()
    assert {"session_policy", "session_policy_arns"} <= _columns(tmp_path / "kennel.db")


def test_schema_2_store_gains_the_columns_and_keeps_its_sessions(tmp_path: Path) -> None:
    db = tmp_path / "kennel.db"
    StateStore(db).close()
    # What a schema-2 Kennel left behind: the table without the two columns, one session in it.
    with sqlite3.connect(db) as raw:
        raw.execute("ALTER TABLE sts_sessions DROP COLUMN session_policy")
        raw.execute("ALTER TABLE sts_sessions DROP COLUMN session_policy_arns")
        raw.execute(
            "INSERT INTO sts_sessions (access_key_id, secret, session_token, role_name, session_name,"
            " source_arn, created, expires) VALUES ('ASIAOLD', 'x', 'y', 'r', 's', 'arn', 0, 1)"
        )
        raw.execute("UPDATE kennel_meta SET value='2' WHERE key='schema_version'")
    assert "session_policy" not in _columns(db)
    StateStore(db).close()
    assert {"session_policy", "session_policy_arns"} <= _columns(db)
    with sqlite3.connect(db) as raw:
        assert raw.execute("SELECT value FROM kennel_meta").fetchone()[0] == str(SCHEMA_VERSION) == "3"
        row = raw.execute(
            "SELECT access_key_id, session_policy, session_policy_arns FROM sts_sessions"
        ).fetchone()
    assert row == ("ASIAOLD", None, None)  # an old session stays unrestricted, as it was issued
    StateStore(db).close()  # opening again is a no-op
