"""Monitoring a log: the verdict, the segments, reading the store by SQL, `mlops-kit monitor`'s exit code."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from mlops_kit.monitoring import plots
from mlops_kit.monitoring import segments as log_segments
from mlops_kit.monitoring.monitor import monitor
from mlops_kit.monitoring.reference import Reference, reference_for
from mlops_kit.monitoring.report import SEGMENT_COLUMNS, MonitorReport
from mlops_kit.simulator.shifts import TRUTH
from mlops_kit.simulator.traffic import season_records
from mlops_kit.store.predictions.window import read_predictions
from tests.helpers import log_predictions, run_cli
from tests.monitoring.logs import fake_log, store_log


@pytest.fixture
def season(settings) -> pd.DataFrame:
    return season_records(settings)


@pytest.fixture
def reference(settings) -> Reference:
    return reference_for(settings)  # no registry: the default data's training split


def test_monitor_says_retraining_is_due_after_shifted_traffic(settings, season, reference):
    log = fake_log(100, 100, season)
    report = monitor(settings, log, reference=reference, recent=100, segment=25)
    assert report.retrain_due
    assert set(report.drifted) == {"bill_length_mm", "bill_depth_mm"}
    assert report.low_confidence_share == pytest.approx(1.0)
    assert any("low-confidence share" in r for r in report.reasons)
    assert any("bill_depth_mm" in r for r in report.reasons)
    segments = report.segment_view()
    assert list(segments["segment"]) == list(range(1, 9))
    assert list(segments["drifted"][:4]) == ["-"] * 4
    assert all("bill_depth_mm" in d for d in segments["drifted"][4:])
    assert segments["mean_confidence"].tolist() == [0.95] * 4 + [0.55] * 4
    assert report.class_mix["training_share"].sum() == pytest.approx(1.0, abs=0.01)
    figures = plots.figures(report)
    assert set(figures) == {
        "confidence_by_segment.png",
        "drift_by_segment.png",
        "drift_by_feature.png",
    }


def test_monitor_sees_nothing_wrong_in_normal_traffic(settings, season, reference):
    report = monitor(settings, fake_log(100, 0, season), reference=reference, segment=25)
    assert not report.retrain_due
    assert report.drifted == [] and report.reasons == []
    assert report.verdict.startswith("no retraining needed")


def test_monitor_segments_by_time_window(settings, season, reference):
    log = fake_log(60, 60, season)  # one prediction a minute
    report = monitor(settings, log, reference=reference, segment="30min")
    assert report.segments["predictions"].tolist() == [30, 30, 30, 30]
    with pytest.raises(ValueError, match="time window"):
        monitor(settings, log, reference=reference, segment="soon")


def test_an_empty_log_has_nothing_to_monitor(settings, reference):
    report = monitor(settings, reference=reference)  # no log file yet
    assert report.predictions == 0 and not report.retrain_due
    assert report.verdict.startswith("nothing to monitor")


def write_log(settings, season: pd.DataFrame, unsure: int) -> None:
    """Write 100 confident clean predictions and `unsure` shifted low-confidence ones to the log."""
    frame = fake_log(100, unsure, season, prefix=f"u{unsure}-")
    features = list(season.columns.drop([TRUTH, "source_row"]))
    log_predictions(settings, frame, features)


def run_monitor(tmp_path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("monitor", "--no-mlflow", *args, cwd=tmp_path)


@pytest.mark.slow
def test_cli_monitor_exits_10_when_retraining_is_due(settings, season, tmp_path):
    from mlops_kit.cli import EXIT_RETRAIN_DUE

    write_log(settings, season, unsure=0)
    calm = run_monitor(tmp_path, "--out", str(tmp_path / "calm"))
    assert calm.returncode == 0, calm.stderr
    assert "no retraining needed" in calm.stdout
    assert (tmp_path / "calm" / "drift_by_segment.png").exists()

    write_log(settings, season, unsure=100)
    due = run_monitor(tmp_path, "--out", str(tmp_path / "due"))
    assert due.returncode == EXIT_RETRAIN_DUE == 10, due.stderr
    assert "retraining due: low-confidence share 1.00" in due.stdout  # the newest 100
    assert "bill_depth_mm" in due.stdout
    for name in ("confidence_by_segment.png", "drift_by_feature.png", "report.json"):
        assert (tmp_path / "due" / name).exists()


# --- windows read from the store by SQL: bounded segments, the same answers as the table -------


def same_report(from_store: MonitorReport, from_table: MonitorReport):
    """The store's SQL path and the pandas path tell the same story."""
    assert from_store.text() == from_table.text()
    pd.testing.assert_frame_equal(from_store.drift, from_table.drift)
    pd.testing.assert_frame_equal(from_store.segment_drift, from_table.segment_drift)
    columns = [c for c in SEGMENT_COLUMNS if c != "start"]
    pd.testing.assert_frame_equal(from_store.segments[columns], from_table.segments[columns])


