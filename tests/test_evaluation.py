"""One evaluation for training, the quality gate and retraining: same numbers, same threshold, same rule."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

from mlops_kit import registry, retrain, tracking
from mlops_kit.confidence import CONFIDENCE, PREDICTED, predict_with_confidence
from mlops_kit.config import CHAMPION, get_settings
from mlops_kit.data import prepare
from mlops_kit.evaluation import (
    METRICS,
    MissingInputsError,
    evaluate,
    evaluate_logged,
    label_codes,
    scores,
)
from mlops_kit.training_pipeline import run_training_pipeline
from tests.helpers import table_spec

FAST = ["logistic_regression"]


def test_training_the_gate_and_retraining_score_a_model_alike(settings, monkeypatch):
    """With a threshold other than the default, every caller counts low confidence against it."""
    monkeypatch.setenv("MLOPS_KIT_LOW_CONFIDENCE", "0.95")
    settings = get_settings()
    first = run_training_pipeline(settings, candidates=FAST)
    prepared, best = first.prepared, first.best
    champion = f"models:/{settings.model_name}@{CHAMPION}"

    training = best.metrics
    gate = {}
    for metric in ("accuracy", "f1_macro"):
        decision = registry.register_and_gate(
            best.model_uri, 1.0, prepared, settings, threshold=0.0, metric=metric
        )
        gate[metric] = decision.champion_score
    logged = evaluate_logged(champion, prepared, settings.low_confidence)
    retraining = retrain.evaluate_model(champion, prepared, settings.low_confidence)

    confidence = predict_with_confidence(best.pipeline, prepared.X_eval)["confidence"]
    assert training["low_confidence_share"] == pytest.approx((confidence < 0.95).mean())
    assert training["low_confidence_share"] > (confidence < 0.7).mean()  # the setting counts
    for metric in METRICS:
        assert logged[metric] == pytest.approx(training[metric]), metric
        assert retraining[f"eval_{metric}"] == pytest.approx(training[metric]), metric
        assert retraining[f"season_{metric}"] == pytest.approx(training[metric]), metric
        assert math.isnan(retraining[f"production_{metric}"]), metric  # no production rows
        if metric in gate:
            assert gate[metric] == pytest.approx(training[metric]), metric
    assert retraining["production_cases"] == 0
    run = tracking.client(settings).get_run(best.run_id)
    assert run.data.metrics["eval_low_confidence_share"] == pytest.approx(
        training["low_confidence_share"]
    )


def test_the_threshold_decides_the_low_confidence_share(trained):
    prepared, best = trained.result.prepared, trained.result.best
    confidence = predict_with_confidence(best.pipeline, prepared.X_eval)["confidence"]
    middle = float(confidence.median())
    shares = {
        t: evaluate(best.pipeline, prepared.X_eval, prepared.y_eval, t)["low_confidence_share"]
        for t in (0.0, middle, 1.01)
    }
    assert shares[0.0] == 0.0
    assert shares[middle] == pytest.approx((confidence < middle).mean())
    assert 0.0 < shares[middle] < 1.0
    assert shares[1.01] == 1.0


def test_missing_inputs_are_refused_naming_the_columns_and_the_fix(use_trained, settings):
    fewer = prepare(table_spec(features=["body_mass_g"]), settings, write=False)
    champion = f"models:/{use_trained.settings.model_name}@{CHAMPION}"
    pipeline = use_trained.result.best.pipeline
    callers = {
        "training": lambda: evaluate(pipeline, fewer.X_eval, fewer.y_eval, 0.7),
        "gate": lambda: evaluate_logged(champion, fewer, 0.7),
        "retraining": lambda: retrain.evaluate_model(champion, fewer, 0.7),
    }
    for name, call in callers.items():
        with pytest.raises(MissingInputsError, match="model name") as refused:
            call()
        assert "bill_length_mm" in str(refused.value), name
        assert "body_mass_g" not in refused.value.columns, name


def test_no_rows_give_nan_not_an_error(trained):
    prepared, best = trained.result.prepared, trained.result.best
    scores = evaluate(best.pipeline, prepared.X_eval.head(0), prepared.y_eval.head(0), 0.7)
    assert list(scores) == list(METRICS)
    assert all(math.isnan(v) for v in scores.values())


@pytest.mark.parametrize("seed", range(4))
def test_scores_on_label_codes_equal_scikit_learns_on_the_labels(seed):
    """The codes give bit-for-bit scikit-learn's numbers on text labels, classes missing or extra."""
    rng = np.random.default_rng(seed)
    classes = [f"classe {c}" for c in "ÁBCDEFGHIJKL"[: 2 + seed * 3]]
    y = pd.Series(rng.choice(classes[1:], 500))  # a class only ever predicted
    out = pd.DataFrame(
        {PREDICTED: rng.choice(classes[:-1], 500), CONFIDENCE: rng.random(500)}
    )  # and a true class never predicted
    got = scores(out, y, 0.7)
    assert got["accuracy"] == accuracy_score(y, out[PREDICTED])
    assert got["f1_macro"] == f1_score(y, out[PREDICTED], average="macro")
    true, predicted, labels = label_codes(y, out[PREDICTED])
    assert labels == sorted(set(y) | set(out[PREDICTED]))
    assert (confusion_matrix(true, predicted) == confusion_matrix(y, out[PREDICTED])).all()
