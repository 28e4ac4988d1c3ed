"""The numpy scoring plan gives what the sklearn pipeline gives, and steps aside when it cannot."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.preprocessing import MinMaxScaler

from mlops_kit import data, train
from mlops_kit.config import Settings
from mlops_kit.serving import compiled


@pytest.fixture(scope="module")
def prepared() -> data.PreparedData:
    """The penguins data stage output (nothing written)."""
    return data.prepare(Settings(), write=False)


def eval_columns(prepared: data.PreparedData) -> dict[str, list[object]]:
    """The evaluation split column-wise, missing values as None, as the API hands them over."""
    frame = prepared.X_eval.astype(object).where(prepared.X_eval.notna(), None)
    return {c: frame[c].tolist() for c in prepared.spec.features}


@pytest.mark.parametrize("candidate", train.CANDIDATES)
def test_plan_matches_the_pipeline_on_every_candidate(
    candidate: str, prepared: data.PreparedData
) -> None:
    pipeline = train.build_pipeline(candidate, prepared.spec).fit(
        prepared.X_train, prepared.y_train
    )
    columns = eval_columns(prepared)
    assert any(v is None for v in columns["sex"])  # the held-out season has unknown sexes
    plan = compiled.CompiledPipeline(pipeline)
    fast = plan.predict_proba(columns, len(prepared.X_eval))
    slow = pipeline.predict_proba(prepared.X_eval)
    np.testing.assert_allclose(fast, slow, rtol=1e-9, atol=1e-12)


def test_categories_come_from_the_fitted_encoder(prepared: data.PreparedData) -> None:
    pipeline = train.build_pipeline("knn", prepared.spec).fit(prepared.X_train, prepared.y_train)
    assert compiled.known_categories(pipeline) == {
        "island": ["Biscoe", "Dream", "Torgersen"],
        "sex": ["female", "male"],
    }


def test_an_unknown_step_is_not_compiled(prepared: data.PreparedData) -> None:
    pipeline = train.build_pipeline("logistic_regression", prepared.spec)
    numeric = pipeline.named_steps["preprocess"].transformers[0][1]
    numeric.steps[1] = ("scale", MinMaxScaler())
    pipeline.fit(prepared.X_train, prepared.y_train)
    with pytest.raises(compiled.Unsupported, match="MinMaxScaler"):
        compiled.CompiledPipeline(pipeline)


def test_a_plan_that_disagrees_is_caught_by_verify(prepared: data.PreparedData) -> None:
    pipeline = train.build_pipeline("logistic_regression", prepared.spec)
    pipeline.fit(prepared.X_train, prepared.y_train)
    plan = compiled.CompiledPipeline(pipeline)
    block = plan.blocks[0]
    plan.blocks[0] = compiled._NumericBlock(block.columns, block.ops[:1])  # forget the scaling
    examples = prepared.X_eval.dropna().head(2).to_dict("records")
    spec = prepared.spec
    with pytest.raises(compiled.Unsupported, match="disagrees"):
        compiled.verify(plan, pipeline, examples, spec.numeric, spec.features, {})


def test_api_falls_back_to_the_pipeline_with_the_same_answers(
    make_client: Callable[..., TestClient], monkeypatch: pytest.MonkeyPatch, record: dict
) -> None:
    records = [{**record, "sex": "male"}, {**record, "island": None, "body_mass_g": 4800.0}]
    fast = make_client().post("/predict", json=records).json()["predictions"]

    def unsupported(pipeline: object) -> None:
        raise compiled.Unsupported("switched off for this test")

    monkeypatch.setattr(compiled, "CompiledPipeline", unsupported)
    client = make_client()
    assert client.get("/model").json()["scoring"] == "pipeline"
    slow = client.post("/predict", json=records).json()["predictions"]
    for a, b in zip(fast, slow, strict=True):
        assert a["predicted"] == b["predicted"]
        assert a["probabilities"] == pytest.approx(b["probabilities"], rel=1e-9)
