"""Figures the notebooks show and the pipeline logs (titles in Portuguese, like the talk).

Each function returns a closed Figure: nothing stays open, and a notebook shows it once.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import ConfusionMatrixDisplay

from mlops_kit.evaluation import label_codes


def _figure(figsize: tuple[float, float]) -> Figure:
    """A new figure that pyplot does not keep open: a notebook shows it once, when it is returned."""
    fig = plt.figure(figsize=figsize)
    plt.close(fig)
    return fig


def confusion_matrix(y_true: pd.Series, y_pred: pd.Series) -> Figure:
    """Confusion matrix of the held-out evaluation data."""
    fig = _figure((5, 4.2))
    ax = fig.subplots()
    true, predicted, classes = label_codes(y_true, y_pred)  # codes: no sorting of text labels
    ConfusionMatrixDisplay.from_predictions(
        true, predicted, display_labels=classes, ax=ax, colorbar=False, cmap="Blues"
    )
    ax.set_title("Matriz de confusão (temporada de validação)")
    ax.set_xlabel("Classe prevista")
    ax.set_ylabel("Classe real")
    fig.tight_layout()
    return fig


def confidence_histogram(confidence: pd.Series, correct: pd.Series) -> Figure:
    """How confident the model is on the held-out data, right and wrong answers apart."""
    fig = _figure((6, 3.8))
    ax = fig.subplots()
    bins = np.linspace(0, 1, 21)
    ax.hist(confidence[correct.to_numpy()], bins=bins, alpha=0.8, label="acertos", color="#55A868")
    ax.hist(confidence[~correct.to_numpy()], bins=bins, alpha=0.8, label="erros", color="#C44E52")
    ax.set_title("Confiança das previsões (temporada de validação)")
    ax.set_xlabel("Confiança (probabilidade da classe prevista)")
    ax.set_ylabel("Número de registros")
    ax.legend()
    fig.tight_layout()
    return fig


def scatter_by_class(df: pd.DataFrame, x: str, y: str, target: str) -> Figure:
    """Two measurements against each other, one colour per class (exploratory analysis)."""
    fig = _figure((6, 4.5))
    ax = fig.subplots()
    for label, group in df.groupby(target):
        ax.scatter(group[x], group[y], s=18, alpha=0.75, label=str(label))
    ax.set_title(f"{y} × {x} por {target}")
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.legend(title=target)
    fig.tight_layout()
    return fig


def class_balance_by_season(df: pd.DataFrame, target: str, season: pd.Series) -> Figure:
    """How many records of each class each season has."""
    table = pd.crosstab(season.rename("temporada"), df[target])
    fig = _figure((6, 3.8))
    ax = fig.subplots()
    table.plot.bar(ax=ax, rot=0)
    ax.set_title("Registros por classe em cada temporada")
    ax.set_xlabel("Temporada")
    ax.set_ylabel("Registros")
    fig.tight_layout()
    return fig


def missing_values(df: pd.DataFrame) -> Figure:
    """Missing values per column of the raw table."""
    counts = df.isna().sum().sort_values()
    fig = _figure((6, 0.28 * len(counts) + 1.2))
    ax = fig.subplots()
    ax.barh(counts.index, counts.to_numpy(), color="#4C72B0")
    ax.set_title("Valores ausentes por coluna (dados brutos)")
    ax.set_xlabel("Valores ausentes")
    fig.tight_layout()
    return fig


def metric_bars(table: pd.DataFrame, metric: str, gate: float | None = None) -> Figure:
    """One bar per candidate for a metric, with the quality gate as a line."""
    fig = _figure((6, 3.5))
    ax = fig.subplots()
    ax.bar(table["candidate"], table[metric], color="#4C72B0")
    if gate is not None:
        ax.axhline(
            gate,
            color="#C44E52",
            linestyle="--",
            label=f"quality gate ({gate:.2f})".replace(".", ","),
        )
        ax.legend(loc="lower right")
    ax.set_ylim(0, 1.05)
    ax.set_title(f"Candidatos: {metric} na temporada de validação")
    ax.set_ylabel(metric)
    fig.tight_layout()
    return fig
