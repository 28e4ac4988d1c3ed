"""Data stage: load the raw table, validate its schema, clean it, split it by season, catalogue it."""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from mlops_kit.config import Settings, display_path, resolve_path

MISSING_MARKERS = ["", "NA", "N/A", "NaN", "nan", "null", "NULL", ".", "?"]
PENGUIN_RENAMES = {"culmen_length_mm": "bill_length_mm", "culmen_depth_mm": "bill_depth_mm"}
PENGUIN_NUMERIC = ["bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g"]
PENGUIN_CATEGORICAL = ["island", "sex"]
EVAL_FRACTION = 0.25  # used only when a table has no season/time column to split on


class DataValidationError(ValueError):
    """The input table cannot be used; the message names the column and the problem."""


@dataclass(frozen=True)
class DatasetSpec:
    """What to predict from what, and how to split: the user-facing parameters of the data stage."""

    target: str
    numeric: list[str]
    categorical: list[str]
    split_column: str | None = None

    @property
    def features(self) -> list[str]:
        """All feature columns, numeric first."""
        return [*self.numeric, *self.categorical]


@dataclass
class DataCard:
    """The catalogue entry of one data version: what went in, what came out, how it was split."""

    data_version: str
    source: str
    source_sha256: str
    created_at: str
    target: str
    numeric_features: list[str]
    categorical_features: list[str]
    rows_raw: int
    rows_clean: int
    rows_dropped: dict[str, int]
    columns: dict[str, dict[str, object]]
    class_balance: dict[str, int]
    split: dict[str, object]
    files: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        """A JSON-ready dict."""
        return asdict(self)


@dataclass
class PreparedData:
    """The output of the data stage: clean table, the two splits, the spec and the card."""

    clean: pd.DataFrame
    train: pd.DataFrame
    eval: pd.DataFrame
    spec: DatasetSpec
    card: DataCard

    @property
    def X_train(self) -> pd.DataFrame:  # noqa: N802 - the field's usual name
        """Training features."""
        return self.train[self.spec.features]

    @property
    def y_train(self) -> pd.Series:
        """Training labels."""
        return self.train[self.spec.target]

    @property
    def X_eval(self) -> pd.DataFrame:  # noqa: N802
        """Held-out evaluation features."""
        return self.eval[self.spec.features]

    @property
    def y_eval(self) -> pd.Series:
        """Held-out evaluation labels."""
        return self.eval[self.spec.target]


def normalize_column(name: str) -> str:
    """Turn a column header into snake_case: 'Culmen Length (mm)' -> 'culmen_length_mm'."""
    return re.sub(r"[^0-9a-z]+", "_", str(name).strip().lower()).strip("_")


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 16), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_raw(path: Path | str) -> pd.DataFrame:
    """Read a CSV as text, with normalized column names; missing markers become NA."""
    path = resolve_path(path)
    if not path.exists():
        raise DataValidationError(f"data file not found: {path}")
    if path.is_dir():
        raise DataValidationError(f"data path is a folder, not a CSV file: {path}")
    try:
        df = pd.read_csv(
            path, dtype=str, na_values=MISSING_MARKERS, keep_default_na=False, skipinitialspace=True
        )
    except pd.errors.EmptyDataError as exc:
        raise DataValidationError(f"data file is empty: {path}") from exc
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"data file is not a readable CSV: {path} ({exc})") from exc
    normalized = [normalize_column(c) for c in df.columns]
    dupes = sorted({c for c in normalized if normalized.count(c) > 1})
    if dupes:
        raise DataValidationError(f"columns collide after normalizing names: {', '.join(dupes)}")
    df.columns = normalized
    if is_penguins_raw(df):
        df = df.rename(columns=PENGUIN_RENAMES)
    for col in df.columns:
        df[col] = df[col].str.strip()
    return df


def is_penguins_raw(df: pd.DataFrame) -> bool:
    """Whether a table has the layout of the Palmer penguins raw file."""
    return {"studyname", "species", "culmen_length_mm", "date_egg"} <= set(df.columns) or {
        "studyname",
        "species",
        "bill_length_mm",
        "date_egg",
    } <= set(df.columns)


def resolve_column(df: pd.DataFrame, name: str, role: str) -> str:
    """Find a column by its given or normalized name, or fail naming what exists."""
    for candidate in (name, normalize_column(name), PENGUIN_RENAMES.get(normalize_column(name))):
        if candidate and candidate in df.columns:
            return candidate
    raise DataValidationError(
        f"{role} column '{name}' not found; the table has: {', '.join(df.columns)}"
    )


