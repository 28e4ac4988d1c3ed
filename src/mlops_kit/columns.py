"""Deciding what each column of a table is: numeric, categorical, or not a feature (and why)."""

from __future__ import annotations

import re

import pandas as pd

from mlops_kit.tables import DataValidationError

PENGUIN_NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
PENGUIN_CATEGORICAL = ["island", "sex"]

# Columns a user's table brings that cannot be features (used when the features are derived).
MAX_CATEGORIES = 50  # a text column with more distinct values than this is free text or a code
MAX_DISTINCT_SHARE = 0.5  # ... and so is one where more than half of its values are distinct
ID_NAME = re.compile(r"(^|_)id$|^id_")  # 'id', 'customer_id', 'id_cliente'
DATE_LIKE = re.compile(r"\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}([ T].*)?")
# A value made of digits, separators, signs, '%' or a currency is a number ('12%', 'R$ 1.234').
IDENTIFIER = "identifier"  # how a left-out identifier's reason begins (it becomes the record key)
NUMBER_LIKE = re.compile(r"(R\$|\$|€)?\s*[-+]?[\d.,\s%]*\d[\d.,\s%]*")


def _numeric_share(values: pd.Series) -> float:
    present = values.dropna()
    if present.empty:
        return 0.0
    return float(pd.to_numeric(present, errors="coerce").notna().mean())


def _all_dates(values: pd.Series) -> bool:
    distinct = pd.Series(values.dropna().unique(), dtype=object)
    if distinct.empty or not distinct.str.fullmatch(DATE_LIKE).all():
        return False
    return bool(pd.to_datetime(distinct, errors="coerce", format="mixed").notna().all())


def numbers_in_another_notation(values: pd.Series) -> bool:
    """Whether text values are all numbers in a notation pandas cannot read ('14,2', '12%', ...)."""
    present = values.dropna()
    if present.empty or _all_dates(present):
        return False
    return bool(present.str.fullmatch(NUMBER_LIKE).all())


def numeric_and_categorical(df: pd.DataFrame, columns: list[str]) -> tuple[list[str], list[str]]:
    """Split feature columns into numeric and categorical; refuse numbers the kit cannot read."""
    numeric, categorical = [], []
    for col in columns:
        # The penguin schema is known; for other tables a column whose values are mostly
        # numbers is numeric, and any value in it that is not a number is an error.
        if col in PENGUIN_NUMERIC or (
            col not in PENGUIN_CATEGORICAL and _numeric_share(df[col]) > 0.5
        ):
            numeric.append(col)
        elif col not in PENGUIN_CATEGORICAL and numbers_in_another_notation(df[col]):
            examples = ", ".join(repr(v) for v in df[col].dropna().unique()[:3])
            raise DataValidationError(
                f"column '{col}' holds numbers the kit cannot read ({examples}); write them as "
                "plain numbers (decimal point, or decimal comma in every row; no units, %, "
                "currency or other separators)"
            )
        else:
            categorical.append(col)
    return numeric, categorical


def exclusion_reason(values: pd.Series, name: str) -> str | None:
    """Why a column of a user's table cannot be a feature, or None when it can."""
    present = values.dropna()
    if present.empty:
        return "no values at all"
    distinct = present.nunique()
    if distinct == 1:
        return f"the same value on every row ({present.iloc[0]!r})"
    numeric = _numeric_share(values) > 0.5
    if not numeric and _all_dates(present):
        return "dates: not a feature; give it as the split column to hold out the newest period"
    if distinct == len(values) and (not numeric or ID_NAME.search(name) or _row_number(present)):
        return f"{IDENTIFIER}: a different value on every row"
    if numeric or numbers_in_another_notation(values):
        return None  # numbers: a feature (refused later, naming the column, if unreadable)
    if distinct > MAX_CATEGORIES or distinct > MAX_DISTINCT_SHARE * len(present):
        return f"free text: {distinct} distinct values in {len(present)} rows"
    return None


def _row_number(present: pd.Series) -> bool:
    numbers = pd.to_numeric(present, errors="coerce")
    whole = numbers.notna().all() and (numbers % 1 == 0).all()
    return bool(whole and numbers.max() - numbers.min() == len(numbers) - 1)


def derive_features(
    df: pd.DataFrame, target: str, split_column: str | None
) -> tuple[list[str], dict[str, str]]:
    """Every column but the target and the split column, minus those that cannot be features."""
    features, excluded = [], {}
    for col in df.columns:
        if col in (target, split_column):
            continue
        reason = exclusion_reason(df[col], col)
        if reason:
            excluded[col] = reason
        else:
            features.append(col)
    if not features:
        reasons = "; ".join(f"{col}: {why}" for col, why in excluded.items()) or "none"
        raise DataValidationError(
            f"no column of the table can be a feature (left out: {reasons}); "
            "name the feature columns with --features"
        )
    return features, excluded
