"""Batch traffic in the loop: monitoring and capture read the scored outputs where they lie."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlops_kit import capture
from mlops_kit.monitoring.monitor import monitor
from mlops_kit.monitoring.reference import Reference, reference_for
from mlops_kit.simulator.traffic import season_records
from mlops_kit.store import batches
from tests.helpers import run_cli
from tests.monitoring.logs import BASE, fake_log

HEADERS = {"bill_length_mm": "Culmen Length (mm)"}  # an output keeps the file's own headers


@pytest.fixture
def season(settings) -> pd.DataFrame:
    return season_records(settings)


@pytest.fixture
def reference(settings) -> Reference:
    return reference_for(settings)


def store_batch(settings, frame: pd.DataFrame, batch_id: str, when: datetime) -> Path:
    """Write a `fake_log` table as `mlops-kit score` writes an output, and record the batch."""
    features = [c for c in frame.columns if c not in BASE and not c.startswith("proba_")]
    out = settings.workspace / "scored" / f"{batch_id}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    table = frame[features].rename(columns=HEADERS).assign(ident=range(len(frame)))
    added = frame[["predicted", "confidence"]].join(frame.filter(like="proba_"))
    added = added.assign(
        low_confidence=frame["low_confidence"].to_numpy(),
        model_name=settings.model_name,
        model_version="1",
        batch_id=batch_id,
    )
    whole = pa.Table.from_pandas(pd.concat([table, added], axis=1), preserve_index=False)
    pq.write_table(whole, out, row_group_size=40)  # several row groups, as a big output has
    batches.record(
        settings.store,
        batches.BatchRun(
            batch_id, when, settings.model_name, "1", "in.csv", str(out), len(frame), 0, 0.7,
            {f: HEADERS.get(f, f) for f in features},
        ),
    )  # fmt: skip
    return out


def two_batches(settings, season) -> pd.DataFrame:
    """100 confident rows in one batch, then 60 confident + 100 unsure in the next: the log."""
    first = fake_log(100, 0, season, prefix="a")
    second = fake_log(60, 100, season, prefix="b")
    start = datetime(2026, 12, 1, tzinfo=UTC)
    store_batch(settings, first, "batch-a", start)
    store_batch(settings, second, "batch-b", start + timedelta(hours=1))
    return pd.concat([first, second], ignore_index=True)


def test_monitoring_batch_traffic_reads_as_the_same_rows_would_from_the_log(
    settings, season, reference
):
    log = two_batches(settings, season)
    from_batches = monitor(settings, source="batch", reference=reference, recent=100, segment=40)
    as_table = monitor(settings, log, reference=reference, recent=100, segment=40)
    assert from_batches.source == "batch" and as_table.source == "api"
    assert from_batches.predictions == as_table.predictions == 260
    assert from_batches.mean_confidence == pytest.approx(as_table.mean_confidence)
    assert from_batches.low_confidence_share == pytest.approx(as_table.low_confidence_share)
    assert from_batches.retrain_due and from_batches.drifted == as_table.drifted
    assert set(from_batches.drifted) == {"bill_length_mm", "bill_depth_mm"}  # found by its header
    pd.testing.assert_frame_equal(from_batches.segment_view(), as_table.segment_view())
    assert from_batches.summary()["value"].iloc[0] == "batch"


def test_the_newest_rows_and_a_time_window(settings, season, reference):
    two_batches(settings, season)
    newest = monitor(settings, source="batch", reference=reference, last=100, recent=100)
    assert newest.predictions == 100 and newest.low_confidence_share == pytest.approx(1.0)
    later = monitor(
        settings,
        source="batch",
        reference=reference,
        since=datetime(2026, 12, 1, 0, 30, tzinfo=UTC),
    )
    assert later.predictions == 160
    by_hour = monitor(settings, source="batch", reference=reference, segment="1h")
    assert by_hour.segment_view()["predictions"].tolist() == [100, 160]


def test_capture_takes_the_low_confidence_batch_rows_once(settings, season):
    two_batches(settings, season)
    review = capture.capture(settings, source="batch", track=False)
    assert len(review) == 100
    cases = review.cases
    assert set(cases["request_id"]) == {"batch-b"}
    assert cases["case_id"].tolist()[0] == "batch-b#60"  # the row's position in the output
    assert "bill_length_mm" in review.features  # the model's name, not the file's header
    assert len(capture.capture(settings, source="batch", track=False)) == 0  # never twice


def test_a_batch_output_that_is_gone_is_named_with_the_fix(settings, season):
    out = store_batch(settings, fake_log(10, 0, season), "batch-x", datetime.now(UTC))
    out.unlink()
    done = run_cli("monitor", "--source", "batch", "--no-mlflow")
    assert done.returncode == 2
    assert "batch-x" in done.stderr and "is gone" in done.stderr
    assert "Traceback" not in done.stderr
    refused = run_cli("monitor", "--source", "stream")
    assert refused.returncode == 2 and "source must be one of api, batch" in refused.stderr
