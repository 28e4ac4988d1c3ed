"""Notebook 03, level 2: the repository's own workflows, a live test run, and the three levels compared."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import yaml

from mlops_kit.config import PROJ_ROOT

WORKFLOWS_DIR = PROJ_ROOT / ".github" / "workflows"


def make_targets(makefile: Path = PROJ_ROOT / "Makefile") -> dict[str, str]:
    """The Makefile's documented targets and their `## comment`."""
    pattern = re.compile(r"^([a-zA-Z][a-zA-Z0-9_-]*):[^\n#]*## (.+)$", re.MULTILINE)
    return {name: help_text.strip() for name, help_text in pattern.findall(makefile.read_text())}


def _triggers(doc: dict) -> list[str]:
    on = doc.get("on", doc.get(True))  # YAML 1.1 reads the key `on` as True
    if isinstance(on, str):
        return [on]
    out = []
    for name, spec in (on or {}).items():
        if name == "schedule":
            out += [f"schedule ({s['cron']})" for s in spec]
        else:
            out.append(name)
    return out


def _run_steps(doc: dict) -> list[str]:
    return [
        step["run"].strip()
        for job in doc["jobs"].values()
        for step in job["steps"]
        if "run" in step
    ]


def workflows_table(directory: Path = WORKFLOWS_DIR) -> pd.DataFrame:
    """One row per workflow file: what triggers it and the make targets it runs, in order."""
    rows = []
    for path in sorted(directory.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        targets = [command.removeprefix("make ") for command in _run_steps(doc)]
        rows.append(
            {
                "workflow": path.name,
                "triggers": ", ".join(_triggers(doc)),
                "make targets, in order": " → ".join(targets),
            }
        )
    return pd.DataFrame(rows)


# What the make targets the workflows call do, for the audience (the Makefile's `##` help is the
# English original; a target missing here is shown with it).
TARGETS_PT = {
    "install": "cria o .venv e instala o kit nas versões fixadas (constraints.txt)",
    "lint": "ruff: lint e checagem de formatação",
    "unit-tests": "os testes de tests/ (MLflow, papermill e um mlflow server de verdade)",
    "notebook-tests": "pytest --nbval: reexecuta cada notebook num workspace novo e compara as saídas",
    "demo": "roda todos os notebooks sem interface com o papermill e diz onde ficaram os resultados",
    "train-job": "o treinamento agendado: notebook 02 sem interface; falha se o gate recusar",
    "deploy-smoke": "CD: sobe a API no champion, faz o smoke test e volta o alias se ele falhar",
    "deploy-staging": "CD, 1º passo: o candidato ganha o alias staging; smoke test e soak na API de staging",
    "deploy-production": "CD, 2º passo: só o que passou em staging vira champion; smoke test e rollback",
    "package": "empacota: o wheel e o sdist do kit, e o champion como pacote de modelo (dist/)",
    "canary": "os testes contra as versões mais novas de mlflow, scikit-learn, pandas, papermill e "
    "nbval (não as fixadas), no .venv-canary",
    "canary-versions": "quais versões o canary testou, ao lado das fixadas",
    "system-deps": "programas que os testes usam, do Debian quando faltam: chromium, PostgreSQL, "
    "Prometheus",
}


def targets_table(directory: Path = WORKFLOWS_DIR) -> pd.DataFrame:
    """What each make target the workflows call checks or does (in Portuguese; else the Makefile's)."""
    documented = {**make_targets(), **TARGETS_PT}
    used: list[str] = []
    for path in sorted(directory.glob("*.yml")):
        for command in _run_steps(yaml.safe_load(path.read_text())):
            for target in command.split()[1:]:
                if target not in used:
                    used.append(target)
    return pd.DataFrame(
        [(f"make {t}", documented.get(t, "")) for t in used], columns=["command", "what it does"]
    )


def run_tests(paths: list[str], root: Path = PROJ_ROOT) -> dict[str, object]:
    """Run a subset of the test suite in a fresh process, as CI does; counts and whether it passed.

    Only pytest's own plugins load: the ones installed for the rest of the suite (nbval,
    schemathesis, hypothesis, xdist, anyio) took half of the live run's time, before any test ran.
    """
    process = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *paths],
        cwd=root,
        env={**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    last = process.stdout.strip().splitlines()[-1] if process.stdout.strip() else ""
    counts = {word: int(n) for n, word in re.findall(r"(\d+) (passed|failed|error|skipped)", last)}
    return {
        "tests": ", ".join(paths),
        "passed": counts.get("passed", 0),
        "failed": counts.get("failed", 0) + counts.get("error", 0),
        "green": process.returncode == 0,
    }


def _seconds(value: float | None) -> str:
    return f"≈ {value:.1f} s".replace(".", ",") if value is not None else "—"


def levels_table(pipeline_seconds: float, delivery_seconds: float) -> pd.DataFrame:
    """The three maturity levels side by side, with the times measured in this kit's run."""
    rows = [
        (
            0,
            "Processo manual",
            "alguém decide rodar o notebook",
            "cientista de dados: tudo; engenharia: recebe um arquivo",
            "horas a dias (pessoas, e-mail, deploy à mão)",
        ),
        (
            1,
            "Pipeline de ML automatizado",
            "dados novos ou agendamento (papermill, cron)",
            "o pipeline: dados, candidatos, MLflow, gate, registry",
            f"{_seconds(pipeline_seconds)} até o modelo registrado; servir ainda é manual",
        ),
        (
            2,
            "CI/CD",
            "commit, pull request ou agendamento no CI",
            "CI: testes, gate e pacote; CD: staging (smoke test, soak) → produção, rollback",
            f"{_seconds(pipeline_seconds + delivery_seconds)} até o modelo servido e testado",
        ),
    ]
    columns = [
        "nível",
        "nome",
        "o que dispara um novo modelo",
        "quem faz cada etapa",
        "de dados novos a modelo servido",
    ]
    return pd.DataFrame(rows, columns=columns).set_index("nível")
