"""The accelerator gives the model's own probabilities for every candidate and table, or refuses."""

from __future__ import annotations

import warnings
from functools import cache

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, MinMaxScaler, OneHotEncoder, StandardScaler

from mlops_kit.data import DatasetSpec
from mlops_kit.scoring.accelerator import Accelerator, Unsupported, build
from mlops_kit.train import CANDIDATES, build_pipeline

# sklearn warns, at each call, that it skips a column in which training saw no value.
pytestmark = pytest.mark.filterwarnings("ignore:Skipping features without any observed values")

PROPERTY = settings(
    max_examples=50,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
EXTREMES = [0.0, -0.0, 1.0, 1e300, -1e300, 1e-300, -1e-300, 5e-324, -5e-324]
NUMBERS = st.one_of(
    st.just(np.nan),
    st.sampled_from(EXTREMES),
    st.floats(-1e4, 1e4),
    st.floats(allow_nan=False, allow_infinity=False),
)
WORDS = ["Biscoe", "Dream", "Torgersen", "", "nan", "ß", "a b", "0"]

# name: (numeric columns, categorical columns, categories per column, classes, share missing)
TABLES = {
    "numeric, 2 classes": (3, 0, 0, 2, 0.0),
    "numeric, 6 classes, missing": (2, 0, 0, 6, 0.2),
    "categorical, 2 classes": (0, 2, 3, 2, 0.0),
    "categorical, 5 classes, many categories, missing": (0, 2, 8, 5, 0.2),
    "mixed, 3 classes, missing": (3, 2, 3, 3, 0.15),
    "mixed, 2 classes, empty columns": (3, 3, 4, 2, 0.1),
}


def frame(columns: dict[str, list[object]], categorical: list[str]) -> pd.DataFrame:
    """What the plain path passes to the pipeline: float64 numbers, object text, NaN if missing."""
    return pd.DataFrame(
        {
            name: pd.Series(values, dtype=object if name in categorical else np.float64)
            for name, values in columns.items()
        }
    )


def fit(candidate: str, spec: DatasetSpec, X: pd.DataFrame, y: list[str]) -> Pipeline:  # noqa: N803
    """The kit's pipeline for one candidate, fitted as training fits it (fewer neighbours if tiny)."""
    pipeline = build_pipeline(candidate, spec)
    if candidate == "knn":
        pipeline.set_params(classifier__n_neighbors=min(7, len(X)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an all-missing column: sklearn warns it skips it
        return pipeline.fit(X, y)


def table(name: str, rows: int = 120) -> tuple[DatasetSpec, pd.DataFrame, list[str]]:
    """A seeded training table of the given shape."""
    numeric, categorical, categories, classes, missing = TABLES[name]
    rng = np.random.default_rng(len(name))
    label = np.arange(rows) % classes
    columns: dict[str, list[object]] = {}
    for i in range(numeric):  # numbers on different scales, shifted by the class
        columns[f"x{i}"] = list(rng.normal(10.0**i, 3.0**i, rows) + label)
    for i in range(categorical):
        columns[f"c{i}"] = [str(w) for w in rng.choice(WORDS[:categories], rows)]
    spec = DatasetSpec(
        "y", [f"x{i}" for i in range(numeric)], [f"c{i}" for i in range(categorical)]
    )
    for values in columns.values():
        for row in np.flatnonzero(rng.random(rows) < missing):
            values[row] = np.nan
    if name.endswith("empty columns"):  # training saw no value at all in one column of each kind
        columns["x0"] = [np.nan] * rows
        columns["c0"] = [np.nan] * rows
    return spec, frame(columns, spec.categorical), [f"class {i}" for i in label]


@cache
def fitted(candidate: str, name: str) -> tuple[Pipeline, Accelerator, DatasetSpec, pd.DataFrame]:
    """One fitted pipeline and its accelerator per candidate and table, shared by this module."""
    spec, X, y = table(name)  # noqa: N806
    pipeline = fit(candidate, spec, X, y)
    return pipeline, build(pipeline), spec, X


def categories_of(X: pd.DataFrame, spec: DatasetSpec) -> dict[str, list[str]]:  # noqa: N803
    """The text values each categorical column was trained with."""
    return {c: sorted(X[c].dropna().unique()) for c in spec.categorical}


@st.composite
def records(draw: st.DrawFn, spec: DatasetSpec, categories: dict[str, list[str]]) -> pd.DataFrame:
    """1-8 records: numbers from extremes to ordinary, known categories, anything missing."""
    rows = draw(st.integers(1, 8))
    columns: dict[str, list[object]] = {}
    for name in spec.features:
        values = st.sampled_from([np.nan, *categories[name]]) if name in categories else NUMBERS
        columns[name] = draw(st.lists(values, min_size=rows, max_size=rows))
    return frame(columns, spec.categorical)


def assert_same(pipeline: Pipeline, accelerator: Accelerator, records: pd.DataFrame) -> None:
    """The accelerator answers as the pipeline does: equal probabilities, or an error too."""
    try:
        expected = pipeline.predict_proba(records)
    except ValueError:  # e.g. a number scaled beyond float64: the classifier refuses it
        with pytest.raises(ValueError):
            accelerator.predict_proba(records)
        return
    got = accelerator.predict_proba(records)
    assert got.shape == expected.shape
    finite = np.isfinite(expected).all(axis=1)
    np.testing.assert_allclose(got[finite], expected[finite], rtol=1e-9, atol=1e-12)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # overflow on purpose: ±1e300
@pytest.mark.parametrize("name", list(TABLES))
@pytest.mark.parametrize("candidate", CANDIDATES)
@PROPERTY
@given(data=st.data())
def test_same_probabilities_as_the_pipeline(candidate: str, name: str, data: st.DataObject) -> None:
    pipeline, accelerator, spec, X = fitted(candidate, name)  # noqa: N806
    assert_same(pipeline, accelerator, data.draw(records(spec, categories_of(X, spec))))


@pytest.mark.parametrize("name", list(TABLES))
@pytest.mark.parametrize("candidate", CANDIDATES)
def test_every_known_category_and_missing_value(candidate: str, name: str) -> None:
    pipeline, accelerator, spec, X = fitted(candidate, name)  # noqa: N806
    rows = [X.iloc[0].to_dict(), dict.fromkeys(spec.features, np.nan)]
    for column, values in categories_of(X, spec).items():
        rows += [{**rows[0], column: v} for v in values]
    columns = {c: [r[c] for r in rows] for c in spec.features}
    assert_same(pipeline, accelerator, frame(columns, spec.categorical))
    build(pipeline, X.head(3))  # the served model's examples are also checking records


def test_the_tables_cover_dense_and_sparse_one_hot_output() -> None:
    outputs = {fitted("knn", name)[0][0].sparse_output_ for name in TABLES if "categorical" in name}
    assert outputs == {True, False}


@st.composite
def training_tables(draw: st.DrawFn) -> tuple[DatasetSpec, pd.DataFrame, list[str]]:
    """A small table of any shape the kit accepts: 0-3 numbers, 0-2 texts, 2-4 classes, gaps."""
    numeric, categorical = draw(
        st.tuples(st.integers(0, 3), st.integers(0, 2)).filter(lambda t: sum(t) > 0)
    )
    rows, classes = draw(st.integers(8, 30)), draw(st.integers(2, 4))
    spec = DatasetSpec(
        "y", [f"x{i}" for i in range(numeric)], [f"c{i}" for i in range(categorical)]
    )
    columns: dict[str, list[object]] = {}
    for name in spec.numeric:
        numbers = st.one_of(st.just(np.nan), st.floats(-1e6, 1e6))
        columns[name] = draw(st.lists(numbers, min_size=rows, max_size=rows))
    for name in spec.categorical:
        words = st.sampled_from([np.nan, *draw(st.lists(st.sampled_from(WORDS), min_size=1))])
        columns[name] = draw(st.lists(words, min_size=rows, max_size=rows))
    y = draw(st.permutations([f"class {i % classes}" for i in range(rows)]))
    return spec, frame(columns, spec.categorical), y


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("candidate", CANDIDATES)
@settings(PROPERTY, max_examples=25)
@given(training=training_tables(), data=st.data())
def test_built_for_any_table_the_kit_trains_on(
    candidate: str, training: tuple[DatasetSpec, pd.DataFrame, list[str]], data: st.DataObject
) -> None:
    spec, X, y = training  # noqa: N806
    try:
        pipeline = fit(candidate, spec, X, y)
    except ValueError:  # nothing to learn from: every column empty
        assume(False)
    assert_same(pipeline, build(pipeline), data.draw(records(spec, categories_of(X, spec))))


def pipeline_with(numeric_steps: list[object], encoder: object | None = None) -> Pipeline:
    """A pipeline like the kit's, with other steps, fitted on a small mixed table."""
    spec, X, y = table("mixed, 3 classes, missing")  # noqa: N806
    categorical = Pipeline(
        [
            ("impute", SimpleImputer(strategy="most_frequent")),
            ("onehot", encoder or OneHotEncoder()),
        ]
    )
    preprocess = ColumnTransformer(
        [
            (
                "numeric",
                Pipeline([(f"s{i}", s) for i, s in enumerate(numeric_steps)]),
                spec.numeric,
            ),
            ("categorical", categorical, spec.categorical),
        ]
    )
    return Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression())]).fit(X, y)