def test_a_small_window_from_the_store_reads_as_before(settings, season, reference):
    """The notebook's size (200 predictions, segments of 25): every prediction tested, 8 segments."""
    store_log(settings, fake_log(100, 100, season))
    report = monitor(settings, reference=reference, recent=100, segment=25)
    assert report.retrain_due and set(report.drifted) == {"bill_length_mm", "bill_depth_mm"}
    assert report.segments["predictions"].tolist() == [25] * 8
    assert report.segments["tested"].tolist() == [25] * 8 and not report.sampled
    assert report.segment_view()["mean_confidence"].tolist() == [0.95] * 4 + [0.55] * 4
    table = monitor(
        settings, read_predictions(settings), reference=reference, recent=100, segment=25
    )
    same_report(report, table)


def test_a_long_window_has_at_most_the_segment_cap(settings, season, reference, monkeypatch):
    """20k predictions in segments of 25 would be 800: they become 50 of 400, tested on samples."""
    store_log(settings, fake_log(10_000, 10_000, season))
    monkeypatch.setattr(log_segments, "SAMPLE_ROWS", 100)  # every 4th prediction of a segment
    report = monitor(settings, reference=reference, segment=25)
    segments = report.segments
    assert len(segments) == log_segments.MAX_SEGMENTS == 50
    assert segments["predictions"].tolist() == [400] * 50 and report.predictions == 20_000
    assert segments["tested"].tolist() == [100] * 50 and report.sampled
    assert "every k-th prediction" in report.text()
    assert segments["mean_confidence"].round(3).tolist() == [0.95] * 25 + [0.55] * 25
    assert not segments["drifted"][:25].str.contains("bill_depth_mm").any()  # before the shift
    assert segments["drifted"][25:].str.contains("bill_depth_mm").all()
    assert report.retrain_due and report.recent == 100
    ticks = plots.drift_by_segment(report).axes[0].get_xticks()
    assert 3 <= len(ticks) <= 12  # a few, not one per segment
    same_report(report, monitor(settings, read_predictions(settings), reference=reference))


def test_time_segments_widen_past_the_cap(settings, season, reference):
    log = fake_log(60, 60, season, prefix="t")
    log["request_id"] = [f"t{i}" for i in range(len(log))]  # one request a minute
    store_log(settings, log)
    halves = monitor(settings, reference=reference, segment="30min")
    assert halves.segments["predictions"].tolist() == [30, 30, 30, 30]  # 4 windows: as asked
    minutes = monitor(settings, reference=reference, segment="1min")
    assert minutes.segments["predictions"].tolist() == [3] * 40  # 120 windows -> 40 of 3 min
    table = monitor(settings, read_predictions(settings), reference=reference, segment="1min")
    same_report(minutes, table)


def test_monitor_reads_a_window_of_the_store(settings, season, reference):
    store_log(settings, fake_log(100, 100, season))
    since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=150)
    window = monitor(settings, since=since, reference=reference, segment=25)
    assert window.predictions == 50 and window.segments["predictions"].tolist() == [25, 25]
    newest = monitor(settings, last=30, recent=10, reference=reference)
    assert (newest.predictions, newest.recent) == (30, 10)
    assert newest.segments["first_id"].tolist() == [171, 196]


def test_the_report_names_the_threshold_the_api_flagged_with(settings, season, reference):
    # the share counts the API's own flags: an API run with MLOPS_KIT_LOW_CONFIDENCE=0.6 logged
    # these; this monitor's own setting is 0.7
    store_log(settings, fake_log(75, 25, season), threshold=0.6)
    report = monitor(settings, reference=reference)
    assert settings.low_confidence == 0.7 and report.low_confidence == [0.6]
    assert "low-confidence share (< 0.60)" in report.text()
    assert "(confidence < 0.60)" in report.verdict
    store_log(settings, fake_log(0, 25, season, prefix="later"), threshold=0.7)
    both = monitor(settings, reference=reference, recent=200)
    assert both.low_confidence == [0.6, 0.7] and "(< 0.60 / 0.70)" in both.text()
    # a log kept before the API stored its threshold: the monitor's own setting, as before
    assert monitor(settings, fake_log(75, 25, season), reference=reference).low_confidence == [0.7]


@pytest.mark.slow
def test_monitor_and_capture_read_a_postgresql_store_as_they_read_sqlite(
    settings, season, reference
):
    """A team's store: the same segments, drift and captured cases as from the SQLite store."""
    from mlops_kit import capture
    from tests.store.postgres import throwaway_cluster

    log = fake_log(100, 100, season)
    store_log(settings, log)
    lite = monitor(settings, reference=reference, segment=25)
    lite_minutes = monitor(settings, reference=reference, segment="1min")
    lite_cases = capture.capture(settings, track=False).cases
    with throwaway_cluster() as postgres:
        team = settings.model_copy(update={"store_url": postgres.url})
        store_log(team, log)
        same_report(monitor(team, reference=reference, segment=25), lite)
        same_report(monitor(team, reference=reference, segment="1min"), lite_minutes)
        cases = capture.capture(team, track=False).cases
        pd.testing.assert_frame_equal(cases, lite_cases)
        assert len(cases) == 100 and capture.capture(team, track=False).version is None
