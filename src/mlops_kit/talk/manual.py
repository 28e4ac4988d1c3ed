"""Notebook 01, level 0: what a manual process ends with — a model file handed over, and what it lacks."""

from __future__ import annotations

from pathlib import Path

import joblib
import pandas as pd

from mlops_kit.config import Settings

HANDOFF_NAME = "modelo_final_v2_agora_vai.joblib"

MISSING = [
    (
        "Rastreamento",
        "Quais dados, parâmetros e métricas geraram este arquivo?",
        "02 · MLflow tracking",
    ),
    (
        "Reprodutibilidade",
        "Alguém consegue gerar o mesmo modelo amanhã?",
        "02 · pipeline parametrizado",
    ),
    (
        "Validação automática",
        "Quem decide se ele é bom o bastante para produção?",
        "02 · quality gate",
    ),
    (
        "Versionamento do modelo",
        "Qual versão está em produção? E a anterior?",
        "02 · registry + alias champion",
    ),
    ("Testes e entrega", "Quem testa o código e o modelo antes de entregar?", "03 · CI/CD"),
    ("Um serviço", "Como o usuário final usa o modelo?", "04 · API REST"),
    ("Monitoramento", "Como saber se a confiança do modelo caiu?", "04 · monitoramento"),
]


def hand_over(model: object, settings: Settings, name: str = HANDOFF_NAME) -> Path:
    """Save the model as a loose file for 'engineering': no data version, no metrics, no lineage."""
    settings.handoff_dir.mkdir(parents=True, exist_ok=True)
    path = settings.handoff_dir / name
    joblib.dump(model, path)
    return path


def what_is_missing() -> pd.DataFrame:
    """What the manual process leaves open, and which notebook of the kit answers it."""
    return pd.DataFrame(MISSING, columns=["falta", "a pergunta sem resposta", "onde o kit resolve"])
