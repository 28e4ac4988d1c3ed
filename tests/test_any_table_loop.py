"""The whole loop on tables the kit did not ship: train -> serve -> simulate -> monitor -> capture ->
label (a CSV a person fills in) -> retrain, with a real API process and a real MLflow registry.

The tables: scikit-learn's breast cancer data (numbers only, a 0/1 target), a generated table of
twelve classes, a categorical-only table, and a Brazilian Excel export (';', decimal commas,
Windows-1252, accented headers, missing values, a date column to split on).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import load_breast_cancer

from mlops_kit import capture, retrain
from mlops_kit.config import Settings
from mlops_kit.labels import LABEL, export_for_labelling, import_labels, labelled_cases
from mlops_kit.monitoring.monitor import monitor
from mlops_kit.services import start_api
from mlops_kit.simulator import shifts, traffic
from mlops_kit.store.predictions.window import read_predictions
from mlops_kit.talk import loop

pytestmark = pytest.mark.slow  # trains, serves and retrains on each table

FAST = ["logistic_regression"]


@dataclass(frozen=True)
class Table:
    """A user's CSV and what the user tells the kit about it."""

    name: str
    write: object  # (folder) -> path of the CSV written there
    target: str
    split_column: str | None = None  # None: a seeded random split


def breast_cancer(folder: Path) -> Path:
    frame = load_breast_cancer(as_frame=True).frame.iloc[:, [0, 1, 2, 3, 4, 5, 6, 7, -1]]
    path = folder / "cancer.csv"
    frame.to_csv(path, index=False)  # target: 0 (malignant) / 1 (benign), written as numbers
    return path


def twelve_classes(folder: Path) -> Path:
    rng = np.random.default_rng(3)
    kinds = np.repeat([f"k{i:02d}" for i in range(12)], 30)
    centre = np.repeat(np.arange(12), 30).astype(float)
    frame = pd.DataFrame(
        {
            "x": centre + rng.normal(0, 0.25, len(centre)),
            "y": (centre % 4) * 3 + rng.normal(0, 0.25, len(centre)),
            "kind": kinds,
        }
    )
    path = folder / "twelve.csv"
    frame.to_csv(path, index=False)
    return path


def categories_only(folder: Path) -> Path:
    rng = np.random.default_rng(5)
    n = 240
    colour = rng.choice(["red", "green", "blue"], n, p=[0.45, 0.45, 0.10])
    shape = rng.choice(["round", "square"], n)
    maker = rng.choice([f"maker {i}" for i in range(30)], n)  # many records, few repeats
    region = rng.choice([f"region {i}" for i in range(12)], n)
    kind = np.where(colour == "red", "fruit", np.where(shape == "round", "ball", "box"))
    noise = rng.random(n) < 0.1
    kind = np.where(noise, rng.choice(["fruit", "ball", "box"], n), kind)
    path = folder / "shapes.csv"
    frame = pd.DataFrame(
        {"colour": colour, "shape": shape, "maker": maker, "region": region, "kind": kind}
    )
    frame.to_csv(path, index=False)
    return path


def brazilian_export(folder: Path) -> Path:
    rng = np.random.default_rng(7)
    n = 200
    grupo = rng.choice(["leve", "médio", "pesado"], n)
    base = pd.Series(grupo).map({"leve": 55.0, "médio": 75.0, "pesado": 95.0}).to_numpy()
    peso = (base + rng.normal(0, 6, n)).round(1)
    altura = (150 + base / 2 + rng.normal(0, 5, n)).round(1)
    regiao = rng.choice(["Sudeste", "Nordeste", "Sul"], n)
    dates = pd.date_range("2022-01-01", periods=n, freq="7D").strftime("%d/%m/%Y")  # 4 years
    frame = pd.DataFrame(
        {
            "Região": regiao,
            "Peso (kg)": [f"{v:.1f}".replace(".", ",") for v in peso],
            "Altura (cm)": [f"{v:.1f}".replace(".", ",") for v in altura],
            "Data da coleta": dates,
            "Faixa": grupo,
        }
    )
    frame.loc[::17, "Região"] = ""  # missing values, as Excel leaves them
    frame.loc[5::23, "Altura (cm)"] = ""
    path = folder / "coleta.csv"
    path.write_bytes(frame.to_csv(index=False, sep=";").encode("cp1252"))
    return path


