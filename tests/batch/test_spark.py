"""The Spark engine on real Spark (local[2], and a standalone cluster of two workers started here):
the same output as the local engine and the same answers as the API for the same rows, the same
rejects, nothing half-written, and a master that does not answer named with the fix."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest

from mlops_kit import spark_cluster
from mlops_kit.batch import outputs, run, validate
from mlops_kit.config import Settings
from mlops_kit.processes import alive, free_port
from mlops_kit.spark_session import SparkError, check_master
from tests.batch.conftest import wine_table
from tests.helpers import run_cli

# rows changed so that the API refuses them: row -> (column, value as written in the file)
BROKEN = {
    0: ("bill_length_mm", "abc"),  # text in a number
    7: ("bill_depth_mm", ""),  # a required number missing
    14: ("island", "Atlantis"),  # an unknown category
    21: ("flipper_length_mm", "inf"),
}
BATCH_RUNS = "tags.`mlops_kit.kind` = 'batch'"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A standalone master and two workers on free ports; stopped after the module's tests."""
    root = tmp_path_factory.mktemp("spark-cluster")
    started, _ = spark_cluster.up(root, free_port(), free_port(), workers=2)
    try:
        yield started.master_url
    finally:
        spark_cluster.down(root)
        assert not any(alive(pid) for pid in started.pids())


def season_csv(held_out: pd.DataFrame, folder: Path) -> Path:
    """The 2009 season as a file holds it (text), the user's own key first, a few rows broken."""
    rows = held_out.astype(object).where(held_out.notna(), "").astype(str)
    rows.insert(0, "row_id", [f"r{i:04d}" for i in range(len(rows))])
    for row, (column, value) in BROKEN.items():
        rows.loc[row, column] = value
    path = folder / "season-2009.csv"
    rows.to_csv(path, index=False)
    with open(path, "a") as fh:
        fh.write("r9999,Dream,40.1\n")  # a line cut short: fewer fields than the header
    return path


def by_key(path: Path, key: str = "row_id") -> pd.DataFrame:
    """A Parquet file or folder of parts, in the order of its key (Spark writes parts)."""
    return pd.read_parquet(path).sort_values(key).reset_index(drop=True)


def assert_same_output(spark: run.BatchResult, local: run.BatchResult) -> None:
    """Both engines wrote the same rows, columns, types and answers; the same rejects, reasons."""
    got, wanted = by_key(spark.out), by_key(local.out)
    assert list(got.columns) == list(wanted.columns)
    pd.testing.assert_frame_equal(
        got.drop(columns="batch_id"), wanted.drop(columns="batch_id"), rtol=1e-9, atol=1e-12
    )
    assert set(got["batch_id"]) == {spark.batch_id}
    got, wanted = by_key(spark.rejects), by_key(local.rejects)
    pd.testing.assert_frame_equal(got.drop(columns="batch_id"), wanted.drop(columns="batch_id"))
    assert (spark.rows_in, spark.scored, spark.rejected) == (
        local.rows_in,
        local.scored,
        local.rejected,
    )
    assert spark.low_confidence_share == pytest.approx(local.low_confidence_share)


