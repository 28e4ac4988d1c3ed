"""Monitoring figures (titles in Portuguese, like the talk): confidence and drift over the log.

Each function returns a closed Figure, as in ``mlops_kit.plots``: a notebook shows it once.
"""

from __future__ import annotations

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from mlops_kit.monitoring.report import MonitorReport
from mlops_kit.plots import _figure

VERSION_COLORS = ["#4C72B0", "#55A868", "#8172B2", "#CCB974", "#64B5CD"]
FEATURE_COLORS = ["#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B2", "#937860", "#DA8BC3"]
MAX_EVIDENCE = 12.0  # −log10(p) is clipped here so one huge value does not flatten the rest
EVERY_TICK = 20  # up to this many segments each gets its tick; more (up to 50) get a few


def _segment_ticks(ax: Axes, segments: list[int]) -> None:
    if len(segments) <= EVERY_TICK:
        ax.set_xticks(segments)
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def _version_colors(report: MonitorReport) -> dict[str, str]:
    versions = list(dict.fromkeys(report.segments["model_version"]))
    return {v: VERSION_COLORS[i % len(VERSION_COLORS)] for i, v in enumerate(versions)}


def confidence_by_segment(report: MonitorReport) -> Figure:
    """Mean and 10th-percentile confidence per segment, and the low-confidence share under it."""
    fig = _figure((8, 4.6))
    ax_conf, ax_low = fig.subplots(2, 1, sharex=True, height_ratios=[2, 1])
    seg = report.segments
    x = seg["segment"].to_numpy()
    ax_conf.plot(x, seg["mean_confidence"], color="#333333", lw=1.5, label="confiança média")
    ax_conf.plot(
        x, seg["p10_confidence"], color="#333333", lw=1, ls=":", label="10% das previsões abaixo"
    )
    colors = _version_colors(report)
    for version, color in colors.items():
        mask = (seg["model_version"] == version).to_numpy()
        ax_conf.scatter(x[mask], seg["mean_confidence"][mask], color=color, s=40, zorder=3)
        ax_conf.scatter([], [], color=color, s=40, label=f"modelo v{version}")
    for threshold in report.low_confidence:  # the API's flag (one line per threshold it used)
        ax_conf.axhline(threshold, color="#C44E52", ls="--", lw=1)
    ax_conf.text(x.min(), max(report.low_confidence) + 0.01, "baixa confiança", color="#C44E52")
    ax_conf.set_ylim(0, 1.05)
    ax_conf.set_ylabel("Confiança")
    ax_conf.set_title("Confiança das previsões em produção, lote a lote")
    ax_conf.legend(loc="lower left", fontsize=8, ncols=2)
    bar_colors = [colors[v] for v in seg["model_version"]]
    ax_low.bar(x, seg["low_confidence_share"], color=bar_colors, alpha=0.8)
    limit = report.low_confidence_share_threshold
    ax_low.axhline(limit, color="#C44E52", ls="--", lw=1)
    ax_low.set_ylim(0, max(0.5, float(seg["low_confidence_share"].max()) * 1.15))
    ax_low.text(x.max() + 0.45, limit + 0.02, "limite para retreino", color="#C44E52", ha="right")
    ax_low.set_ylabel("% baixa\nconfiança")
    ax_low.set_xlabel("Lote de previsões (em ordem de chegada)")
    _segment_ticks(ax_low, x.tolist())
    fig.tight_layout()
    return fig


def drift_by_segment(report: MonitorReport) -> Figure:
    """Evidence of drift (−log10 p-value) per feature and segment; filled dots where it drifted."""
    fig = _figure((8, 4.2))
    ax = fig.subplots()
    long = report.segment_drift
    for i, (feature, part) in enumerate(long.groupby("feature", sort=False)):
        color = FEATURE_COLORS[i % len(FEATURE_COLORS)]
        evidence = np.clip(-np.log10(part["p_value"].clip(lower=1e-300)), 0, MAX_EVIDENCE)
        ax.plot(part["segment"], evidence, color=color, lw=1.4, label=feature)
        flagged = part["drift"].to_numpy()
        ax.scatter(part["segment"][flagged], evidence[flagged], color=color, s=50, zorder=3)
    limit = -np.log10(report.drift_p_value)
    ax.axhline(limit, color="#C44E52", ls="--", lw=1)
    ax.text(
        long["segment"].min(), limit + 0.2, f"p-valor = {report.drift_p_value:g}", color="#C44E52"
    )
    ax.set_ylim(0, MAX_EVIDENCE + 0.5)
    _segment_ticks(ax, sorted(long["segment"].unique()))
    ax.set_title("Drift dos dados de entrada, lote a lote (● = drift)")
    ax.set_xlabel("Lote de previsões (em ordem de chegada)")
    ax.set_ylabel("Evidência de drift: −log10(p-valor)")
    ax.legend(loc="upper left", fontsize=8, ncols=3)
    fig.tight_layout()
    return fig


def drift_bars(report: MonitorReport) -> Figure:
    """PSI per feature in the recent window against the training data; drifted ones in red."""
    fig = _figure((7, 3.6))
    ax = fig.subplots()
    drift = report.drift
    colors = ["#C44E52" if d else "#8C8C8C" for d in drift["drift"]]
    ax.barh(drift["feature"], drift["psi"], color=colors)
    ax.axvline(
        report.drift_psi, color="#333333", ls="--", lw=1, label=f"PSI = {report.drift_psi:g}"
    )
    ax.invert_yaxis()
    ax.set_title(f"Drift por variável nas últimas {report.recent} previsões (vermelho = drift)")
    ax.set_xlabel("PSI (índice de estabilidade da população) contra os dados de treino")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    return fig


def figures(report: MonitorReport) -> dict[str, Figure]:
    """Every monitoring figure by file name (what the CLI writes and MLflow keeps)."""
    if report.predictions == 0:
        return {}
    return {
        "confidence_by_segment.png": confidence_by_segment(report),
        "drift_by_segment.png": drift_by_segment(report),
        "drift_by_feature.png": drift_bars(report),
    }
