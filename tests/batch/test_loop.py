"""Batch traffic in the loop: a scored batch is seen by monitoring and capture, as API traffic is."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from mlops_kit import capture
from mlops_kit.batch import run
from mlops_kit.monitoring.monitor import monitor
from mlops_kit.store import batches
from mlops_kit.talk.loop import season_file
from tests.batch.conftest import wine_table
from tests.helpers import run_cli

pytestmark = pytest.mark.slow  # a trained store and MLflow runs


def test_a_scored_batch_is_monitored_and_captured_where_its_output_lies(penguins, tmp_path):
    source = season_file(penguins)
    result = run.score_table(penguins, source, tmp_path / "season.parquet")
    (recorded,) = batches.runs(penguins.store)
    assert (recorded.batch_id, recorded.rows, recorded.output) == (
        result.batch_id, result.scored, str(result.out),
    )  # fmt: skip
    report = monitor(penguins, source="batch", recent=result.scored)
    assert report.source == "batch" and report.predictions == result.scored
    assert report.low_confidence_share == pytest.approx(result.low_confidence_share)
    assert report.model_versions == [result.model_version]
    assert report.drifted == []  # the held-out season itself: nothing drifted
    api = monitor(penguins)  # the API's log is untouched by a batch
    assert api.predictions == 0

    review = capture.capture(penguins, source="batch", threshold=1.01, track=False)
    assert len(review) == result.scored  # every row is below 1.01
    scored = pd.read_parquet(result.out)
    first = review.cases.iloc[0]
    assert first["case_id"] == f"{result.batch_id}#0"
    assert first["predicted"] == scored["predicted"].iloc[0]


def test_a_users_table_with_an_id_is_captured_by_the_models_inputs(wine, tmp_path: Path):
    table = wine_table().drop(columns="cultivar")
    table.to_csv(tmp_path / "wine.csv", index=False)
    result = run.score_table(wine, tmp_path / "wine.csv", tmp_path / "wine.parquet")
    review = capture.capture(wine, source="batch", threshold=1.01, track=False)
    assert len(review) == result.scored == len(table)
    assert "id" not in review.features and "alcohol" in review.features
    done = run_cli("monitor", "--source", "batch", "--no-mlflow", "--recent", "178")
    assert done.returncode in (0, 10), done.stderr
    assert "traffic" in done.stdout and "batch" in done.stdout
    assert "178 / 178" in done.stdout
