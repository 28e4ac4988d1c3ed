"""The logged MLflow model: what a consumer loading it with pyfunc gets back."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import Model

from mlops_kit.confidence import predict_with_confidence

PROBA = ["proba_Adelie", "proba_Chinstrap", "proba_Gentoo"]


@pytest.fixture
def model_dir(use_trained, tmp_path) -> Path:
    """The best candidate's logged model, downloaded as a consumer would get it."""
    uri = use_trained.result.best.model_uri
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(tmp_path)))


def test_logged_model_predicts_like_the_pipeline(use_trained):
    result = use_trained.result
    model = mlflow.pyfunc.load_model(result.best.model_uri)
    records = result.prepared.X_eval
    out = model.predict(records)
    assert list(out.columns) == ["predicted", "confidence", *PROBA]
    assert len(out) == len(records)
    np.testing.assert_allclose(out["confidence"], out[PROBA].max(axis=1))
    np.testing.assert_allclose(out[PROBA].sum(axis=1), 1.0)
    expected = predict_with_confidence(result.best.pipeline, records)
    pd.testing.assert_frame_equal(out, expected)


def test_every_candidate_run_has_a_loadable_model(use_trained):
    for candidate in use_trained.result.candidates:
        assert candidate.run_id and candidate.model_uri
        out = mlflow.pyfunc.load_model(candidate.model_uri).predict(
            use_trained.result.prepared.X_eval.head(5)
        )
        assert len(out) == 5


def test_signature_takes_the_raw_feature_columns(use_trained):
    model = mlflow.pyfunc.load_model(use_trained.result.best.model_uri)
    inputs = model.metadata.get_input_schema()
    assert inputs.input_names() == use_trained.result.prepared.spec.features
    assert all(not col.required for col in inputs.inputs)  # missing data is allowed in
    types = {col.name: col.type.name for col in inputs.inputs}
    assert types["body_mass_g"] == "double"
    assert types["sex"] == "string"
    outputs = model.metadata.get_output_schema().input_names()
    assert outputs == ["predicted", "confidence", *PROBA]


def test_missing_values_and_absent_optional_columns_are_imputed(use_trained):
    model = mlflow.pyfunc.load_model(use_trained.result.best.model_uri)
    records = pd.DataFrame(
        {
            "island": ["Biscoe", "Dream"],
            "bill_length_mm": [47.5, np.nan],
            "bill_depth_mm": [14.9, 18.1],
            "flipper_length_mm": [217.0, 190.0],
            "body_mass_g": [5000.0, 3700.0],
            "sex": [None, "male"],
        }
    )
    out = model.predict(records)
    assert out["predicted"].notna().all()
    assert out["predicted"][0] == "Gentoo"
    without_sex = model.predict(records.drop(columns=["sex"]))
    assert len(without_sex) == 2
    assert without_sex["predicted"][0] == "Gentoo"


def test_model_has_an_input_example_that_it_accepts(model_dir):
    meta = Model.load(str(model_dir))
    assert meta.saved_input_example_info is not None
    example = meta.load_input_example(str(model_dir))
    assert list(example.columns) == [
        "bill_length_mm",
        "bill_depth_mm",
        "flipper_length_mm",
        "body_mass_g",
        "island",
        "sex",
    ]
    assert len(example) >= 1
    assert len(mlflow.pyfunc.load_model(str(model_dir)).predict(example)) == len(example)


def test_requirements_are_pinned_not_inferred(model_dir):
    lines = [
        line.strip()
        for line in (model_dir / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert f"mlflow=={version('mlflow')}" in lines
    assert f"scikit-learn=={version('scikit-learn')}" in lines
    assert all("==" in line for line in lines), lines  # inference would add unpinned extras
    assert not any(line.startswith("mlops") for line in lines)


def test_model_loads_without_the_kit_installed(model_dir):
    code = (
        "import sys; sys.modules['mlops_kit'] = None\n"  # any import of the kit now fails
        "import mlflow, pandas as pd\n"
        f"model = mlflow.pyfunc.load_model({str(model_dir)!r})\n"
        "records = pd.DataFrame([{'island': 'Dream', 'bill_length_mm': 49.0,"
        " 'bill_depth_mm': 18.5, 'flipper_length_mm': 195.0, 'body_mass_g': 3700.0,"
        " 'sex': 'female'}])\n"
        "print(model.predict(records)['predicted'][0])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "Chinstrap"


def test_json_null_counts_as_missing_like_nan(use_trained):
    model = mlflow.pyfunc.load_model(use_trained.result.best.model_uri).unwrap_python_model()
    record = use_trained.result.prepared.X_eval.head(1).to_dict("records")[0]
    as_null = model.predict(None, pd.DataFrame([{**record, "sex": None}]))
    as_nan = model.predict(None, pd.DataFrame([{**record, "sex": np.nan}]))
    pd.testing.assert_frame_equal(as_null, as_nan)
