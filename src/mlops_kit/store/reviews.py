"""Review sets and labels: captured low-confidence cases and the labels people give them, in SQL.

Three tables in the store's database (the prediction log's, so a team on PostgreSQL shares them):
``review_sets`` (one row per capture: its rule, features, classes, model versions),
``review_cases`` (the captured predictions; ``case_id`` is the primary key, so a case is in one
review set at most, even when two captures run at once) and ``review_labels`` (one label per case;
labelling a case again replaces its label). Every write is one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from mlops_kit.store.db import create_tables, exists, make_engine, metadata

review_sets = sa.Table(
    "review_sets",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),  # capture order
    sa.Column("version", sa.String(64), nullable=False, unique=True),  # hash of its cases
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),  # UTC
    sa.Column("rule", sa.String(200), nullable=False),  # which predictions it took
    sa.Column("threshold", sa.Float, nullable=True),  # None: the API's own low-confidence flag
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("classes", sa.JSON, nullable=False),
    sa.Column("model_versions", sa.JSON, nullable=False),
)
review_cases = sa.Table(
    "review_cases",
    metadata,
    sa.Column("case_id", sa.String(200), primary_key=True),  # request id # position in it
    sa.Column("review_set", sa.ForeignKey("review_sets.version"), nullable=False, index=True),
    sa.Column("position", sa.Integer, nullable=False),  # order within the review set
    sa.Column("prediction_id", sa.BigInteger, nullable=False),  # the row of the prediction log
    sa.Column("request_id", sa.String(64), nullable=False),
    sa.Column("record_index", sa.Integer, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),  # when it was predicted
    sa.Column("model_version", sa.String(32), nullable=False),
    sa.Column("predicted", sa.String(200), nullable=False),
    sa.Column("confidence", sa.Float, nullable=False),
    sa.Column("inputs", sa.JSON, nullable=False),  # the record the model answered
)
review_labels = sa.Table(
    "review_labels",
    metadata,
    sa.Column("case_id", sa.ForeignKey("review_cases.case_id"), primary_key=True),
    sa.Column("label", sa.String(200), nullable=False),
    sa.Column("labelled_by", sa.String(300), nullable=False),
    sa.Column("labelled_at", sa.DateTime(timezone=True), nullable=False),  # UTC
)


class CaseAlreadyCaptured(RuntimeError):
    """A case of the new review set is already in another one (a concurrent capture took it)."""


def utc(value: datetime) -> datetime:
    """A stored time as an aware UTC datetime (SQLite gives it back without its zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


@contextmanager
def _engine(url: str) -> Iterator[Engine]:
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


@contextmanager
def _transaction(url: str) -> Iterator[Connection]:
    """One transaction on the store, its tables created if needed, foreign keys enforced."""
    with _engine(url) as engine:
        create_tables(engine)
        with engine.begin() as conn:
            if engine.dialect.name == "sqlite":  # SQLite checks foreign keys only when asked
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
            yield conn


def _rows(url: str, query: sa.Select) -> list[dict[str, Any]]:
    """The query's rows as dicts; none when the store or its tables do not exist yet."""
    if not exists(url):
        return []
    with _engine(url) as engine:
        if not sa.inspect(engine).has_table(review_labels.name):
            return []
        with engine.connect() as conn:
            return [dict(row) for row in conn.execute(query).mappings()]


def add_review_set(url: str, review_set: dict[str, Any], cases: list[dict[str, Any]]) -> None:
    """Insert a review set and its cases in one transaction; CaseAlreadyCaptured if one is taken."""
    try:
        with _transaction(url) as conn:
            conn.execute(review_sets.insert(), [review_set])
            conn.execute(
                review_cases.insert(),
                [{**case, "review_set": review_set["version"]} for case in cases],
            )
    except sa.exc.IntegrityError as exc:
        raise CaseAlreadyCaptured(str(exc).splitlines()[0]) from exc


def list_review_sets(url: str) -> list[dict[str, Any]]:
    """Every review set with its number of cases, oldest first."""
    count = (
        sa.select(sa.func.count())
        .where(review_cases.c.review_set == review_sets.c.version)
        .scalar_subquery()
    )
    query = sa.select(review_sets, count.label("cases")).order_by(review_sets.c.id)
    return _rows(url, query)


def captured_case_ids(url: str) -> set[str]:
    """The id of every case some review set holds."""
    return {row["case_id"] for row in _rows(url, sa.select(review_cases.c.case_id))}


def cases_of(url: str, version: str) -> list[dict[str, Any]]:
    """A review set's cases, in their order."""
    query = (
        sa.select(review_cases)
        .where(review_cases.c.review_set == version)
        .order_by(review_cases.c.position)
    )
    return _rows(url, query)


def labelled_rows(url: str, versions: list[str] | None = None) -> list[dict[str, Any]]:
    """Every labelled case (its case row and label) of the chosen review sets, oldest first."""
    query = (
        sa.select(
            review_cases,
            review_labels.c.label,
            review_labels.c.labelled_by,
            review_labels.c.labelled_at,
        )
        .join(review_labels, review_labels.c.case_id == review_cases.c.case_id)
        .join(review_sets, review_sets.c.version == review_cases.c.review_set)
        .order_by(review_sets.c.id, review_cases.c.position)
    )
    if versions is not None:
        query = query.where(review_cases.c.review_set.in_(versions))
    return _rows(url, query)


def save_labels(url: str, labels: dict[str, str], labelled_by: str) -> None:
    """Give cases their labels in one transaction: a case labelled before gets the new label."""
    now = datetime.now(UTC)
    rows = [
        {"case_id": case_id, "label": label, "labelled_by": labelled_by, "labelled_at": now}
        for case_id, label in labels.items()
    ]
    with _transaction(url) as conn:
        _replace_labels(conn, rows)


def _replace_labels(conn: Connection, rows: list[dict[str, Any]]) -> None:
    ids = [row["case_id"] for row in rows]
    for start in range(0, len(ids), 500):  # stay below the database's limit on parameters
        chunk = ids[start : start + 500]
        conn.execute(review_labels.delete().where(review_labels.c.case_id.in_(chunk)))
    if rows:
        conn.execute(review_labels.insert(), rows)
