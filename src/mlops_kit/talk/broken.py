"""Notebook 03's level-2 lesson: a model saved before .fit(), promoted by hand past the gate.

The smoke test of `delivery.deploy_smoke` catches it and rolls the alias back.
"""

from __future__ import annotations

import warnings

import mlflow

from mlops_kit import candidate_log, data, registry, tracking, train
from mlops_kit.config import Settings
from mlops_kit.model import ClassifierWithConfidence


def register_broken_candidate(settings: Settings, reason: str, make_champion: bool = True) -> str:
    """For the level-2 lesson: register a model saved before .fit() (made champion by hand, or
    left for CD to try in staging)."""
    prepared = data.prepare(settings.table, settings, write=False)
    unfitted = train.build_pipeline("logistic_regression", prepared.spec, settings.seed)
    tracking.configure(settings)
    # no input example: MLflow would try it on the unfitted model; no example is part of the bug
    with mlflow.start_run(run_name="broken-candidate"), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        mlflow.set_tags({"candidate": "broken (never fitted)", **tracking.invocation_tags()})
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=ClassifierWithConfidence(unfitted, prepared.spec.features),
            signature=candidate_log.signature_for(prepared, sorted(prepared.y_train.unique())),
            pip_requirements=candidate_log.pip_requirements(),
        )
    version = registry.register(settings, info.model_uri, {"candidate": "broken (never fitted)"})
    if make_champion:
        registry.promote(settings, version, reason)
    return version