def test_a_table_without_text_columns_has_an_accelerator() -> None:
    spec, X, y = table("numeric, 2 classes")  # noqa: N806
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    for categorical in (build_pipeline("knn", spec)[0].transformers[1][1], "drop"):
        preprocess = ColumnTransformer(
            [("numeric", numeric, spec.numeric), ("categorical", categorical, [])]
        )
        pipeline = Pipeline([("preprocess", preprocess), ("classifier", LogisticRegression())])
        assert_same(pipeline.fit(X, y), build(pipeline), X)


@pytest.mark.parametrize(
    "steps",
    [
        [SimpleImputer(), MinMaxScaler()],
        [SimpleImputer(), FunctionTransformer(np.log1p)],
        [SimpleImputer(add_indicator=True), StandardScaler()],
    ],
    ids=["MinMaxScaler", "FunctionTransformer", "imputer with indicator"],
)
def test_a_step_it_does_not_reproduce_is_unsupported(steps: list[object]) -> None:
    with pytest.raises(Unsupported):
        build(pipeline_with(steps))


def test_an_encoder_that_drops_a_category_is_unsupported() -> None:
    with pytest.raises(Unsupported):
        build(pipeline_with([SimpleImputer(), StandardScaler()], OneHotEncoder(drop="first")))


def test_what_is_not_a_fitted_preprocess_and_classifier_pipeline_is_unsupported() -> None:
    spec, X, _ = table("mixed, 3 classes, missing")  # noqa: N806
    fitted_pipeline = fitted("logistic_regression", "mixed, 3 classes, missing")[0]
    for model in (
        build_pipeline("logistic_regression", spec),  # not fitted
        fitted_pipeline.steps[1][1],  # a bare classifier
        Pipeline([*fitted_pipeline.steps, ("again", fitted_pipeline.steps[1][1])]),
    ):
        with pytest.raises(Unsupported):
            build(model, X)


class DoublingScaler(StandardScaler):
    """A scaler whose output is not what its fitted mean and scale say."""

    def transform(self, X, copy=None):  # noqa: ANN001, ANN201, N803
        return 2 * super().transform(X, copy=copy)


def test_a_plan_that_disagrees_with_the_pipeline_is_refused() -> None:
    pipeline = pipeline_with([SimpleImputer(), DoublingScaler()])
    with pytest.raises(Unsupported, match="disagrees"):
        build(pipeline)
