"""Review sets and labels in the store's SQL database: a case in one set at most, one label per case."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlops_kit.store import reviews

# A PostgreSQL database of your own these tests may empty (default: a throwaway cluster),
# e.g. postgresql+psycopg://postgres@127.0.0.1:5432/x
POSTGRES_URL = os.environ.get("TEST_POSTGRES_URL")


def review_set(version: str) -> dict[str, object]:
    return {
        "version": version,
        "created_at": datetime(2026, 11, 28, 9, 0, tzinfo=UTC),
        "rule": "API low-confidence flag",
        "threshold": None,
        "features": ["bill_length_mm", "island"],
        "classes": ["Adelie", "Gentoo"],
        "model_versions": ["1"],
    }


def case(case_id: str, position: int) -> dict[str, object]:
    request_id, index = case_id.split("#")
    return {
        "case_id": case_id,
        "position": position,
        "prediction_id": position + 1,
        "request_id": request_id,
        "record_index": int(index),
        "created_at": datetime(2026, 11, 28, 8, 59, 30, 123456, tzinfo=UTC),
        "model_version": "1",
        "predicted": "Adelie",
        "confidence": 0.55,
        "inputs": {"bill_length_mm": 40.2, "island": None},
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store's URL: a SQLite file, or PostgreSQL: TEST_POSTGRES_URL's, else a throwaway one."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    if not POSTGRES_URL:
        return request.getfixturevalue("pg_url")
    engine = sa.create_engine(POSTGRES_URL)
    tables = [reviews.review_labels, reviews.review_cases, reviews.review_sets]
    reviews.metadata.drop_all(engine, tables=tables)
    engine.dispose()
    return POSTGRES_URL


def test_reading_a_store_that_does_not_exist_creates_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    assert reviews.list_review_sets(url) == []
    assert reviews.captured_case_ids(url) == set()
    assert reviews.labelled_rows(url) == []
    assert not (tmp_path / "store.db").exists()


def test_a_review_set_and_its_cases_read_back(url: str) -> None:
    reviews.add_review_set(url, review_set("aaa"), [case("r1#0", 0), case("r1#3", 1)])

    (entry,) = reviews.list_review_sets(url)
    assert entry["version"] == "aaa" and entry["cases"] == 2
    assert reviews.utc(entry["created_at"]) == datetime(2026, 11, 28, 9, 0, tzinfo=UTC)
    assert entry["features"] == ["bill_length_mm", "island"] and entry["threshold"] is None
    rows = reviews.cases_of(url, "aaa")
    assert [r["case_id"] for r in rows] == ["r1#0", "r1#3"]
    assert rows[0]["inputs"] == {"bill_length_mm": 40.2, "island": None}
    assert reviews.utc(rows[0]["created_at"]).microsecond == 123456


def test_a_case_is_never_in_two_review_sets(url: str) -> None:
    reviews.add_review_set(url, review_set("aaa"), [case("r1#0", 0)])

    # a second capture that raced the first and took the same case along with a new one
    with pytest.raises(reviews.CaseAlreadyCaptured):
        reviews.add_review_set(url, review_set("bbb"), [case("r2#0", 0), case("r1#0", 1)])

    assert [e["version"] for e in reviews.list_review_sets(url)] == ["aaa"]  # nothing of bbb
    assert reviews.captured_case_ids(url) == {"r1#0"}


def test_labelling_a_case_again_replaces_its_label(url: str) -> None:
    reviews.add_review_set(url, review_set("aaa"), [case("r1#0", 0), case("r1#1", 1)])
    reviews.add_review_set(url, review_set("bbb"), [case("r2#0", 0)])

    reviews.save_labels(url, {"r1#0": "Adelie", "r2#0": "Gentoo"}, "ana")
    reviews.save_labels(url, {"r1#0": "Gentoo"}, "bruno")

    rows = reviews.labelled_rows(url)
    assert [(r["case_id"], r["label"], r["labelled_by"]) for r in rows] == [
        ("r1#0", "Gentoo", "bruno"),
        ("r2#0", "Gentoo", "ana"),
    ]
    assert [r["case_id"] for r in reviews.labelled_rows(url, ["bbb"])] == ["r2#0"]


def test_a_label_for_a_case_no_review_set_holds_changes_nothing(url: str) -> None:
    reviews.add_review_set(url, review_set("aaa"), [case("r1#0", 0)])
    reviews.save_labels(url, {"r1#0": "Adelie"}, "ana")

    with pytest.raises(sa.exc.IntegrityError, match="(?i)foreign key"):
        reviews.save_labels(url, {"r1#0": "Gentoo", "nope#9": "Gentoo"}, "bruno")

    (row,) = reviews.labelled_rows(url)
    assert (row["label"], row["labelled_by"]) == ("Adelie", "ana")  # the pass was one transaction