TABLES = [
    Table("breast-cancer-0-1", breast_cancer, "target"),
    Table("twelve-classes", twelve_classes, "kind"),
    Table("categories-only", categories_only, "kind"),
    Table("brazilian-excel", brazilian_export, "Faixa", split_column="Data da coleta"),
]


def fill_in_labels(exported: Path, truth: pd.DataFrame, excel_ptbr: bool) -> Path:
    """What a person does with the exported CSV: write the true class in the `label` column,
    and save it (Excel in Portuguese saves ';'-separated Windows-1252)."""
    sheet = pd.read_csv(exported, dtype=str, keep_default_na=False)
    known = dict(zip(capture.case_ids(truth), truth[shifts.TRUTH], strict=True))
    sheet[LABEL] = sheet["case_id"].map(known)
    filled = exported.with_name("filled.csv")
    if excel_ptbr:
        filled.write_bytes(sheet.to_csv(index=False, sep=";").encode("cp1252"))
    else:
        sheet.to_csv(filled, index=False)
    return filled


@pytest.mark.parametrize("table", TABLES, ids=[t.name for t in TABLES])
def test_the_whole_loop_runs_on_a_table_the_kit_did_not_ship(
    table: Table, settings: Settings, tmp_path: Path
) -> None:
    path = table.write(tmp_path)
    mine = settings.model_copy(
        update={
            "data_path": path,
            "target": table.target,
            "split_column": table.split_column,
            "reload_interval": 0.5,
        }
    )
    start = loop.starting_champion(mine, candidates=FAST, quality_gate=0.0)
    assert start.how == "trained now"
    season = traffic.season_records(mine)
    shift = shifts.default_shift(season)
    with start_api(mine) as api:
        normal = traffic.simulate(mine, api.url, batches=2, batch_size=20, seed=1, phase="normal")
        shifted = traffic.simulate(
            mine, api.url, batches=2, batch_size=20, shift=shift, seed=2, phase="shift"
        )
        assert set(normal.records["model_version"]) == {start.version}
        assert shifted.description and shifted.shift == shift
        log = read_predictions(mine)
        assert len(log) == 80 and not {shifts.TRUTH, table.target} & set(log.columns)

        report = monitor(mine, since=normal.started_at, segment=20)
        shifted_column = shift.split(":")[1].split("=")[0]
        assert shifted_column in report.drifted, report.drift_view()

        review = capture.capture(mine, since=normal.started_at, threshold=0.999)
        assert len(review) > 0
        truth = traffic.read_truth(mine)
        exported = export_for_labelling(review)
        filled = fill_in_labels(exported, truth, excel_ptbr=table.split_column is not None)
        labels = import_labels(mine, review, filled)
        labelled = labelled_cases(mine)
        assert len(labelled) == len(review) and labelled[LABEL].notna().all()
        assert set(labelled[LABEL]) <= set(season[shifts.TRUTH])
        assert (labels.labelled, labels.unlabelled) == (len(review), 0)

        result = retrain.retrain(mine, candidates=FAST, holdout=0.3, quality_gate=0.0)
        added = result.new_data.added_train + result.new_data.added_eval
        assert added > 0 and result.new_data.parent == start.data_version
        assert result.decision.reason
        served = result.decision.champion_version
        assert loop.wait_until_serving(api, served) == served
        after = traffic.simulate(
            mine, api.url, batches=1, batch_size=20, shift=shift, seed=3, phase="after"
        )
        assert set(after.records["model_version"]) == {served}