def api_answers(client, table: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001
    """The API's answer to each row it accepts (the rows validated as the API does), by key."""
    champion = client.app.state.loader.current
    checked = validate.check(table, champion.inputs)
    features = checked.features[checked.valid]
    records = [
        {k: v for k, v in record.items() if not (isinstance(v, float) and np.isnan(v))}
        for record in features.to_dict("records")
    ]
    response = client.post("/predict", content=json.dumps(records))
    assert response.status_code == 200, response.text
    answers = pd.DataFrame(response.json()["predictions"])
    answers.insert(0, "row_id", table["row_id"].to_numpy()[checked.valid])
    return answers.sort_values("row_id").reset_index(drop=True)


@pytest.mark.slow
def test_penguins_on_local_spark_as_the_local_engine_and_the_api(
    penguins: Settings, held_out: pd.DataFrame, api, tmp_path: Path
) -> None:
    source = season_csv(held_out, tmp_path)

    spark = run.score_table(penguins, source, tmp_path / "spark.parquet", engine="spark")
    local = run.score_table(penguins, source, tmp_path / "local.parquet")

    assert_same_output(spark, local)
    assert spark.rejected == len(BROKEN) + 1
    cut = pd.read_parquet(spark.rejects).query("row_id.isna()")["reason"].tolist()
    assert len(cut) == 1 and cut[0].startswith("the line has 3 fields where the header has")
    rejects = by_key(spark.rejects).set_index("row_id")
    assert rejects.loc["r0014", "island"] == "Atlantis"  # as written, with the API's reason
    assert "'island' has an unknown category 'Atlantis'" in rejects.loc["r0014", "reason"]
    scored = by_key(spark.out)
    rows = pd.read_csv(source, dtype=str, keep_default_na=False).query("row_id != 'r9999'")
    answers = api_answers(api(penguins), rows.reset_index(drop=True))
    assert scored["predicted"].tolist() == answers["predicted"].tolist()
    np.testing.assert_allclose(scored["confidence"], answers["confidence"], rtol=1e-9)
    params = mlflow.get_run(spark.run_id).data.params
    assert params["engine"] == "spark"


@pytest.mark.slow
def test_a_table_the_kit_did_not_ship_from_parquet_parts_and_a_brazilian_csv(
    wine: Settings, tmp_path: Path
) -> None:
    table = wine_table().drop(columns="cultivar").rename(columns={"id": "row_id"})
    table.loc[3, "alcohol"] = np.nan  # a required number missing
    parts = tmp_path / "parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(table), 60)):
        table.iloc[start : start + 60].to_parquet(parts / f"part-{i}.parquet", index=False)
    brazilian = tmp_path / "vinhos.csv"  # ';' between columns, decimal commas
    table.to_csv(brazilian, index=False, sep=";", decimal=",")

    for source in (parts, brazilian):
        out = tmp_path / f"{source.stem}-spark.parquet"
        spark = run.score_table(wine, source, out, engine="spark")
        local = run.score_table(wine, source, tmp_path / f"{source.stem}-local.parquet")
        assert_same_output(spark, local)
        assert by_key(spark.rejects)["row_id"].tolist() == ["w003"]


@pytest.mark.slow
def test_the_cli_scores_on_the_standalone_cluster(
    penguins: Settings, held_out: pd.DataFrame, cluster: str, tmp_path: Path
) -> None:
    source = season_csv(held_out, tmp_path)
    local = run.score_table(penguins, source, tmp_path / "local.parquet")

    done = run_cli(
        "score", "--data", str(source), "--out", str(tmp_path / "cluster.parquet"),
        "--engine", "spark", "--master", cluster,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert "engine spark" in done.stdout
    batch_id = done.stdout.split("batch ", 1)[1].split(":", 1)[0]
    spark = dataclasses.replace(
        local, out=tmp_path / "cluster.parquet", batch_id=batch_id,
        rejects=outputs.rejects_path(tmp_path / "cluster.parquet"),
    )  # fmt: skip
    assert_same_output(spark, local)


@pytest.mark.slow
def test_a_batch_that_fails_half_way_leaves_nothing_behind(
    penguins: Settings, held_out: pd.DataFrame, tmp_path: Path
) -> None:
    source = season_csv(held_out, tmp_path)
    champion = run.load_model(penguins)
    # a champion whose classes are not its model's: the model's answers fail inside the job
    wrong = dataclasses.replace(champion, classes=["Adelie", "Chinstrap", "Emperor"])
    out = tmp_path / "out" / "scored.parquet"
    out.parent.mkdir()
    (out.parent / "yesterday.parquet").write_text("kept")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(run, "load_model", lambda *a, **k: wrong)
        with pytest.raises(Exception, match="Emperor"):  # raised in a Python worker of the job
            run.score_table(penguins, source, out, engine="spark")

    assert [p.name for p in out.parent.iterdir()] == ["yesterday.parquet"]
    failed = mlflow.search_runs(
        filter_string=f"{BATCH_RUNS} and attributes.status = 'FAILED'", search_all_experiments=True
    )
    assert len(failed) == 1


def test_a_master_that_does_not_answer_is_named_with_the_fix() -> None:
    url = f"spark://127.0.0.1:{free_port()}"
    with pytest.raises(SparkError) as refused:
        check_master(url, timeout=1.0)
    assert url in str(refused.value) and "mlops-kit spark up" in str(refused.value)


def test_a_master_url_that_is_not_one_is_refused() -> None:
    with pytest.raises(SparkError, match="spark://HOST:PORT"):
        check_master("127.0.0.1:7077")


@pytest.mark.slow
def test_the_cli_names_a_silent_master_before_any_run(penguins: Settings, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text("island,bill_length_mm\nDream,40\n")
    url = f"spark://127.0.0.1:{free_port()}"

    done = run_cli(
        "score", "--data", str(source), "--out", str(tmp_path / "scored.parquet"),
        "--engine", "spark", "--master", url,
    )  # fmt: skip

    assert done.returncode == 2
    assert url in done.stderr and "mlops-kit spark up" in done.stderr
    assert not (tmp_path / "scored.parquet").exists()
    mlflow.set_tracking_uri(penguins.tracking_uri)
    assert mlflow.search_runs(filter_string=BATCH_RUNS, search_all_experiments=True).empty
    wrong = run_cli("score", "--data", str(source), "--out", "x.parquet", "--master", url)
    assert wrong.returncode == 2 and "--master is for --engine spark" in wrong.stderr
