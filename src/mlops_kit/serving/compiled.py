"""A numpy plan equivalent to a fitted preprocessing + classifier Pipeline, for low-latency scoring.

scikit-learn spends ~5 ms per call validating and slicing a one-row DataFrame through a
ColumnTransformer; the arithmetic itself takes microseconds. For the step types the kit uses
(SimpleImputer, StandardScaler, OneHotEncoder inside a ColumnTransformer) the fitted parameters are
read once and applied with numpy; the fitted classifier itself still does the predicting. The plan
is checked against the real pipeline when it is built (``verify``); anything it does not know, or
any disagreement, means the API falls back to calling the pipeline.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

Columns = Mapping[str, Sequence[object]]


class Unsupported(Exception):
    """The pipeline has a step the numpy plan does not reproduce."""


def column_steps(pipeline: object) -> Iterator[tuple[list[str], list[object]]]:
    """For each block of the preprocessing ColumnTransformer: its input columns and fitted steps."""
    if not isinstance(pipeline, Pipeline) or len(pipeline.steps) != 2:
        raise Unsupported("expected Pipeline([preprocess, classifier])")
    preprocess = pipeline.steps[0][1]
    if not isinstance(preprocess, ColumnTransformer):
        raise Unsupported("the first step is not a ColumnTransformer")
    for _name, transformer, columns in preprocess.transformers_:
        if isinstance(transformer, str):
            if transformer == "drop":
                continue
            raise Unsupported(f"'{transformer}' blocks are not supported")
        if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
            raise Unsupported("column selections must be lists of names")
        steps = (
            [s for _, s in transformer.steps]
            if isinstance(transformer, Pipeline)
            else [transformer]
        )
        yield columns, steps


def known_categories(pipeline: object) -> dict[str, list[str]]:
    """The categories each one-hot encoded column was fitted with (empty if none can be read)."""
    found: dict[str, list[str]] = {}
    try:
        blocks = list(column_steps(pipeline))
    except Unsupported:
        return found
    for columns, steps in blocks:
        for step in steps:
            if isinstance(step, OneHotEncoder):
                for column, values in zip(columns, step.categories_, strict=True):
                    found[column] = [str(v) for v in values if isinstance(v, str)]
    return found


@dataclass(frozen=True)
class _NumericBlock:
    columns: tuple[str, ...]
    ops: tuple[
        tuple[str, np.ndarray | None, np.ndarray | None], ...
    ]  # ("fill", stats) / ("scale", mean, scale)

    @property
    def width(self) -> int:
        return len(self.columns)

    def write(self, columns: Columns, out: np.ndarray, offset: int) -> None:
        block = np.array([columns[c] for c in self.columns], dtype=np.float64).T
        for op, a, b in self.ops:
            if op == "fill":
                missing = np.isnan(block)
                if missing.any():
                    block[missing] = np.broadcast_to(a, block.shape)[missing]
            else:
                if a is not None:
                    block -= a
                if b is not None:
                    block /= b
        out[:, offset : offset + self.width] = block


@dataclass(frozen=True)
class _OneHotBlock:
    columns: tuple[str, ...]
    fills: tuple[str | None, ...]
    lookups: tuple[dict[str, int], ...]

    @property
    def width(self) -> int:
        return sum(len(lookup) for lookup in self.lookups)

    def write(self, columns: Columns, out: np.ndarray, offset: int) -> None:
        n = out.shape[0]
        rows = np.arange(n)
        for column, fill, lookup in zip(self.columns, self.fills, self.lookups, strict=True):
            values = columns[column]
            full = {**lookup, None: lookup.get(fill, -1)}  # type: ignore[arg-type]
            try:
                idx = np.fromiter(map(full.__getitem__, values), dtype=np.intp, count=n)
            except (KeyError, TypeError):  # a value the encoder never saw
                codes = (full.get(v, -1) for v in values)  # type: ignore[arg-type]
                idx = np.fromiter(codes, dtype=np.intp, count=n)
            known = idx >= 0  # an unknown value encodes as all zeros (handle_unknown="ignore")
            out[rows[known], offset + idx[known]] = 1.0
            offset += len(lookup)


def _imputer_fill(step: SimpleImputer, numeric: bool) -> np.ndarray | tuple[object, ...]:
    missing = step.missing_values
    if step.add_indicator or not (
        missing is None or (isinstance(missing, float) and np.isnan(missing))
    ):
        raise Unsupported("imputer with indicator or a custom missing marker")
    stats = step.statistics_
    if numeric:
        stats = np.asarray(stats, dtype=np.float64)
        if np.isnan(stats).any():
            raise Unsupported("imputer with an empty column")
        return stats
    if not all(isinstance(s, str) for s in stats):
        raise Unsupported("categorical imputer without string statistics")
    return tuple(stats)


def _compile_block(columns: list[str], steps: list[object]) -> _NumericBlock | _OneHotBlock:
    if steps and isinstance(steps[-1], OneHotEncoder):
        encoder = steps[-1]
        if encoder.drop_idx_ is not None or getattr(encoder, "_infrequent_enabled", False):
            raise Unsupported("one-hot encoder with drop or infrequent categories")
        fills: tuple[str | None, ...] = (None,) * len(columns)
        for step in steps[:-1]:
            if not isinstance(step, SimpleImputer):
                raise Unsupported(f"{type(step).__name__} before a one-hot encoder")
            fills = _imputer_fill(step, numeric=False)  # type: ignore[assignment]
        lookups = []
        for values in encoder.categories_:
            if not all(isinstance(v, str) for v in values):
                raise Unsupported("one-hot categories that are not strings")
            lookups.append({v: i for i, v in enumerate(values)})
        return _OneHotBlock(tuple(columns), fills, tuple(lookups))
    ops: list[tuple[str, np.ndarray | None, np.ndarray | None]] = []
    for step in steps:
        if isinstance(step, SimpleImputer):
            ops.append(("fill", _imputer_fill(step, numeric=True), None))  # type: ignore[arg-type]
        elif isinstance(step, StandardScaler):
            ops.append(("scale", step.mean_, step.scale_))
        else:
            raise Unsupported(f"{type(step).__name__} is not supported")
    return _NumericBlock(tuple(columns), tuple(ops))


class CompiledPipeline:
    """The fitted preprocessing as numpy operations, followed by the fitted classifier."""

    def __init__(self, pipeline: Pipeline) -> None:
        preprocess, classifier = pipeline.steps[0][1], pipeline.steps[1][1]
        if getattr(preprocess, "sparse_output_", False):
            raise Unsupported("sparse preprocessing output")
        if hasattr(classifier, "feature_names_in_") or not hasattr(classifier, "predict_proba"):
            raise Unsupported("classifier fitted on named columns or without predict_proba")
        self.blocks = [_compile_block(columns, steps) for columns, steps in column_steps(pipeline)]
        self.width = sum(b.width for b in self.blocks)
        if self.width != getattr(classifier, "n_features_in_", self.width):
            raise Unsupported("the plan's width differs from what the classifier expects")
        self.classifier = classifier

    def predict_proba(self, columns: Columns, rows: int) -> np.ndarray:
        """Class probabilities for ``rows`` records given column-wise (None: missing)."""
        out = np.zeros((rows, self.width), dtype=np.float64)
        offset = 0
        for block in self.blocks:
            block.write(columns, out, offset)
            offset += block.width
        return np.asarray(self.classifier.predict_proba(out))


def frame(columns: Columns, numeric: Sequence[str], order: Sequence[str]) -> pd.DataFrame:
    """What the pipeline expects: float64 numbers, other columns as objects, NaN where missing."""
    data = {}
    for name in order:
        values = columns[name]
        if name in numeric:
            data[name] = np.array(values, dtype=np.float64)
        else:
            data[name] = pd.Series([np.nan if v is None else v for v in values], dtype=object)
    return pd.DataFrame(data)


def verify(
    compiled: CompiledPipeline,
    pipeline: Pipeline,
    examples: Sequence[Mapping[str, object]],
    numeric: Sequence[str],
    order: Sequence[str],
    categories: Mapping[str, Sequence[str]],
) -> None:
    """Raise Unsupported unless plan and pipeline agree on varied records built from examples."""
    records = [dict(r) for r in examples]
    for base in list(records):
        for name, values in categories.items():
            records.append({**base, name: None})
            records.extend({**base, name: v} for v in values)
        for name in numeric:
            for factor in (0.8, 1.25):
                value = base.get(name)
                if isinstance(value, float):
                    records.append({**base, name: value * factor})
    columns = {name: [r.get(name) for r in records] for name in order}
    try:
        fast = compiled.predict_proba(columns, len(records))
        slow = np.asarray(pipeline.predict_proba(frame(columns, numeric, order)))
    except Exception as exc:  # noqa: BLE001 - any failure means: use the pipeline
        raise Unsupported(f"the plan fails on the examples ({type(exc).__name__}: {exc})") from exc
    if fast.shape != slow.shape or not np.allclose(fast, slow, rtol=1e-9, atol=1e-12):
        raise Unsupported("the plan disagrees with the pipeline on the examples")
