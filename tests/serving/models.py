"""Small fitted kit pipelines and Champions built from them, for the serving unit tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from mlops_kit import data, train
from mlops_kit.serving.inputs import encoder_categories, request_models
from mlops_kit.serving.loader import Champion


def table(rows: int = 120, seed: int = 0) -> pd.DataFrame:
    """Two measurements and a colour; the kind follows from size and colour; some values missing."""
    rng = np.random.default_rng(seed)
    size = rng.normal(10, 3, rows)
    colour = rng.choice(["red", "green", "blue"], rows).astype(object)
    kind = np.where(size > 11, "big", np.where(colour == "red", "red-small", "small"))
    frame = pd.DataFrame({"size": size, "weight": size * 2 + rng.normal(0, 1, rows)})
    frame["colour"], frame["kind"] = colour, kind
    frame.loc[::7, "colour"] = np.nan
    return frame


def fitted(numeric: list[str], categorical: list[str], candidate: str = "logistic_regression"):
    """The kit's pipeline for these columns of `table()`, fitted."""
    frame = table()
    spec = data.DatasetSpec("kind", numeric, categorical)
    return train.build_pipeline(candidate, spec).fit(frame[spec.features], frame["kind"])


def champion(
    numeric: list[str], categorical: list[str], accelerator: object = None, max_batch: int = 100
) -> Champion:
    """A Champion serving the fitted pipeline, as the loader would build it."""
    pipeline = fitted(numeric, categorical)
    inputs = [(n, "double") for n in numeric] + [(c, "string") for c in categorical]
    return Champion(
        name="toy",
        version="1",
        alias="champion",
        run_id=None,
        tags={},
        metrics={},
        classes=[str(c) for c in pipeline.classes_],
        inputs=request_models(inputs, encoder_categories(pipeline), max_batch),
        pipeline=pipeline,
        accelerator=accelerator,
        examples=[],
        source="memory",
    )
