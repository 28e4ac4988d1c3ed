"""Data stage: load the raw table, validate its schema, clean it, split it by season, catalogue it.

Reading the file is in `mlops_kit.tables`; deciding what each column is, in `mlops_kit.columns`.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict

import numpy as np
import pandas as pd

from mlops_kit.columns import (
    IDENTIFIER,
    derive_features,
    exclusion_reason,
    numeric_and_categorical,
)
from mlops_kit.config import (
    PENGUIN_FEATURES,
    PENGUIN_SPLIT_COLUMN,
    PENGUIN_TARGET,
    PENGUINS_CSV,
    Settings,
    TableSpec,
    display_path,
)
from mlops_kit.dataset import DatasetSpec, PreparedData, counts, make_card
from mlops_kit.store.datasets import write_version
from mlops_kit.tables import (
    DataValidationError,
    file_sha256,
    is_penguins_raw,
    load_raw,
    resolve_column,
)

EVAL_FRACTION = 0.25  # used only when a table has no season/time column to split on

# Data-size rules: below these the kit stops rather than train, score and promote a model on noise.
MIN_TRAIN_ROWS_PER_CLASS = 5  # fewer examples and a class is learnt from a handful of rows
MIN_EVAL_ROWS_PER_CLASS = 1  # every class is in the evaluation, so the score covers it
MIN_EVAL_ROWS = 10  # with fewer, one row moves the score by more than ten points


def infer_spec(
    df: pd.DataFrame, target: str, features: list[str], split_column: str | None
) -> DatasetSpec:
    """Decide which features are numeric or categorical; columns must exist."""
    if not features:
        raise DataValidationError("no feature columns given")
    target_col = resolve_column(df, target, "target")
    feature_cols = [resolve_column(df, f, "feature") for f in features]
    if target_col in feature_cols:
        raise DataValidationError(f"target column '{target_col}' is also listed as a feature")
    split_col = resolve_column(df, split_column, "split") if split_column else None
    numeric, categorical = numeric_and_categorical(df, feature_cols)
    return DatasetSpec(target_col, numeric, categorical, split_col)


def validate(df: pd.DataFrame, spec: DatasetSpec) -> None:
    """Check the raw table against the spec; raise DataValidationError naming the problem."""
    if df.empty:
        raise DataValidationError("the table has no rows")
    empty = [col for col in spec.features if df[col].isna().all()]
    if empty:  # the imputers would silently drop such a column and the fit would fail later
        raise DataValidationError(f"feature column(s) with no values at all: {', '.join(empty)}")
    for col in spec.numeric:
        parsed = pd.to_numeric(df[col], errors="coerce")
        bad = df[col].notna() & parsed.isna()
        if bad.any():
            examples = ", ".join(f"{df[col][i]!r} (line {i + 2})" for i in df.index[bad][:3])
            raise DataValidationError(
                f"column '{col}' should be numeric but has {int(bad.sum())} non-numeric "
                f"value(s): {examples}; write every value as a plain number, or mark it missing "
                "with an empty cell"
            )
        if np.isinf(parsed.to_numpy(dtype="float64")).any():
            raise DataValidationError(f"column '{col}' has infinite values")
    labels = df[spec.target].dropna()
    if labels.empty:
        raise DataValidationError(f"target column '{spec.target}' has no values")
    if labels.nunique() < 2:
        raise DataValidationError(
            f"target column '{spec.target}' has a single class ({labels.iloc[0]!r}); "
            "a classifier needs at least two"
        )


def tells_rows_apart(df: pd.DataFrame) -> bool:
    """Whether some column (an id, a precise measurement) differs on every row of a table.

    In such a table a repeat of a whole row is a copy; in a table of categories or coarse
    values, repeated rows are how often a combination occurs, and they stay.
    """
    return any(df[col].notna().all() and df[col].is_unique for col in df.columns)


def clean(df: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clean a validated raw table; return the clean rows and how many were dropped, by reason."""
    dropped: dict[str, int] = {}
    duplicates = df.duplicated()  # exact repeats of a whole raw row, before columns are dropped
    if not (is_penguins_raw(df) or tells_rows_apart(df[~duplicates])):
        duplicates[:] = False  # a table of categories or coarse values: repeats are data
    if int(duplicates.sum()):
        dropped["duplicate"] = int(duplicates.sum())
    keep = [*spec.features, spec.target, *([spec.split_column] if spec.split_column else [])]
    out = df.loc[~duplicates, keep].copy()
    if is_penguins_raw(df):
        # 'Adelie Penguin (Pygoscelis adeliae)' -> 'Adelie'; 'MALE' -> 'male'
        if "species" in out:  # absent when the user predicts something else from other columns
            out["species"] = out["species"].str.split().str[0]
        if "sex" in out:
            out["sex"] = out["sex"].str.lower()
    for col in spec.numeric:
        out[col] = pd.to_numeric(out[col]).astype("float64")
    for col in spec.categorical:
        out[col] = out[col].astype(object)

    def drop(mask: pd.Series, reason: str) -> None:
        nonlocal out
        if int(mask.sum()):
            dropped[reason] = int(mask.sum())
        out = out[~mask]

    drop(out[spec.target].isna(), "missing_target")
    if spec.numeric:
        drop(out[spec.numeric].isna().all(axis=1), "no_measurements")
    if spec.split_column:
        drop(out[spec.split_column].isna(), "missing_split_value")
    out = out.reset_index(drop=True)
    if out.empty:
        raise DataValidationError("no rows left after cleaning")
    if out[spec.target].nunique() < 2:
        raise DataValidationError(
            f"target column '{spec.target}' has a single class after cleaning; need at least two"
        )
    return out, dropped


