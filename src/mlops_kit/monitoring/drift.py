"""Drift statistics: is a feature in production still distributed as in the training data?

A feature drifts when the difference is both *real* and *large*: the two-sample test says it is
unlikely to be chance (Kolmogorov–Smirnov for numbers, chi-square for categories: p-value below
``drift_p_value``) **and** the Population Stability Index says it is big enough to matter (PSI
above ``drift_psi``). The test alone flags trivial differences in big windows; PSI alone is noisy
in small ones.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

MISSING = "<missing>"  # a category of its own: a field production stops sending is drift too
PSI_BINS = 10


def _shares(counts: np.ndarray) -> np.ndarray:
    # half a count per bin, so that an empty bin in a small window does not dominate the index
    return (counts + 0.5) / (counts.sum() + 0.5 * len(counts))


def _psi(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    r, c = _shares(ref_counts), _shares(cur_counts)
    return float(np.sum((c - r) * np.log(c / r)))


def numeric_bins(reference: pd.Series, bins: int = PSI_BINS) -> np.ndarray:
    """Inner bin edges: the reference's quantiles (each bin holds ~1/bins of the reference)."""
    values = reference.dropna().to_numpy(dtype=float)
    return np.unique(np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1]))


def psi_numeric(reference: pd.Series, current: pd.Series, bins: int = PSI_BINS) -> float:
    """Population Stability Index of a numeric feature, on the reference's quantile bins."""
    edges = numeric_bins(reference, bins)
    ref = reference.dropna().to_numpy(dtype=float)
    cur = current.dropna().to_numpy(dtype=float)
    if len(ref) == 0 or len(cur) == 0:
        return float("nan")
    size = len(edges) + 1
    ref_counts = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=size)
    cur_counts = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=size)
    return _psi(ref_counts, cur_counts)


def _category_counts(reference: pd.Series, current: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    ref = reference.astype(object).where(reference.notna(), MISSING).astype(str)
    cur = current.astype(object).where(current.notna(), MISSING).astype(str)
    categories = sorted(set(ref) | set(cur))
    ref_counts = ref.value_counts().reindex(categories, fill_value=0).to_numpy()
    cur_counts = cur.value_counts().reindex(categories, fill_value=0).to_numpy()
    return ref_counts, cur_counts


def psi_categorical(reference: pd.Series, current: pd.Series) -> float:
    """Population Stability Index of a categorical feature (missing is a category)."""
    if len(reference) == 0 or len(current) == 0:
        return float("nan")
    return _psi(*_category_counts(reference, current))


def ks_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Two-sample Kolmogorov–Smirnov test: (statistic D, p-value)."""
    ref, cur = reference.dropna(), current.dropna()
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), float("nan")
    result = stats.ks_2samp(ref.to_numpy(dtype=float), cur.to_numpy(dtype=float))
    return float(result.statistic), float(result.pvalue)


def chi2_test(reference: pd.Series, current: pd.Series) -> tuple[float, float]:
    """Chi-square test that reference and current share one category mix: (statistic, p-value)."""
    if len(reference) == 0 or len(current) == 0:
        return float("nan"), float("nan")
    ref_counts, cur_counts = _category_counts(reference, current)
    if len(ref_counts) < 2:
        return 0.0, 1.0  # one category on both sides: nothing can differ
    result = stats.chi2_contingency(np.vstack([ref_counts, cur_counts]))
    return float(result.statistic), float(result.pvalue)


DRIFT_COLUMNS = ["feature", "kind", "test", "statistic", "p_value", "psi", "drift"]


def drift_table(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    numeric: list[str],
    categorical: list[str],
    *,
    p_value: float,
    psi: float,
) -> pd.DataFrame:
    """One row per feature: test, statistic, p-value, PSI and whether it drifted (both thresholds)."""
    rows = []
    for name in [*numeric, *categorical]:
        ref = reference[name] if name in reference else pd.Series(dtype=object)
        cur = current[name] if name in current else pd.Series([None] * len(current), dtype=object)
        if name in numeric:
            statistic, p = ks_test(ref, cur)
            index, test, kind = psi_numeric(ref, cur), "ks", "numeric"
        else:
            statistic, p = chi2_test(ref, cur)
            index, test, kind = psi_categorical(ref, cur), "chi2", "categorical"
        drifted = bool(np.isfinite(p) and p < p_value and np.isfinite(index) and index > psi)
        rows.append((name, kind, test, statistic, p, index, drifted))
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)
