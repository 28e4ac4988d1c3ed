"""The traffic simulator: seeded, shifts a field scientist recognises, truth kept aside, real API."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pandas as pd
import pytest

from mlops_kit import traffic
from mlops_kit.config import Settings
from mlops_kit.processes import free_port
from mlops_kit.services import Service, start_api
from mlops_kit.store.predictions import read_predictions


@pytest.fixture
def season(settings: Settings) -> pd.DataFrame:
    return traffic.season_records(settings)


def test_the_season_is_the_held_out_one_with_complete_measurements(settings, season):
    from mlops_kit.data import prepare

    prepared = prepare(settings, write=False)
    assert 0 < len(season) <= len(prepared.eval)
    assert season[prepared.spec.numeric].notna().all().all()
    assert set(season[traffic.TRUTH]) == {"Adelie", "Chinstrap", "Gentoo"}


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


def test_calliper_adds_to_bill_measurements_only(season):
    clean = traffic.draw_traffic(season, 50, seed=5)
    shifted = traffic.draw_traffic(season, 50, shift="calliper", amount=4.0, seed=5)
    for col in ("bill_length_mm", "bill_depth_mm"):
        assert (shifted[col] - clean[col]).round(6).eq(4.0).all()
    for col in ("flipper_length_mm", "body_mass_g", "island", "sex", traffic.TRUTH):
        pd.testing.assert_series_equal(shifted[col], clean[col])


def test_scale_adds_to_body_mass_only(season):
    clean = traffic.draw_traffic(season, 50, seed=5)
    shifted = traffic.draw_traffic(season, 50, shift="scale", amount=300, seed=5)
    assert (shifted["body_mass_g"] - clean["body_mass_g"]).eq(300).all()
    pd.testing.assert_series_equal(shifted["bill_length_mm"], clean["bill_length_mm"])


def test_colony_sends_chinstraps_from_biscoe(season):
    drawn = traffic.draw_traffic(season, 400, shift="colony", amount=0.5, seed=6)
    colony = (drawn["island"] == "Biscoe") & (drawn[traffic.TRUTH] == "Chinstrap")
    assert not ((season["island"] == "Biscoe") & (season[traffic.TRUTH] == "Chinstrap")).any()
    assert 0.4 < colony.mean() < 0.6
    assert traffic.draw_traffic(season, 100, shift="colony", amount=0.0, seed=6).equals(
        traffic.draw_traffic(season, 100, seed=6)
    )


def test_unknown_shift_and_bad_amount_are_refused(season):
    with pytest.raises(
        ValueError, match=r"choose from: none, a preset \(calliper, scale, colony\)"
    ):
        traffic.draw_traffic(season, 10, shift="earthquake")
    with pytest.raises(ValueError, match="share between 0 and 1"):
        traffic.draw_traffic(season, 10, shift="colony", amount=3)


def test_any_numeric_column_can_read_more(season):
    clean = traffic.draw_traffic(season, 40, seed=5)
    shifted = traffic.draw_traffic(season, 40, shift="add:flipper_length_mm", amount=7, seed=5)
    assert (shifted["flipper_length_mm"] - clean["flipper_length_mm"]).eq(7).all()
    pd.testing.assert_series_equal(shifted["body_mass_g"], clean["body_mass_g"])
    pd.testing.assert_series_equal(shifted[traffic.TRUTH], clean[traffic.TRUTH])
    # no amount: two standard deviations of the column, rounded for people
    spread = season["flipper_length_mm"].std()
    default = traffic.draw_traffic(season, 40, shift="add:flipper_length_mm", seed=5)
    moved = (default["flipper_length_mm"] - clean["flipper_length_mm"]).unique()
    assert len(moved) == 1 and moved[0] == pytest.approx(2 * spread, rel=0.05)


def test_any_categorical_column_can_change_its_mix(season):
    drawn = traffic.draw_traffic(season, 400, shift="mix:island=Torgersen", amount=0.6, seed=2)
    before = (traffic.draw_traffic(season, 400, seed=2)["island"] == "Torgersen").mean()
    share = (drawn["island"] == "Torgersen").mean()
    assert share > before + 0.4
    assert drawn[traffic.TRUTH].equals(traffic.draw_traffic(season, 400, seed=2)[traffic.TRUTH])


@pytest.mark.parametrize(
    ("shift", "message"),
    [
        ("add:wingspan", "the records lack; they have: bill_length_mm"),
        ("add:island", "holds categories: use mix:island=VALUE"),
        ("mix:body_mass_g=heavy", "holds numbers: use add:body_mass_g"),
        ("mix:island=Atlantis", "choose from: Biscoe, Dream, Torgersen"),
        ("mix:island", "unknown shift"),
    ],
)
def test_a_shift_the_table_cannot_take_is_refused_with_the_fix(season, shift, message):
    with pytest.raises(ValueError, match=message):
        traffic.draw_traffic(season, 10, shift=shift)


def test_presets_need_their_columns_and_other_tables_get_a_default_shift():
    numbers = pd.DataFrame({"alcohol": [12.0, 13.0, 14.0], "hue": [1.0, 1.1, 0.9]})
    numbers[traffic.TRUTH] = ["a", "b", "a"]
    with pytest.raises(ValueError, match="lacks: bill_length_mm.*use add:COLUMN"):
        traffic.draw_traffic(numbers, 5, shift="calliper")
    assert traffic.default_shift(numbers) == "add:alcohol"
    words = pd.DataFrame({"colour": ["red", "red", "blue"], traffic.TRUTH: ["a", "b", "a"]})
    assert traffic.default_shift(words) == "mix:colour=blue"
    mix = traffic.parse_shift("mix:colour=blue", words)
    assert "colour = blue" in mix.describe(traffic.shift_amount(mix, None, words))


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
    assert (merged[traffic.TRUTH] == merged[f"{traffic.TRUTH}_sent"]).all()
    # what the API received and logged: the features, never the truth or where it came from
    log = read_predictions(api_settings)
    mine = log[log["request_id"].isin(set(run.records["request_id"]))]
    assert len(mine) == 30
    assert not {traffic.TRUTH, "species", "source_row", "batch"} & set(mine.columns)
    logged = mine.sort_values(traffic.KEY)["bill_depth_mm"].to_numpy()
    sent = run.records.sort_values(traffic.KEY)["bill_depth_mm"].to_numpy()
    assert (logged == sent).all()