def season_of(values: pd.Series) -> pd.Series:
    """The season a value belongs to: the year of a date, else the value itself."""
    dates = pd.to_datetime(values, errors="coerce", format="mixed")
    if dates.notna().all():
        return dates.dt.year.astype(str)
    return values.astype(str)


def season_order(seasons: pd.Series) -> list[str]:
    """The distinct seasons, oldest first: by number when they are numbers (season 2 before 10)."""
    distinct = [str(s) for s in seasons.unique()]
    numbers = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce")
    if numbers.notna().all():
        return [s for _, s in sorted(zip(numbers, distinct, strict=True))]
    return sorted(distinct)


def split(
    clean_df: pd.DataFrame, spec: DatasetSpec, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """Hold out the newest season for evaluation (or a seeded stratified share without one)."""
    check_rows_per_class(clean_df[spec.target], random_split=not spec.split_column)
    if spec.split_column:
        seasons = season_of(clean_df[spec.split_column])
        ordered = season_order(seasons)
        if len(ordered) < 2:
            raise DataValidationError(
                f"split column '{spec.split_column}' has a single season ({ordered[0]}); "
                "need at least two to hold the newest one out"
            )
        newest = ordered[-1]
        is_eval = seasons == newest
        info = {"by": spec.split_column, "train_seasons": ordered[:-1], "eval_seasons": [newest]}
    else:
        from sklearn.model_selection import train_test_split

        _, eval_idx = train_test_split(
            clean_df.index,
            test_size=EVAL_FRACTION,
            random_state=seed,
            stratify=clean_df[spec.target],
        )
        is_eval = clean_df.index.isin(eval_idx)
        info = {"by": "random", "eval_fraction": EVAL_FRACTION, "seed": seed}
    train, evaluation = clean_df[~is_eval], clean_df[is_eval]
    if train.empty or evaluation.empty:
        raise DataValidationError("the split left an empty training or evaluation set")
    if train[spec.target].nunique() < 2:
        raise DataValidationError("the training split has a single class; need at least two")
    check_split_sizes(train[spec.target], evaluation[spec.target], clean_df[spec.target], info)
    info["train_rows"] = len(train)
    info["eval_rows"] = len(evaluation)
    info["train_class_balance"] = counts(train[spec.target])
    info["eval_class_balance"] = counts(evaluation[spec.target])
    return train.reset_index(drop=True), evaluation.reset_index(drop=True), info


def _few(counts: pd.Series, below: int) -> str:
    """'a' (2), 'b' (3) ... for the classes with fewer rows than `below`, at most five named."""
    few = counts[counts < below].sort_values()
    named = ", ".join(f"'{label}' ({int(n)})" for label, n in few.head(5).items())
    return named + (f" and {len(few) - 5} more" if len(few) > 5 else "")


def check_rows_per_class(labels: pd.Series, random_split: bool) -> None:
    """Refuse a table with a class too small to be both trained on and evaluated on."""
    need = MIN_TRAIN_ROWS_PER_CLASS + MIN_EVAL_ROWS_PER_CLASS
    if random_split:  # the training share of a class must still reach the minimum
        need = max(need, math.ceil(MIN_TRAIN_ROWS_PER_CLASS / (1 - EVAL_FRACTION)))
    counts = labels.value_counts()
    if counts.min() >= need:
        return
    raise DataValidationError(
        f"too few rows for {int((counts < need).sum())} of {len(counts)} classes of "
        f"'{labels.name}': {_few(counts, need)}; each class needs at least {need} rows "
        f"({MIN_TRAIN_ROWS_PER_CLASS} to train on, {MIN_EVAL_ROWS_PER_CLASS} to evaluate on). "
        "Add rows, or merge or drop the rare classes"
    )


def check_split_sizes(
    train_labels: pd.Series, eval_labels: pd.Series, all_labels: pd.Series, info: dict
) -> None:
    """Refuse a split whose training or evaluation set is too small to mean anything."""
    by_season = info["by"] != "random"
    fix = (
        " Add rows, or split at random (--split-column none)"
        if by_season
        else " Add rows to the table"
    )
    held_out = (
        f"the evaluation set ({info['eval_seasons'][0]})" if by_season else "the evaluation set"
    )
    classes = all_labels.value_counts().index
    train_counts = train_labels.value_counts().reindex(classes, fill_value=0)
    eval_counts = eval_labels.value_counts().reindex(classes, fill_value=0)
    if train_counts.min() < MIN_TRAIN_ROWS_PER_CLASS:
        raise DataValidationError(
            f"the training set has too few rows of {_few(train_counts, MIN_TRAIN_ROWS_PER_CLASS)}"
            f"; each class needs at least {MIN_TRAIN_ROWS_PER_CLASS}.{fix}"
        )
    if eval_counts.min() < MIN_EVAL_ROWS_PER_CLASS:
        raise DataValidationError(
            f"{held_out} has too few rows of {_few(eval_counts, MIN_EVAL_ROWS_PER_CLASS)}; "
            f"each class needs at least {MIN_EVAL_ROWS_PER_CLASS} there.{fix}"
        )
    if len(eval_labels) < MIN_EVAL_ROWS:
        raise DataValidationError(
            f"{held_out} has {len(eval_labels)} rows; need at least {MIN_EVAL_ROWS} for a "
            f"score that means something.{fix}"
        )


def data_version(clean_df: pd.DataFrame, spec: DatasetSpec, split_info: dict | None = None) -> str:
    """Content hash of the clean table and the spec (and a random split's seed): the data version.

    A season split is fixed by the table; a random split also depends on its seed, so two seeds
    are two data versions (two folders), not one whose train.csv and eval.csv overwrite each other.
    """
    digest = hashlib.sha256(clean_df.to_csv(index=False).encode())
    digest.update(json.dumps(asdict(spec), sort_keys=True).encode())
    if split_info and split_info.get("by") == "random":
        rule = {k: split_info[k] for k in ("by", "eval_fraction", "seed")}
        digest.update(json.dumps(rule, sort_keys=True).encode())
    return digest.hexdigest()[:12]


def choose_columns(
    raw: pd.DataFrame, table: TableSpec
) -> tuple[str, list[str], str | None, dict[str, str]]:
    """The target, the features, the split column and the columns left out (with why).

    What the table spec leaves out comes from the table: `species`; the season column where the
    table has it; the penguin measurements on the penguins, the usable columns of another table.
    """
    target = resolve_column(raw, table.target or PENGUIN_TARGET, "target")
    if table.split_column:
        split_col = resolve_column(raw, table.split_column, "split")
    elif not table.random_split and PENGUIN_SPLIT_COLUMN in raw.columns:
        split_col = PENGUIN_SPLIT_COLUMN
    else:
        split_col = None
    if table.features:
        return target, list(table.features), split_col, {}
    if is_penguins_raw(raw):  # the talk's measurements, less the column to predict
        return target, [f for f in PENGUIN_FEATURES if f != target], split_col, {}
    features, excluded = derive_features(raw, target, split_col)
    return target, features, split_col, excluded


def other_columns(raw: pd.DataFrame, spec: DatasetSpec) -> dict[str, str]:
    """The file's columns that are not features, each with its header in the file.

    A row sent as it is in the file carries them (an identifier, free text, dates, the target):
    the API accepts and ignores them.
    """
    headers = raw.attrs.get("file_columns") or {c: c for c in raw.columns}
    return {c: h for c, h in headers.items() if c not in spec.features}


def record_key(raw: pd.DataFrame, spec: DatasetSpec, excluded: dict[str, str]) -> str | None:
    """The column that tells records apart: the first one left out as an identifier, or None.

    Where the features were given (nothing was left out by the kit), the file's other columns
    are looked at the same way: an `id` column is the key whoever chose the features.
    """
    roles = {*spec.features, spec.target, spec.split_column}
    for column in raw.columns:
        if column in roles:
            continue
        why = excluded.get(column) or exclusion_reason(raw[column], column) or ""
        if why.startswith(IDENTIFIER):
            return column
    return None


def prepare(table: TableSpec, settings: Settings, *, write: bool = True) -> PreparedData:
    """Run the whole data stage: load, validate, clean, split, catalogue (through the store)."""
    path = table.data_path or PENGUINS_CSV
    raw = load_raw(path)
    target, features, split_col, excluded = choose_columns(raw, table)
    spec = infer_spec(raw, target, features, split_col)
    validate(raw, spec)
    clean_df, dropped = clean(raw, spec)
    train, evaluation, split_info = split(clean_df, spec, settings.seed)
    card = make_card(
        clean_df,
        spec,
        data_version=data_version(clean_df, spec, split_info),
        source=display_path(path),
        source_sha256=file_sha256(path),
        rows_raw=len(raw),
        rows_dropped=dropped,
        split=split_info,
        excluded_columns=excluded,
        read_as=dict(raw.attrs.get("read_as", {})),
        file_headers={
            c: h
            for c, h in raw.attrs.get("file_headers", {}).items()
            if c in (*spec.features, spec.target)
        },
        other_columns=other_columns(raw, spec),
        record_key=record_key(raw, spec, excluded),
    )
    prepared = PreparedData(clean_df, train, evaluation, spec, card)
    if write:
        write_version(prepared, settings)
    return prepared
