"""Monitoring: drift statistics on known inputs, the verdict on a log, and `mlops-kit monitor`'s exit code."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from mlops_kit import monitoring, monitoring_plots, traffic
from mlops_kit.store.predictions.window import read_predictions
from tests.helpers import log_predictions, run_cli

CLASSES = ["Adelie", "Chinstrap", "Gentoo"]


def normal_frame(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Two numeric features and one category, optionally with the first feature shifted."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "length": rng.normal(40.0 + shift, 5.0, n),
            "mass": rng.normal(4000.0, 500.0, n),
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], n, p=[0.5, 0.35, 0.15]),
        }
    )


def drift(reference: pd.DataFrame, current: pd.DataFrame) -> pd.DataFrame:
    table = monitoring.drift_table(
        reference, current, ["length", "mass"], ["island"], p_value=0.01, psi=0.25
    )
    return table.set_index("feature")


def test_no_shift_is_not_flagged() -> None:
    table = drift(normal_frame(500, seed=1), normal_frame(200, seed=2))
    assert not table["drift"].any()
    assert (table["psi"] < 0.1).all()
    assert (table["p_value"] > 0.01).all()


def test_a_shifted_feature_is_flagged_and_only_it() -> None:
    table = drift(normal_frame(500, seed=1), normal_frame(200, seed=2, shift=5.0))
    assert table.loc["length", "drift"]
    assert table.loc["length", "psi"] > 0.25 and table.loc["length", "p_value"] < 1e-6
    assert not table.loc["mass", "drift"] and not table.loc["island", "drift"]


def test_a_new_category_mix_is_flagged() -> None:
    current = normal_frame(200, seed=2)
    current["island"] = np.where(np.arange(200) % 4 == 0, "Dream", "Torgersen")
    table = drift(normal_frame(500, seed=1), current)
    assert table.loc["island", "drift"] and table.loc["island", "test"] == "chi2"
    assert not table.loc["length", "drift"]


def test_a_field_production_stops_sending_is_drift() -> None:
    current = normal_frame(200, seed=2)
    current["island"] = None
    assert drift(normal_frame(500, seed=1), current).loc["island", "drift"]


def test_a_tiny_shift_in_a_huge_window_is_significant_but_not_drift() -> None:
    """Both thresholds must agree: a real but negligible difference does not call for retraining."""
    table = drift(normal_frame(20_000, seed=1), normal_frame(20_000, seed=2, shift=0.25))
    assert table.loc["length", "p_value"] < 0.01
    assert table.loc["length", "psi"] < 0.25
    assert not table.loc["length", "drift"]


def test_psi_of_a_distribution_with_itself_is_zero() -> None:
    values = normal_frame(300, seed=3)
    assert monitoring.psi_numeric(values["length"], values["length"]) == pytest.approx(0.0)
    assert monitoring.psi_categorical(values["island"], values["island"]) == pytest.approx(0.0)


def fake_log(confident: int, unsure: int, season: pd.DataFrame, prefix: str = "r") -> pd.DataFrame:
    """A log as `read_predictions` returns it: confident clean records, then unsure shifted ones."""
    parts = [traffic.draw_traffic(season, confident, seed=1)] if confident else []
    if unsure:
        parts.append(traffic.draw_traffic(season, unsure, shift="calliper", seed=2))
    records = pd.concat(parts, ignore_index=True)
    n = len(records)
    confidence = np.r_[np.full(confident, 0.95), np.full(unsure, 0.55)]
    start = datetime(2026, 1, 1, tzinfo=UTC)
    log = pd.DataFrame(
        {
            "id": np.arange(1, n + 1),
            "request_id": [f"{prefix}{i // 25}" for i in range(n)],
            "created_at": [start + timedelta(minutes=i) for i in range(n)],
            "record_index": np.arange(n) % 25,
            "model_name": "penguins-classifier",
            "model_version": "1",
            "predicted": records[traffic.TRUTH],
            "confidence": confidence,
            "low_confidence": confidence < 0.7,
        }
    )
    features = [c for c in records.columns if c not in (traffic.TRUTH, "source_row")]
    for c in CLASSES:
        log[f"proba_{c}"] = np.where(log["predicted"] == c, confidence, (1 - confidence) / 2)
    return pd.concat([log, records[features]], axis=1)


@pytest.fixture
def season(settings) -> pd.DataFrame:
    return traffic.season_records(settings)


@pytest.fixture
def reference(settings) -> monitoring.Reference:
    return monitoring.reference_for(settings)  # no registry: the default data's training split


def test_monitor_says_retraining_is_due_after_shifted_traffic(settings, season, reference):
    log = fake_log(100, 100, season)
    report = monitoring.monitor(settings, log, reference=reference, recent=100, segment=25)
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
    figures = monitoring_plots.figures(report)
    assert set(figures) == {
        "confidence_by_segment.png",
        "drift_by_segment.png",
        "drift_by_feature.png",
    }


def test_monitor_sees_nothing_wrong_in_normal_traffic(settings, season, reference):
    report = monitoring.monitor(settings, fake_log(100, 0, season), reference=reference, segment=25)
    assert not report.retrain_due
    assert report.drifted == [] and report.reasons == []
    assert report.verdict.startswith("no retraining needed")


def test_monitor_segments_by_time_window(settings, season, reference):
    log = fake_log(60, 60, season)  # one prediction a minute
    report = monitoring.monitor(settings, log, reference=reference, segment="30min")
    assert report.segments["predictions"].tolist() == [30, 30, 30, 30]
    with pytest.raises(ValueError, match="time window"):
        monitoring.monitor(settings, log, reference=reference, segment="soon")


def test_an_empty_log_has_nothing_to_monitor(settings, reference):
    report = monitoring.monitor(settings, reference=reference)  # no log file yet
    assert report.predictions == 0 and not report.retrain_due
    assert report.verdict.startswith("nothing to monitor")


def write_log(settings, season: pd.DataFrame, unsure: int) -> None:
    """Write 100 confident clean predictions and `unsure` shifted low-confidence ones to the log."""
    frame = fake_log(100, unsure, season, prefix=f"u{unsure}-")
    features = list(season.columns.drop([traffic.TRUTH, "source_row"]))
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


def store_log(settings, frame: pd.DataFrame) -> None:
    """Write a `fake_log` table to the store with the kit's writer, keeping its times."""
    from mlops_kit.store.predictions.entry import LogEntry
    from mlops_kit.store.predictions.writer import PredictionLog

    features = [c for c in frame.columns if c not in BASE and not c.startswith("proba_")]
    writer = PredictionLog(settings.store)
    writer.start()
    for request_id, part in frame.groupby("request_id", sort=False):
        writer.submit(
            LogEntry.from_records(
                str(request_id), part["created_at"].iloc[0].to_pydatetime(),
                settings.model_name, "1",
                part[features].astype(object).where(part[features].notna(), None).to_dict("records"),
                part["predicted"].tolist(), part["confidence"].tolist(),
                part[[f"proba_{c}" for c in CLASSES]].to_numpy().tolist(), CLASSES,
                part["low_confidence"].tolist(), low_confidence_threshold=0.7,  # as fake_log
            )
        )  # fmt: skip
    writer.close()


