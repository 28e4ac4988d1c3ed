"""The Spark engine on real Spark (local[2] and a standalone cluster of two workers started here):
the same answers as the API for the same rows, the same rejects, nothing half-written."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from mlops_kit import spark_cluster
from mlops_kit.batch import validate
from mlops_kit.batch.columns import added_columns
from mlops_kit.batch.spark import SparkBatch, score_spark
from mlops_kit.config import Settings
from mlops_kit.processes import alive, free_port
from mlops_kit.scoring.loader import Champion, ChampionLoader
from mlops_kit.spark_session import SparkError, check_master

# rows changed so that the API refuses them: (column, value as written in the file)
BROKEN = [
    ("bill_length_mm", "abc"),  # text in a number
    ("bill_depth_mm", ""),  # a required number missing
    ("island", "Atlantis"),  # an unknown category
    ("flipper_length_mm", "inf"),
]


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


def champion_of(settings: Settings) -> Champion:
    loader = ChampionLoader(settings)
    swapped, message = loader.check()
    assert swapped, message
    return loader.current


def penguin_rows(held_out: pd.DataFrame) -> pd.DataFrame:
    """The 2009 season as a file holds it (text), a row id first, a few rows broken."""
    rows = held_out.astype(object).where(held_out.notna(), "").astype(str)
    rows.insert(0, "row_id", [f"r{i:04d}" for i in range(len(rows))])
    for i, (column, value) in enumerate(BROKEN):
        rows.loc[i * 7, column] = value
    return rows


def api_answers(client, champion: Champion, rows: pd.DataFrame) -> pd.DataFrame:  # noqa: ANN001
    """The API's answer to each row it accepts, keyed by row_id."""
    checked = validate.check(rows, champion.inputs)
    records = []
    for i in np.flatnonzero(checked.valid):
        record = {}
        for name in champion.inputs.names:
            value = checked.features.loc[i, name]
            if not (isinstance(value, float) and np.isnan(value)):
                record[name] = value
        records.append(record)
    response = client.post("/predict", content=json.dumps(records))
    assert response.status_code == 200, response.text
    answers = pd.DataFrame(response.json()["predictions"])
    answers.insert(0, "row_id", rows["row_id"].to_numpy()[checked.valid])
    return answers.set_index("row_id")


def assert_same_answers(result: SparkBatch, expected: pd.DataFrame, classes: list[str]) -> None:
    scored = pd.read_parquet(result.out).set_index("row_id").loc[expected.index]
    assert scored["predicted"].tolist() == expected["predicted"].tolist()
    np.testing.assert_allclose(scored["confidence"], expected["confidence"], rtol=1e-9)
    for c in classes:
        wanted = [p[c] for p in expected["probabilities"]]
        np.testing.assert_allclose(scored[f"proba_{c}"], wanted, rtol=1e-9, atol=1e-12)
    assert scored["low_confidence"].tolist() == expected["low_confidence"].tolist()


@pytest.mark.slow
def test_penguins_on_local_spark_answer_as_the_api(penguins, held_out, api, tmp_path) -> None:
    rows = penguin_rows(held_out)
    source = tmp_path / "season-2009.csv"
    rows.to_csv(source, index=False)
    client = api(penguins)
    champion = client.app.state.loader.current

    result = score_spark(
        champion,
        source,
        tmp_path / "scored.parquet",
        tracking_uri=penguins.tracking_uri,
        threshold=penguins.low_confidence,
        batch_id="b-2009",
    )

    assert result.master == "local[2]"
    assert (result.rows_scored, result.rows_rejected) == (len(rows) - len(BROKEN), len(BROKEN))
    assert_same_answers(result, api_answers(client, champion, rows), champion.classes)
    scored = pd.read_parquet(result.out)
    assert list(scored.columns) == [*rows.columns, *added_columns(champion.classes)]
    assert set(scored["batch_id"]) == {"b-2009"}
    assert set(scored["model_version"]) == {champion.version}
    # the rejects: the input rows as written, with the API's reason, never scored
    rejects = pd.read_parquet(result.rejects).set_index("row_id")
    expected = validate.reasons(rows, champion.inputs).set_axis(rows["row_id"]).dropna()
    assert rejects["reason"].to_dict() == expected.to_dict()
    assert rejects.loc["r0014", "island"] == "Atlantis"
    assert sum(result.histogram) == result.rows_scored
    assert result.low_confidence == int(scored["low_confidence"].sum())


