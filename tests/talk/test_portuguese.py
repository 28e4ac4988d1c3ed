"""What the audience reads is Brazilian Portuguese: the kit's tables and sentences through
talk/screen.py, and no English left in the committed notebooks' outputs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from mlops_kit.config import PROJ_ROOT
from mlops_kit.delivery import Check, SmokeResult, environment_check
from mlops_kit.environment import Environment, Package
from mlops_kit.talk import screen

# English the kit writes and the audience must not read (words that are also the talk's own
# terms, e.g. champion, quality gate, smoke test, pipeline, drift, stay out of this list).
ENGLISH = [
    r"\bbest candidate\b",
    r"\bpromoted to\b",
    r"\bchampion now\b",
    r"\bpasses the gate\b",
    r"\bbeats? champion\b",
    r"\bbelow the quality gate\b",
    r"\bthere is no champion\b",
    r"\bis the new champion\b",
    r"\bretraining due\b",
    r"\bno retraining needed\b",
    r"\blabell?ed by\b",
    r"\bcases labell?ed\b",
    r"\bwithout a label\b",
    r"\bsmoke test of\b",
    r"\bFAILED\b",
    r"\brolled back\b",
    r"\bnow serves\b",
    r"\bregistry champion is\b",
    r"\bmodel loaded\b",
    r"\bzeroed wrong\b",
    r"\btoo much\b",
    r"\bmean_confidence\b",
    r"\blow_confidence_share\b",
    r"\bdata version\b",
    r"\btrained on\b",
    r"\bwhat it does\b",
    r"\bmake targets\b",
    r"\binput drift\b",
    r"\bis above\b",
    r"\blimit\b",
    r"\baccuracy\b",
    r"\bheld out\b",
    r"\bchallenger\b",
    r"\bshifted\b",
    r"\brecords\b",
    r"\bTrue\b",
    r"\bFalse\b",
    r"\btrained with\b",
    r"\bversion differs\b",
    r"\bretrain the model\b",
    r"\bnot installed here\b",
    r"\bmatch the training\b",
]


PYTHON = Package("python", "3.11.7", "3.11.7", True)
SKLEARN_NOTE = (
    "minor version differs: install scikit-learn==1.10.0 here, or retrain the model in this "
    "environment"
)
# environment checks as the API reports them: scikit-learn's minor differs, numpy's patch
ENVIRONMENT = Environment(
    PYTHON,
    (
        Package("scikit-learn", "1.10.0", "1.9.1", False, SKLEARN_NOTE),
        Package("numpy", "2.4.5", "2.4.6", True, "only the patch version differs"),
    ),
).as_dict()
MATCHING = Environment(PYTHON, (Package("numpy", "2.4.6", "2.4.6", True),)).as_dict()


def shown_text(notebook: Path) -> str:
    """Everything a notebook's committed outputs show as text."""
    parts = []
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            parts.append("".join(output.get("text", "")))
            parts.append("".join(output.get("data", {}).get("text/plain", "")))
    return "\n".join(parts)


NOTEBOOKS = sorted((PROJ_ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_the_committed_outputs_speak_portuguese(notebook: Path) -> None:
    text = shown_text(notebook)
    found = sorted({m.group(0) for p in ENGLISH for m in re.finditer(p, text)})
    assert not found, f"English on screen in {notebook.name}: {found}"


def test_the_gate_and_the_monitor_speak_portuguese_with_decimal_commas() -> None:
    reason = "f1_macro=0.9304 passes the gate (0.9000) and there is no champion yet"
    assert screen.say(reason) == "f1_macro = 0,9304 passa o gate (0,9000) e ainda não há champion"
    verdict = (
        "retraining due: low-confidence share 0.30 is above 0.15 (confidence < 0.70); "
        "input drift in bill_length_mm (p < 0.01 and PSI > 0.25)"
    )
    assert screen.say(verdict) == (
        "retreino devido: parte com baixa confiança 0,30 acima de 0,15 (confiança < 0,70); "
        "drift de entrada em bill_length_mm (p < 0,01 e PSI > 0,25)"
    )
    assert screen.say("the API at 127.0.0.1:8000 said 0.5") == "the API at 127.0.0.1:8000 said 0,5"


def test_the_environment_check_of_a_deployment_speaks_portuguese() -> None:
    checks = [
        Check("version", True, "API serves v2, registry champion is v2"),
        environment_check(ENVIRONMENT),
    ]
    result = SmokeResult("penguins-classifier", "2", checks, environment=ENVIRONMENT)

    assert screen.say("\n".join(result.lines())).splitlines() == [
        "smoke test de penguins-classifier v2:",
        "  ok versão: a API serve v2, o champion do registry é v2",
        "  FALHOU ambiente: scikit-learn 1.10.0 (treino) vs 1.9.1 (aqui): versão minor difere: "
        "instale scikit-learn==1.10.0 aqui, ou retreine o modelo neste ambiente",
        "ambiente, treinado com → aqui:",
        "  ok python: 3.11.7 → 3.11.7",
        "  FALHOU scikit-learn: 1.10.0 → 1.9.1, versão minor difere: instale "
        "scikit-learn==1.10.0 aqui, ou retreine o modelo neste ambiente",
        "  ok numpy: 2.4.5 → 2.4.6, só a versão de patch difere",
    ]
    assert screen.say(environment_check(MATCHING).detail) == (
        "Python e os pacotes registrados (1) conferem com o ambiente de treino"
    )


def test_rows_dropped_for_several_reasons_are_all_named_in_portuguese() -> None:
    dropped = {"missing_target": 1, "no_measurements": 2, "missing_split_value": 3}
    in_words = "sem alvo: 1, sem medidas: 2, sem valor na coluna de divisão: 3"
    assert screen.counts(dropped) == in_words
    assert screen.say("missing_target: 1, no_measurements: 2, missing_split_value: 3") == in_words
    assert screen.say("duplicate_case: 4") == "casos repetidos: 4"


def test_tables_lose_the_row_numbers_and_gain_portuguese_labels() -> None:
    summary = pd.DataFrame(
        [("best candidate", "knn"), ("promoted to champion", "yes")], columns=["item", "value"]
    )
    shown = screen.show(summary)
    assert list(shown.index) == ["melhor candidato", "promovido a champion"]
    assert shown.iloc[:, 0].tolist() == ["knn", "sim"]
    candidates = pd.DataFrame({"candidate": ["knn"], "accuracy": [0.97], "drift": [True]})
    shown = screen.show(candidates)
    assert list(shown.columns) == ["candidato", "acurácia", "drift"]
    assert list(shown.index) == [""] and shown.iloc[0].tolist() == ["knn", "0,97", "sim"]
    assert "0,97" in shown.to_html() and ">0<" not in shown.to_html()
