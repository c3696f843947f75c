"""Schema drift: a database whose tables differ from what its version number says.

Released migrations are never edited, but one was while orch was young: for two hours of
the main line (commits cc2a17e to 5422af7, 2026-12-04) migration 4 made a ``runs`` table
without some of the columns, CHECK values and indexes it makes now. A home from then says
version 4 like any other, so the later migrations ran on a table they did not expect and
failed. Before migrating, the file's tables are compared with a database built in memory
by the same migrations. A table that only *lacks* something of its reference (columns,
allowed values, indexes) is rebuilt to it with its rows; a table with columns the reference
does not have (a development branch's home) is refused, naming them, since rebuilding it
would drop their data. The check runs only when migrations are pending, so a home that is
up to date pays nothing at start.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass

from orchestrator.errors import OrchError
from orchestrator.store.migrations import MIGRATIONS, statements


class SchemaDrift(OrchError):
    """The database's tables are not what its version says, and cannot be repaired."""


@dataclass(frozen=True)
class Table:
    """A table as ``sqlite_master`` holds it: its statement and its indexes' statements."""

    name: str
    sql: str
    indexes: tuple[str, ...]


def repair(conn: sqlite3.Connection, version: int, name: str = "the database") -> list[str]:
    """Rebuild the tables that lack what migrations ``1..version`` give them; returns
    their names. Runs inside the caller's transaction, with foreign keys off (a rebuilt
    table is dropped and renamed, which must not cascade to the rows that refer to it)."""
    built = _built(version)
    try:
        reference = {t: (table, _columns(built, t)) for t, table in _tables(built).items()}
    finally:
        built.close()
    actual = _tables(conn)
    repaired = []
    for table, (wanted, wanted_columns) in reference.items():
        have = actual.get(table)
        if have is None or _same(have, wanted):
            continue
        extra = _columns(conn, table) - wanted_columns
        if extra:
            raise SchemaDrift(
                f"{name}: its table {table} has column(s) {', '.join(sorted(extra))} that "
                f"schema version {version} does not: it was made by a development build of "
                "orch and cannot be migrated safely; move the home aside to start afresh"
            )
        _rebuild(conn, have, wanted)
        repaired.append(table)
    return repaired


def _rebuild(conn: sqlite3.Connection, have: Table, wanted: Table) -> None:
    """``have`` becomes ``wanted`` with its rows (SQLite's twelve-step table change)."""
    scratch = f"_orch_rebuild_{have.name}"
    columns = ", ".join(sorted(_columns(conn, have.name)))
    conn.execute(_renamed(wanted.sql, scratch))
    conn.execute(f"INSERT INTO {scratch} ({columns}) SELECT {columns} FROM {have.name}")
    conn.execute(f"DROP TABLE {have.name}")
    conn.execute(f"ALTER TABLE {scratch} RENAME TO {have.name}")
    for index in wanted.indexes:
        conn.execute(index)


def _built(version: int) -> sqlite3.Connection:
    ref = sqlite3.connect(":memory:")
    for script in MIGRATIONS[:version]:
        for statement in statements(script):
            ref.execute(statement)
    return ref


def _tables(conn: sqlite3.Connection) -> dict[str, Table]:
    rows = conn.execute(
        "SELECT type, name, tbl_name, sql FROM sqlite_master"
        " WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY name"
    ).fetchall()
    indexes: dict[str, list[str]] = {}
    for kind, _, table, sql in rows:
        if kind == "index":
            indexes.setdefault(table, []).append(sql)
    return {
        name: Table(name, sql, tuple(indexes.get(name, ())))
        for kind, name, _, sql in rows
        if kind == "table"
    }


def _same(a: Table, b: Table) -> bool:
    return _plain(a.sql) == _plain(b.sql) and sorted(map(_plain, a.indexes)) == sorted(
        map(_plain, b.indexes)
    )


def _plain(sql: str) -> str:
    """A statement without its comments and with single spaces: how it reads, not looks."""
    return " ".join(re.sub(r"--[^\n]*", "", sql).split())


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}


def _renamed(create: str, name: str) -> str:
    """``CREATE TABLE <any name> (`` … as ``CREATE TABLE name (`` …"""
    return re.sub(r'^CREATE TABLE\s+("[^"]+"|\S+)\s*\(', f"CREATE TABLE {name} (", create, count=1)
