"""Plot of mitigation experiments: recovery per cause, treated vs control, with intervals."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from ilpnb.plots.base import get_ax

__all__ = ["plot_recovery"]


def plot_recovery(summary: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Grouped bars: for each intervention (rows of ``summary`` on its own target cause and the
    others), treated and control recovery with 95% intervals over seeds.

    Args:
        summary: :func:`ilpnb.mitigate.experiment.summarize` of one or more experiments.
        ax: axes to draw on.
    """
    ax = get_ax(ax, (10, 4))
    s = summary.copy()
    s["label"] = s["target"] + "/" + s["method"] + "\n→ " + s["cause"]
    s = s[s["unlearned"] > 0].reset_index(drop=True)
    x = np.arange(len(s))
    for k, (arm, colour) in enumerate((("treated", "#c0504d"), ("control", "#9aa5b1"))):
        lo = (s[arm] - s[f"{arm}_lo"].clip(0, 1)).fillna(0).clip(lower=0)  # a share lies in [0, 1]
        hi = (s[f"{arm}_hi"].clip(0, 1) - s[arm]).fillna(0).clip(lower=0)
        ax.bar(x + (k - 0.5) * 0.38, s[arm], width=0.38, color=colour, label=arm, yerr=[lo, hi], capsize=2)
    for i, own in enumerate(s["target"] == s["cause"]):
        if own:
            ax.axvspan(i - 0.5, i + 0.5, color="#f2e6c9", zorder=-1)
    ax.set_xticks(x, s["label"], rotation=90, fontsize=7)
    ax.set_ylabel("recovery (share of unlearned now learned)")
    ax.set_ylim(0, 1.05)
    ax.legend(fontsize=8)
    ax.set_title("Targeted interventions vs matched controls (shaded: the intervention's own cause)")
    return ax
