"""Plots of mitigation experiments: recovery per cause of the treated arm and its controls, with
intervals, and the crossover heatmap (interventions × causes)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ilpnb.plots.base import get_ax

__all__ = ["plot_recovery", "plot_crossover"]

_ARMS = (("treated", "#c0504d"), ("generic", "#e3a857"), ("placebo", "#9aa5b1"), ("unmodified", "#d9d9d9"))


def plot_recovery(summary: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Grouped bars: for each intervention (rows of ``summary`` on its own target cause and the
    others), the recovery of each arm present (treated, generic control, placebo, unmodified) with
    95% intervals over seeds.

    Args:
        summary: :func:`ilpnb.mitigate.experiment.summarize` of one or more experiments.
        ax: axes to draw on.
    """
    ax = get_ax(ax, (10, 4))
    s = summary.copy()
    s["label"] = s["target"] + "/" + s["method"] + "\n→ " + s["cause"]
    s = s[s["unlearned"] > 0].reset_index(drop=True)
    arms = [(a, c) for a, c in _ARMS if a in s and s[a].notna().any()]
    x, width = np.arange(len(s)), 0.8 / max(1, len(arms))
    for k, (arm, colour) in enumerate(arms):
        lo = (s[arm] - s[f"{arm}_lo"].clip(0, 1)).fillna(0).clip(lower=0)  # a share lies in [0, 1]
        hi = (s[f"{arm}_hi"].clip(0, 1) - s[arm]).fillna(0).clip(lower=0)
        ax.bar(x + (k - (len(arms) - 1) / 2) * width, s[arm].fillna(0), width=width, color=colour, label=arm,
               yerr=[lo, hi], capsize=2)
    for i, own in enumerate(s["target"] == s["cause"]):
        if own:
            ax.axvspan(i - 0.5, i + 0.5, color="#f2e6c9", zorder=-1)
    ax.set_xticks(x, s["label"], rotation=90, fontsize=7)
    ax.set_ylabel("recovery (share of unlearned now learned)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Interventions vs generic and placebo controls (shaded: the intervention's own cause)")
    return ax


def plot_crossover(matrix: pd.DataFrame, value: str = "recovery", ax: Axes | None = None) -> Axes:
    """Heatmap of the crossover matrix: interventions (rows) × causes (columns), each cell its
    mean ``value`` (``recovery`` or ``gain`` over the unmodified run) and 95% interval over seeds.

    Args:
        matrix: :func:`ilpnb.mitigate.crossover.crossover_matrix`.
        value: ``recovery`` or ``gain``.
        ax: axes to draw on.

    Raises:
        ValueError: ``value`` is not a column of ``matrix`` with ``_lo``/``_hi`` bounds.
    """
    import seaborn as sns

    if value not in matrix or f"{value}_lo" not in matrix:
        raise ValueError(f"plot_crossover: value {value!r} needs columns {value}, {value}_lo, {value}_hi")
    methods = list(dict.fromkeys(matrix["method"]))
    causes = list(dict.fromkeys(matrix["cause"]))
    grid = matrix.pivot(index="method", columns="cause", values=value).reindex(index=methods, columns=causes)
    lo = matrix.pivot(index="method", columns="cause", values=f"{value}_lo").reindex(index=methods, columns=causes)
    hi = matrix.pivot(index="method", columns="cause", values=f"{value}_hi").reindex(index=methods, columns=causes)
    text = grid.copy().astype(object)
    for m in methods:
        for c in causes:
            v, a, b = grid.at[m, c], lo.at[m, c], hi.at[m, c]
            text.at[m, c] = "" if pd.isna(v) else (f"{v:.2f}" if pd.isna(a) else f"{v:.2f}\n[{a:.2f}, {b:.2f}]")
    ax = get_ax(ax, (1.6 * len(causes) + 2, 0.6 * len(methods) + 1.5))
    centre = 0.0 if value == "gain" else None
    sns.heatmap(grid.astype(float), annot=text.to_numpy(), fmt="", cmap="RdBu_r" if value == "gain" else "rocket_r",
                center=centre, vmin=None if value == "gain" else 0.0, vmax=None if value == "gain" else 1.0,
                annot_kws={"fontsize": 7}, cbar_kws={"label": value}, ax=ax)
    ax.set_xlabel("samples diagnosed with cause")
    ax.set_ylabel("intervention")
    n = int(matrix["seeds"].max()) if "seeds" in matrix else 0
    over = "1 seed, no interval" if n == 1 else f"mean, 95% CI over {n} seeds" if n else "mean, 95% CI over seeds"
    ax.set_title(f"Crossover: {value} of each intervention on each cause's samples ({over})")
    return ax