BASE = ["id", "request_id", "created_at", "record_index", "model_name", "model_version"]
BASE += ["predicted", "confidence", "low_confidence"]


def same_report(from_store: monitoring.MonitorReport, from_table: monitoring.MonitorReport):
    """The store's SQL path and the pandas path tell the same story."""
    assert from_store.text() == from_table.text()
    pd.testing.assert_frame_equal(from_store.drift, from_table.drift)
    pd.testing.assert_frame_equal(from_store.segment_drift, from_table.segment_drift)
    columns = [c for c in monitoring.SEGMENT_COLUMNS if c != "start"]
    pd.testing.assert_frame_equal(from_store.segments[columns], from_table.segments[columns])


def test_a_small_window_from_the_store_reads_as_before(settings, season, reference):
    """The notebook's size (200 predictions, segments of 25): every prediction tested, 8 segments."""
    store_log(settings, fake_log(100, 100, season))
    report = monitoring.monitor(settings, reference=reference, recent=100, segment=25)
    assert report.retrain_due and set(report.drifted) == {"bill_length_mm", "bill_depth_mm"}
    assert report.segments["predictions"].tolist() == [25] * 8
    assert report.segments["tested"].tolist() == [25] * 8 and not report.sampled
    assert report.segment_view()["mean_confidence"].tolist() == [0.95] * 4 + [0.55] * 4
    table = monitoring.monitor(
        settings, read_predictions(settings), reference=reference, recent=100, segment=25
    )
    same_report(report, table)


