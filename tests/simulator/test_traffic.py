"""The traffic simulator: the held-out season, in a seeded order, truth kept aside, a real API."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pandas as pd
import pytest

from mlops_kit.config import Settings
from mlops_kit.processes import free_port
from mlops_kit.services import Service, start_api
from mlops_kit.simulator import shifts, traffic
from mlops_kit.store.predictions.window import read_predictions


@pytest.fixture
def season(settings: Settings) -> pd.DataFrame:
    return traffic.season_records(settings)


def test_the_season_is_the_held_out_one_with_complete_measurements(settings, season):
    from mlops_kit.data import prepare

    prepared = prepare(settings.table, settings, write=False)
    assert 0 < len(season) <= len(prepared.eval)
    assert season[prepared.spec.numeric].notna().all().all()
    assert set(season[shifts.TRUTH]) == {"Adelie", "Chinstrap", "Gentoo"}


def test_same_seed_same_records_other_seed_other_order(season):
    one = traffic.draw_traffic(season, 60, shift="calliper", seed=3)
    again = traffic.draw_traffic(season, 60, shift="calliper", seed=3)
    other = traffic.draw_traffic(season, 60, shift="calliper", seed=4)
    pd.testing.assert_frame_equal(one, again)
    assert list(one["source_row"]) != list(other["source_row"])


def test_traffic_goes_through_the_season_before_repeating(season):
    drawn = traffic.draw_traffic(season, len(season) + 5, seed=1)
    first_pass = drawn["source_row"][: len(season)]
    assert sorted(first_pass) == sorted(season["source_row"])


def test_simulating_without_an_api_says_so(settings):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(traffic.TrafficError, match="does not answer"):
        traffic.simulate(settings, url, batches=1, batch_size=5)
    assert traffic.read_truth(settings).empty  # nothing was sent, so no truth is kept


@pytest.fixture(scope="module")
def api(trained, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Service, Settings]]:
    """The API serving the session's champion from a copy of its registry, and the API's settings."""
    root = tmp_path_factory.mktemp("traffic-api")
    (root / "workspace").mkdir()
    shutil.copy2(trained.settings.mlflow_db, root / "workspace" / "mlflow.db")
    settings = Settings(workspace=root / "workspace", runs_dir=root / "runs")
    with start_api(settings.model_copy(update={"reload_interval": 0})) as running:
        yield running, settings


def test_simulate_sends_records_and_keeps_the_truth_aside(api, settings):
    running, api_settings = api
    run = traffic.simulate(
        settings, running.url, batches=3, batch_size=10, shift="calliper", seed=9, phase="test"
    )
    assert len(run.records) == 30 and set(run.records["model_version"]) == {"1"}
    assert run.batch_table()["records"].tolist() == [10, 10, 10]
    truth = traffic.read_truth(settings)
    assert len(truth) == 30 and set(truth["phase"]) == {"test"}
    merged = truth.merge(run.records, on=traffic.KEY, suffixes=("", "_sent"))
    assert (merged[shifts.TRUTH] == merged[f"{shifts.TRUTH}_sent"]).all()
    # what the API received and logged: the features, never the truth or where it came from
    log = read_predictions(api_settings)
    mine = log[log["request_id"].isin(set(run.records["request_id"]))]
    assert len(mine) == 30
    assert not {shifts.TRUTH, "species", "source_row", "batch"} & set(mine.columns)
    logged = mine.sort_values(traffic.KEY)["bill_depth_mm"].to_numpy()
    sent = run.records.sort_values(traffic.KEY)["bill_depth_mm"].to_numpy()
    assert (logged == sent).all()