def _numeric_share(values: pd.Series) -> float:
    present = values.dropna()
    if present.empty:
        return 0.0
    return float(pd.to_numeric(present, errors="coerce").notna().mean())


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
    numeric, categorical = [], []
    for col in feature_cols:
        # The penguin schema is known; for other tables a column whose values are mostly
        # numbers is numeric, and any value in it that is not a number is an error.
        if col in PENGUIN_NUMERIC or (
            col not in PENGUIN_CATEGORICAL and _numeric_share(df[col]) > 0.5
        ):
            numeric.append(col)
        else:
            categorical.append(col)
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
                f"value(s): {examples}"
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


def clean(df: pd.DataFrame, spec: DatasetSpec) -> tuple[pd.DataFrame, dict[str, int]]:
    """Clean a validated raw table; return the clean rows and how many were dropped, by reason."""
    dropped: dict[str, int] = {}
    duplicates = df.duplicated()  # exact repeats of a whole raw row, before columns are dropped
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

        counts = clean_df[spec.target].value_counts()
        stratify = clean_df[spec.target] if counts.min() >= 2 else None
        _, eval_idx = train_test_split(
            clean_df.index, test_size=EVAL_FRACTION, random_state=seed, stratify=stratify
        )
        is_eval = clean_df.index.isin(eval_idx)
        info = {"by": "random", "eval_fraction": EVAL_FRACTION, "seed": seed}
    train, evaluation = clean_df[~is_eval], clean_df[is_eval]
    if train.empty or evaluation.empty:
        raise DataValidationError("the split left an empty training or evaluation set")
    if train[spec.target].nunique() < 2:
        raise DataValidationError("the training split has a single class; need at least two")
    info["train_rows"] = len(train)
    info["eval_rows"] = len(evaluation)
    info["train_class_balance"] = _counts(train[spec.target])
    info["eval_class_balance"] = _counts(evaluation[spec.target])
    return train.reset_index(drop=True), evaluation.reset_index(drop=True), info


def _counts(values: pd.Series) -> dict[str, int]:
    return {str(k): int(v) for k, v in values.value_counts().sort_index().items()}


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


def describe_columns(df: pd.DataFrame, spec: DatasetSpec) -> dict[str, dict[str, object]]:
    """Per-column facts for the data card: kind, missing count, range or categories."""
    facts: dict[str, dict[str, object]] = {}
    for col in [*spec.features, spec.target]:
        entry: dict[str, object] = {"missing": int(df[col].isna().sum())}
        if col in spec.numeric:
            entry.update(kind="numeric", min=float(df[col].min()), max=float(df[col].max()))
        else:
            entry.update(
                kind="target" if col == spec.target else "categorical",
                values=sorted(str(v) for v in df[col].dropna().unique()),
            )
        facts[col] = entry
    return facts


def prepare(
    settings: Settings,
    data_path: Path | str | None = None,
    target: str | None = None,
    features: list[str] | None = None,
    split_column: str | None = "",
    write: bool = True,
) -> PreparedData:
    """Run the whole data stage: load, validate, clean, split, catalogue (through the store)."""
    path = resolve_path(data_path) if data_path else settings.data_path
    raw = load_raw(path)
    split_col = settings.split_column if split_column == "" else split_column
    absent = (
        split_col
        and split_col not in raw.columns
        and normalize_column(split_col) not in raw.columns
    )
    if absent and split_column == "":  # the default season column is optional for other tables
        split_col = None
    spec = infer_spec(raw, target or settings.target, features or settings.features, split_col)
    validate(raw, spec)
    clean_df, dropped = clean(raw, spec)
    train, evaluation, split_info = split(clean_df, spec, settings.seed)
    version = data_version(clean_df, spec, split_info)
    card = DataCard(
        data_version=version,
        source=display_path(path),
        source_sha256=file_sha256(path),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        target=spec.target,
        numeric_features=spec.numeric,
        categorical_features=spec.categorical,
        rows_raw=len(raw),
        rows_clean=len(clean_df),
        rows_dropped=dropped,
        columns=describe_columns(clean_df, spec),
        class_balance=_counts(clean_df[spec.target]),
        split=split_info,
    )
    prepared = PreparedData(clean_df, train, evaluation, spec, card)
    if write:
        from mlops_kit.store.datasets import write_version  # the store builds on these classes

        write_version(prepared, settings)
    return prepared
