"""Drift statistics on known inputs: a shift is flagged, and only a real and large one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlops_kit.monitoring import drift as statistics


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
    table = statistics.drift_table(
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
    assert statistics.psi_numeric(values["length"], values["length"]) == pytest.approx(0.0)
    assert statistics.psi_categorical(values["island"], values["island"]) == pytest.approx(0.0)
