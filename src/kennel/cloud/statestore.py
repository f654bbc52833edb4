"""The state store (resources, identities, jobs, metrics): one SQLite file in the state directory, through
SQLAlchemy Core. (The object store is SeaweedFS, `objectstore/`; Lambda code blobs: `lambda_/codestore.py`.)

SQLite allows one writer at a time, so writes are serialised by a lock here instead of surfacing
``database is locked`` to clients; reads run concurrently (WAL). ``generation`` increases on every
committed write so in-memory caches (credentials, parsed policies) know when to refresh.

Columns typed ``Sealed`` (access-key secrets, session credentials, Lambda configurations) are stored
encrypted with the key in ``<state>/secrets.key`` (see ``kennel.cloud.sealing``). Schema history:
1 → 2 sealed those columns; opening a version-1 store seals its plaintext rows in place, then
rewrites the file and empties the WAL so no plaintext copy stays on disk.
2 → 3 added the session-policy columns of ``sts_sessions`` (see ``ADDED_COLUMNS``).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import (
    Column,
    Connection,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    literal_column,
    select,
    type_coerce,
    update,
)

from kennel.cloud.sealing import (
    KEY_FILE,
    SEALED_PREFIX,
    Sealed,
    Sealer,
    SealingError,
    attach,
    load_or_create_key,
)

SCHEMA_VERSION = 3

# Columns added to tables that already existed, with the schema version that added them. create_all
# makes missing tables whole but never alters an existing one, so an older store gets these by ALTER
# TABLE (nullable, no default: rows written before mean "not set").
ADDED_COLUMNS: tuple[tuple[int, str, str, str], ...] = (
    (3, "sts_sessions", "session_policy", "TEXT"),
    (3, "sts_sessions", "session_policy_arns", "TEXT"),
)

metadata = MetaData()

meta_table = Table(
    "kennel_meta",
    metadata,
    Column("key", String, primary_key=True),
    Column("value", String, nullable=False),
)

counters = Table(
    "kennel_counters",
    metadata,
    Column("name", String, primary_key=True),
    Column("value", Integer, nullable=False),
)


class SchemaMismatch(RuntimeError):
    pass


class StateStore:
    def __init__(self, path: Path, *, key_file: Path | None = None) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        key_path = key_file or self.path.parent / KEY_FILE
        if not fresh and not key_path.exists() and _sealed_schema(self.path):
            # A new key could open nothing already sealed: say so instead of failing on first use.
            raise SealingError(
                f"{key_path} is missing, so the secrets sealed in {self.path} cannot be opened; restore "
                "the key file from a backup of this state directory (or start with a new state directory)"
            )
        # Read once, held in memory: the key never travels through the environment.
        sealer = Sealer(load_or_create_key(key_path))
        self.engine = create_engine(f"sqlite:///{self.path}", connect_args={"check_same_thread": False})
        attach(self.engine.dialect, sealer)
        event.listen(self.engine, "connect", _sqlite_pragmas)
        self._write_lock = threading.RLock()
        self.generation = 0
        metadata.create_all(self.engine)
        if fresh:
            os.chmod(self.path, 0o600)  # secrets live here: owner-only
        self._check_schema()

    def _check_schema(self) -> None:
        with self.write() as conn:
            row = conn.execute(select(meta_table.c.value).where(meta_table.c.key == "schema_version")).first()
            if row is None:
                conn.execute(meta_table.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row[0]) > SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"{self.path} was written by a newer Kennel (schema {row[0]} > {SCHEMA_VERSION}); "
                    "upgrade Kennel"
                )
            elif int(row[0]) < SCHEMA_VERSION:
                add_columns(conn, int(row[0]))
                conn.execute(
                    meta_table.update()
                    .where(meta_table.c.key == "schema_version")
                    .values(value=str(SCHEMA_VERSION))
                )
            # Every open, not only on the version step: a process that had not imported some
            # table module when the version moved would otherwise leave that table's rows plain.
            sealed = seal_plaintext(conn)
        if sealed:
            self.scrub()

    def scrub(self) -> None:
        """Rewrite the file and empty the WAL: pages that held plaintext before sealing are gone."""
        with self._write_lock, self.engine.connect() as conn:
            raw = conn.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            raw.execute("VACUUM")
            raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @contextmanager
    def write(self, *, bump: bool = True) -> Iterator[Connection]:
        """A transaction that commits on success; bumps ``generation`` so caches refresh.

        ``bump=False`` for bookkeeping writes (audit, last-used times) that no cache depends on.
        """
        with self._write_lock, self.engine.begin() as conn:
            yield conn
        if bump:
            self.generation += 1

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as conn:
            yield conn

    def next_value(self, conn: Connection, name: str) -> int:
        """A durable counter (e.g. policy version numbers), inside the caller's transaction."""
        row = conn.execute(select(counters.c.value).where(counters.c.name == name)).first()
        value = (row[0] if row else 0) + 1
        if row:
            conn.execute(counters.update().where(counters.c.name == name).values(value=value))
        else:
            conn.execute(counters.insert().values(name=name, value=value))
        return value

    def close(self) -> None:
        self.engine.dispose()


def add_columns(conn: Connection, from_version: int) -> None:
    """ALTER TABLE for the ``ADDED_COLUMNS`` newer than ``from_version``; a column already there (a
    table created whole by this version's create_all) is left alone."""
    for version, table, column, sql_type in ADDED_COLUMNS:
        if version <= from_version:
            continue
        present = {info[1] for info in conn.exec_driver_sql(f'PRAGMA table_info("{table}")')}
        if present and column not in present:
            conn.exec_driver_sql(f'ALTER TABLE "{table}" ADD COLUMN "{column}" {sql_type}')


def _sealed_schema(path: Path) -> bool:
    """Whether the store at ``path`` was written at schema 2 or later (its secrets are sealed)."""
    try:
        connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            row = connection.execute("SELECT value FROM kennel_meta WHERE key = 'schema_version'").fetchone()
        finally:
            connection.close()
    except sqlite3.Error:
        return False
    return row is not None and int(row[0]) >= 2


def seal_plaintext(conn: Connection) -> int:
    """Seal rows of ``Sealed`` columns still in plaintext (schema 1); the number of values sealed."""
    count = 0
    for table in metadata.sorted_tables:
        for column in table.columns:
            if not isinstance(column.type, Sealed):
                continue
            raw = type_coerce(column, Text)  # read the stored text as is: no opening
            rowid = literal_column("rowid")
            plain = conn.execute(
                select(rowid, raw).where(raw.is_not(None), raw.not_like(f"{SEALED_PREFIX}%"))
            ).all()
            for row_id, value in plain:
                conn.execute(update(table).where(rowid == row_id).values({column.name: value}))
                count += 1
    return count


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    # Freed pages and cells are zeroed: a value overwritten or deleted leaves no copy in the file.
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
