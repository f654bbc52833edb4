"""Persistence: one SQLite file in the state directory, through SQLAlchemy Core.

SQLite allows one writer at a time, so writes are serialised by a lock here instead of surfacing
``database is locked`` to clients; reads run concurrently (WAL). ``generation`` increases on every
committed write so in-memory caches (credentials, parsed policies) know when to refresh.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Column, Connection, Integer, MetaData, String, Table, create_engine, event, select

SCHEMA_VERSION = 1

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


class Store:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fresh = not self.path.exists()
        self.engine = create_engine(f"sqlite:///{self.path}", connect_args={"check_same_thread": False})
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


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()