@pytest.mark.slow
def test_a_table_the_kit_did_not_ship_from_a_folder_of_parquet_parts(wine, api, tmp_path) -> None:
    from tests.batch.conftest import wine_table

    table = wine_table().drop(columns="cultivar").rename(columns={"id": "row_id"})
    table.loc[3, "alcohol"] = np.nan  # a required number missing
    parts = tmp_path / "wine-parts"
    parts.mkdir()
    for i, start in enumerate(range(0, len(table), 60)):
        table.iloc[start : start + 60].to_parquet(parts / f"part-{i}.parquet", index=False)
    client = api(wine)
    champion = client.app.state.loader.current

    result = score_spark(
        champion,
        parts,
        tmp_path / "wine-scored.parquet",
        tracking_uri=wine.tracking_uri,
        threshold=wine.low_confidence,
    )

    assert (result.rows_scored, result.rows_rejected) == (len(table) - 1, 1)
    expected = api_answers(client, champion, table.astype({"row_id": str}))
    assert_same_answers(result, expected, champion.classes)
    rejects = pd.read_parquet(result.rejects)
    assert rejects["row_id"].tolist() == ["w003"]
    assert "'alcohol' is missing" in rejects["reason"].iloc[0]


@pytest.mark.slow
def test_the_standalone_cluster_gives_the_same_answers(
    penguins, held_out, api, cluster, tmp_path
) -> None:
    rows = penguin_rows(held_out)
    source = tmp_path / "season-2009.csv"
    rows.to_csv(source, index=False)
    client = api(penguins)
    champion = client.app.state.loader.current

    result = score_spark(
        champion,
        source,
        tmp_path / "scored.parquet",
        tracking_uri=penguins.tracking_uri,
        threshold=penguins.low_confidence,
        master=cluster,
    )

    assert result.master == cluster
    assert (result.rows_scored, result.rows_rejected) == (len(rows) - len(BROKEN), len(BROKEN))
    assert_same_answers(result, api_answers(client, champion, rows), champion.classes)


@pytest.mark.slow
def test_a_batch_that_fails_half_way_leaves_nothing_behind(penguins, held_out, tmp_path) -> None:
    rows = penguin_rows(held_out)
    source = tmp_path / "season-2009.csv"
    rows.to_csv(source, index=False)
    champion = champion_of(penguins)
    # a champion whose classes are not its model's: the model's answers fail inside the job
    wrong = dataclasses.replace(champion, classes=["Adelie", "Chinstrap", "Emperor"])
    out = tmp_path / "out" / "scored.parquet"

    with pytest.raises(Exception, match="Emperor"):
        score_spark(
            wrong,
            source,
            out,
            tracking_uri=penguins.tracking_uri,
            threshold=penguins.low_confidence,
        )

    assert list(out.parent.iterdir()) == []


@pytest.mark.slow
def test_an_existing_output_is_kept_unless_overwrite(penguins, held_out, tmp_path) -> None:
    source = tmp_path / "season-2009.csv"
    penguin_rows(held_out).head(20).to_csv(source, index=False)
    champion = champion_of(penguins)
    out = tmp_path / "scored.parquet"
    out.mkdir()
    (out / "keep.txt").write_text("yesterday's batch")
    options = {"tracking_uri": penguins.tracking_uri, "threshold": penguins.low_confidence}

    with pytest.raises(FileExistsError, match="--overwrite"):
        score_spark(champion, source, out, **options)
    assert (out / "keep.txt").exists()

    result = score_spark(champion, source, out, overwrite=True, **options)
    assert not (out / "keep.txt").exists() and result.rows == 20


def test_a_master_that_does_not_answer_is_named_with_the_fix() -> None:
    url = f"spark://127.0.0.1:{free_port()}"
    with pytest.raises(SparkError) as refused:
        check_master(url, timeout=1.0)
    assert url in str(refused.value) and "mlops-kit spark up" in str(refused.value)


def test_a_master_url_that_is_not_one_is_refused() -> None:
    with pytest.raises(SparkError, match="spark://HOST:PORT"):
        check_master("127.0.0.1:7077")


@pytest.mark.slow
def test_a_missing_input_is_named_before_spark_starts(penguins, tmp_path) -> None:
    missing = tmp_path / "nowhere.csv"
    from mlops_kit.batch.spark import SparkInputError

    with pytest.raises(SparkInputError, match="nowhere.csv"):
        score_spark(
            champion_of(penguins),
            missing,
            tmp_path / "scored.parquet",
            tracking_uri=penguins.tracking_uri,
            threshold=0.7,
        )