def test_a_long_window_has_at_most_the_segment_cap(settings, season, reference, monkeypatch):
    """20k predictions in segments of 25 would be 800: they become 50 of 400, tested on samples."""
    store_log(settings, fake_log(10_000, 10_000, season))
    monkeypatch.setattr(monitoring, "SAMPLE_ROWS", 100)  # every 4th prediction of a segment
    report = monitoring.monitor(settings, reference=reference, segment=25)
    segments = report.segments
    assert len(segments) == monitoring.MAX_SEGMENTS == 50
    assert segments["predictions"].tolist() == [400] * 50 and report.predictions == 20_000
    assert segments["tested"].tolist() == [100] * 50 and report.sampled
    assert "every k-th prediction" in report.text()
    assert segments["mean_confidence"].round(3).tolist() == [0.95] * 25 + [0.55] * 25
    assert not segments["drifted"][:25].str.contains("bill_depth_mm").any()  # before the shift
    assert segments["drifted"][25:].str.contains("bill_depth_mm").all()
    assert report.retrain_due and report.recent == 100
    ticks = monitoring_plots.drift_by_segment(report).axes[0].get_xticks()
    assert 3 <= len(ticks) <= 12  # a few, not one per segment
    same_report(
        report, monitoring.monitor(settings, read_predictions(settings), reference=reference)
    )


def test_time_segments_widen_past_the_cap(settings, season, reference):
    log = fake_log(60, 60, season, prefix="t")
    log["request_id"] = [f"t{i}" for i in range(len(log))]  # one request a minute
    store_log(settings, log)
    halves = monitoring.monitor(settings, reference=reference, segment="30min")
    assert halves.segments["predictions"].tolist() == [30, 30, 30, 30]  # 4 windows: as asked
    minutes = monitoring.monitor(settings, reference=reference, segment="1min")
    assert minutes.segments["predictions"].tolist() == [3] * 40  # 120 windows -> 40 of 3 min
    table = monitoring.monitor(
        settings, read_predictions(settings), reference=reference, segment="1min"
    )
    same_report(minutes, table)


def test_monitor_reads_a_window_of_the_store(settings, season, reference):
    store_log(settings, fake_log(100, 100, season))
    since = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=150)
    window = monitoring.monitor(settings, since=since, reference=reference, segment=25)
    assert window.predictions == 50 and window.segments["predictions"].tolist() == [25, 25]
    newest = monitoring.monitor(settings, last=30, recent=10, reference=reference)
    assert (newest.predictions, newest.recent) == (30, 10)
    assert newest.segments["first_id"].tolist() == [171, 196]


@pytest.mark.slow
def test_monitor_and_capture_read_a_postgresql_store_as_they_read_sqlite(
    settings, season, reference
):
    """A team's store: the same segments, drift and captured cases as from the SQLite store."""
    from mlops_kit import capture
    from tests.store.postgres import throwaway_cluster

    log = fake_log(100, 100, season)
    store_log(settings, log)
    lite = monitoring.monitor(settings, reference=reference, segment=25)
    lite_minutes = monitoring.monitor(settings, reference=reference, segment="1min")
    lite_cases = capture.capture(settings, track=False).cases
    with throwaway_cluster() as postgres:
        team = settings.model_copy(update={"store_url": postgres.url})
        store_log(team, log)
        same_report(monitoring.monitor(team, reference=reference, segment=25), lite)
        same_report(monitoring.monitor(team, reference=reference, segment="1min"), lite_minutes)
        cases = capture.capture(team, track=False).cases
        pd.testing.assert_frame_equal(cases, lite_cases)
        assert len(cases) == 100 and capture.capture(team, track=False).version is None
