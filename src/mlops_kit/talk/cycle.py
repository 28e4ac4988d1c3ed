"""Notebook 00: the MLOps cycle of the talk as a figure, each box naming where the kit implements it."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

# The MLOps cycle of the talk: (box label, where the kit implements it)
CYCLE = [
    ("Análise exploratória", "01 · data.py, plots.py"),
    ("Preparação dos dados", "01/02 · data.py, store/"),
    ("Treinamento", "02 · train.py"),
    ("Validação", "02/03 · evaluation.py, registry.py"),
    ("Disponibilização (API)", "03/04 · serving/"),
    ("Monitoramento", "04 · monitoring/"),
    ("Captação (baixa confiança)", "04 · capture.py, labels.py"),
    ("Retreinamento", "04 · retrain.py"),
]


def mlops_cycle() -> Figure:
    """The components cycle of the talk drawn as a ring of boxes, each naming its notebook and module."""
    # a Figure of its own, not pyplot's: nothing to close, and notebook 00 loads no model libraries
    fig = Figure(figsize=(10, 7.5))
    ax = fig.subplots()
    n = len(CYCLE)
    half_w, half_h = 1.3, 0.42
    angles = np.pi / 2 - 2 * np.pi * np.arange(n) / n
    centers = np.column_stack([4.1 * np.cos(angles), 3.0 * np.sin(angles)])
    colors = ["#4C72B0"] * 2 + ["#DD8452"] * 2 + ["#55A868"] * 2 + ["#C44E52"] * 2
    for (label, where), (x, y), color in zip(CYCLE, centers, colors, strict=True):
        box = FancyBboxPatch(
            (x - half_w, y - half_h), 2 * half_w, 2 * half_h, boxstyle="round,pad=0.05", fc=color
        )
        ax.add_patch(box)
        ax.text(
            x, y + 0.13, label, ha="center", va="center", color="white", fontsize=10, weight="bold"
        )
        ax.text(x, y - 0.2, where, ha="center", va="center", color="white", fontsize=8.5)

    def edge(center: np.ndarray, direction: np.ndarray) -> np.ndarray:
        # where a ray from the box centre leaves the box, plus a small gap
        scale = min(half_w / max(abs(direction[0]), 1e-9), half_h / max(abs(direction[1]), 1e-9))
        return center + direction * (scale + 0.15)

    # each step leads to the next; retraining leads back to training ("o processo retorna para a
    # etapa de treinamento"), not to the exploratory analysis
    training = [label for label, _ in CYCLE].index("Treinamento")
    steps = [(i, i + 1, 0.0) for i in range(n - 1)] + [(n - 1, training, -0.35)]
    for i, j, bend in steps:
        start, end = centers[i], centers[j]
        direction = (end - start) / np.linalg.norm(end - start)
        ax.add_patch(
            FancyArrowPatch(
                tuple(edge(start, direction)),
                tuple(edge(end, -direction)),
                arrowstyle="-|>",
                mutation_scale=18,
                lw=1.6,
                color="#C44E52" if bend else "#333333",
                connectionstyle=f"arc3,rad={bend}",
            )
        )
    ax.text(0, 0.25, "MLOps", ha="center", fontsize=24, weight="bold", color="#333333")
    ax.text(0, -0.4, "ciclo contínuo: dados → modelo → produção → dados", ha="center", fontsize=10)
    ax.set_xlim(-5.5, 5.5)
    ax.set_ylim(-3.7, 3.7)
    ax.axis("off")
    ax.set_title("Componentes de um processo MLOps (e onde estão no kit)")
    fig.tight_layout()
    return fig
