"""The store's one SQL database: SQLite in the workspace by default, any SQLAlchemy URL for a team."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pydantic_core
import sqlalchemy as sa
from sqlalchemy.engine import Engine

metadata = sa.MetaData()  # every table of the store is declared on this


def to_json(value: object) -> str:
    # NaN is not JSON (PostgreSQL refuses it): a missing number is stored as null
    return pydantic_core.to_json(value, inf_nan_mode="null").decode()


def is_sqlite(url: str) -> bool:
    """True when the URL names a SQLite database."""
    return sa.engine.make_url(url).get_backend_name() == "sqlite"


def exists(url: str) -> bool:
    """False only for a SQLite file that has not been created yet (nothing written so far)."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database:
        return True
    return parsed.database == ":memory:" or Path(parsed.database).exists()


def make_engine(url: str) -> Engine:
    """An engine for the store; on SQLite: the folder exists, WAL and synchronous=NORMAL.

    On a database server (PostgreSQL) a pooled connection is checked before use, so that after
    the server restarts the next statement gets a new connection instead of a dead one.
    """
    parsed = sa.engine.make_url(url)
    sqlite = parsed.get_backend_name() == "sqlite"
    if sqlite and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    server: dict[str, Any] = {}
    if not sqlite:
        server = {"pool_pre_ping": True}
        if parsed.get_backend_name() == "postgresql":
            server["connect_args"] = {"connect_timeout": 10}  # a server that is down fails fast
    engine = sa.create_engine(
        url, json_serializer=to_json, json_deserializer=pydantic_core.from_json, **server
    )
    if sqlite:

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")  # readers never block the writer
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=10000")
            cursor.close()

    return engine


def create_tables(engine: Engine) -> None:
    """Create the store's tables that do not exist yet; add the columns older ones lack."""
    metadata.create_all(engine)
    for table in metadata.sorted_tables:
        add_missing_columns(engine, table)


def add_missing_columns(engine: Engine, table: sa.Table) -> None:
    """Add the columns of `table` that a store made by an older kit lacks; its rows get NULL.

    A column added to a table after its first release must therefore be nullable.
    """
    present = {column["name"] for column in sa.inspect(engine).get_columns(table.name)}
    quote = engine.dialect.identifier_preparer.quote
    for column in table.columns:
        if column.name in present:
            continue
        kind = column.type.compile(dialect=engine.dialect)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(
                    f"ALTER TABLE {quote(table.name)} ADD COLUMN {quote(column.name)} {kind}"
                )
        except sa.exc.DBAPIError:  # another process (the API, a reader) may have just added it
            added = {c["name"] for c in sa.inspect(engine).get_columns(table.name)}
            if column.name not in added:
                raise
