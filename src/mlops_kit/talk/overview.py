"""Notebook 00: the talk's components and maturity levels as tables that point into the kit."""

from __future__ import annotations

import pandas as pd

COMPONENTS = [
    (
        "Análise exploratória",
        "compreender o problema e a viabilidade",
        "01",
        "data.load_raw, plots",
    ),
    ("Preparação dos dados", "limpeza, organização e catalogação", "01, 02", "data.prepare, store"),
    ("Treinamento", "candidatos como Pipelines do scikit-learn", "01, 02", "train, training_run"),
    (
        "Validação",
        "temporada mais nova, nunca vista no treino; quality gate",
        "02",
        "evaluation, registry",
    ),
    ("Disponibilização", "API REST que consome o modelo do MLflow", "03, 04", "serving, delivery"),
    ("Monitoramento", "índices de confiança e drift em produção", "04", "monitoring, simulator"),
    ("Captação", "baixa confiança vira nova base de dados", "04", "capture, labels"),
    (
        "Retreinamento",
        "o ciclo volta ao treinamento",
        "02, 03, 04",
        "retrain, training_pipeline, notebook_runner",
    ),
]

LEVELS = [
    (
        0,
        "Processo manual",
        "alguém roda as células de um notebook",
        "cientista de dados faz tudo; engenharia recebe um arquivo",
        "PoCs, viabilidade ainda não confirmada",
        "01_processo_manual",
    ),
    (
        1,
        "Automação do pipeline de ML",
        "dados novos ou agendamento (treinamento contínuo)",
        "o pipeline: dados → candidatos → MLflow → gate → registro",
        "produto com uma base de usuários restrita",
        "02_pipeline_automatizado",
    ),
    (
        2,
        "Automação CI/CD",
        "um commit, um PR ou um agendamento no CI",
        "CI testa e empacota; CD promove, testa e faz rollback",
        "equipes maiores, mais complexidade, mais usuários",
        "03_ci_cd",
    ),
]


def components_table() -> pd.DataFrame:
    """Each component of an MLOps process, what it does, and where the kit implements it."""
    return pd.DataFrame(
        COMPONENTS, columns=["componente", "o que faz", "notebook", "módulo mlops_kit"]
    )


def maturity_table(team_level: int | None = None) -> pd.DataFrame:
    """The three maturity levels of the talk; optionally marks where a team is and its next step."""
    if team_level is not None and team_level not in (0, 1, 2):
        raise ValueError(f"team level must be 0, 1 or 2, not {team_level}")
    table = pd.DataFrame(
        LEVELS,
        columns=[
            "nível",
            "nome",
            "gatilho de um novo modelo",
            "quem faz cada etapa",
            "quando usar",
            "notebook",
        ],
    )
    if team_level is not None:
        marks = {team_level: "← sua equipe hoje", team_level + 1: "→ próximo passo"}
        table["onde você está"] = [marks.get(level, "") for level in table["nível"]]
    return table.set_index("nível")
