"""Shifts: the changes a field scientist recognises, on any table, refused with the fix when wrong."""

from __future__ import annotations

import pandas as pd
import pytest

from mlops_kit.config import Settings
from mlops_kit.simulator import shifts, traffic


@pytest.fixture
def season(settings: Settings) -> pd.DataFrame:
    return traffic.season_records(settings)


def test_calliper_adds_to_bill_measurements_only(season):
    clean = traffic.draw_traffic(season, 50, seed=5)
    shifted = traffic.draw_traffic(season, 50, shift="calliper", amount=4.0, seed=5)
    for col in ("bill_length_mm", "bill_depth_mm"):
        assert (shifted[col] - clean[col]).round(6).eq(4.0).all()
    for col in ("flipper_length_mm", "body_mass_g", "island", "sex", shifts.TRUTH):
        pd.testing.assert_series_equal(shifted[col], clean[col])


def test_scale_adds_to_body_mass_only(season):
    clean = traffic.draw_traffic(season, 50, seed=5)
    shifted = traffic.draw_traffic(season, 50, shift="scale", amount=300, seed=5)
    assert (shifted["body_mass_g"] - clean["body_mass_g"]).eq(300).all()
    pd.testing.assert_series_equal(shifted["bill_length_mm"], clean["bill_length_mm"])


def test_colony_sends_chinstraps_from_biscoe(season):
    drawn = traffic.draw_traffic(season, 400, shift="colony", amount=0.5, seed=6)
    colony = (drawn["island"] == "Biscoe") & (drawn[shifts.TRUTH] == "Chinstrap")
    assert not ((season["island"] == "Biscoe") & (season[shifts.TRUTH] == "Chinstrap")).any()
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
    pd.testing.assert_series_equal(shifted[shifts.TRUTH], clean[shifts.TRUTH])
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
    assert drawn[shifts.TRUTH].equals(traffic.draw_traffic(season, 400, seed=2)[shifts.TRUTH])


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
    numbers[shifts.TRUTH] = ["a", "b", "a"]
    with pytest.raises(ValueError, match="lacks: bill_length_mm.*use add:COLUMN"):
        traffic.draw_traffic(numbers, 5, shift="calliper")
    assert shifts.default_shift(numbers) == "add:alcohol"
    words = pd.DataFrame({"colour": ["red", "red", "blue"], shifts.TRUTH: ["a", "b", "a"]})
    assert shifts.default_shift(words) == "mix:colour=blue"
    mix = shifts.parse_shift("mix:colour=blue", words)
    assert "colour = blue" in mix.describe(shifts.shift_amount(mix, None, words))
