"""The reference production is compared to: the training data of the model version that answered.

A model version carries the data version it learnt from (tag ``data_version``); its training split
is the baseline. Without a registry, or for a version without that tag, the configured table's
training split stands in.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mlops_kit import tracking
from mlops_kit.config import Settings
from mlops_kit.data import prepare
from mlops_kit.store import datasets


@dataclass
class Reference:
    """The training data a model version learnt from: the baseline production is compared to."""

    data_version: str | None
    frame: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    target: str

    @property
    def features(self) -> list[str]:
        """All features, numeric first."""
        return [*self.numeric, *self.categorical]


def reference_for(settings: Settings, model_version: str | None = None) -> Reference:
    """The training split of the data version a model version was trained on (tag `data_version`)."""
    data_version = None
    if model_version is not None and settings.has_registry:
        try:
            mv = tracking.client(settings).get_model_version(settings.model_name, model_version)
            data_version = mv.tags.get("data_version")
        except Exception:  # noqa: BLE001 - no registry (yet): fall back to the default data
            data_version = None
    if data_version and datasets.has_version(settings, data_version):
        prepared = datasets.load_version(settings, data_version)
    else:
        prepared = prepare(settings.table, settings, write=False)
    return Reference(
        prepared.card.data_version,
        prepared.train,
        prepared.spec.numeric,
        prepared.spec.categorical,
        prepared.spec.target,
    )
