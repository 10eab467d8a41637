"""Plots of the diagnosis: a signal for planted vs other samples, confusion matrix, cause split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes

from ilpnb.plots.base import get_ax

__all__ = ["plot_signal", "plot_confusion", "plot_cause_split", "plot_scores"]


def plot_signal(signals: pd.DataFrame, groups: pd.Series, column: str, highlight: str, ax: Axes | None = None,
                only: pd.Series | None = None) -> Axes:
    """Distribution of one signal for samples of ``highlight`` vs the other groups.

    Args:
        signals: per-sample signals indexed by id (:func:`ilpnb.diagnose.features.signals`).
        groups: id -> group label (e.g. planted cause).
        column: the signal to show.
        highlight: the group drawn first and coloured.
        ax: axes to draw on.
        only: optional boolean Series id -> keep (e.g. unlearned samples only).
    """
    ax = get_ax(ax)
    d = signals[[column]].copy()
    d["group"] = d.index.map(groups)
    if only is not None:
        d = d[d.index.map(only).fillna(False).astype(bool)]
    d[column] = d[column].astype(float)
    order = [highlight] + sorted(g for g in d["group"].dropna().unique() if g != highlight)
    palette = {g: ("#c0504d" if g == highlight else "#9aa5b1") for g in order}
    sns.stripplot(data=d, x=column, y="group", order=order, hue="group", palette=palette, legend=False,
                  ax=ax, size=3.5, alpha=0.7, jitter=0.25)
    ax.set_ylabel("")
    ax.set_title(column)
    return ax


def plot_confusion(confusion: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Heat map of a confusion matrix (rows planted, columns diagnosed), with counts."""
    ax = get_ax(ax, (7.5, 4.2))
    sns.heatmap(confusion, annot=True, fmt="d", cmap="Blues", cbar=False, ax=ax)
    ax.set_xlabel("diagnosed cause")
    ax.set_ylabel("planted cause")
    ax.tick_params(axis="x", rotation=30)
    return ax


def plot_cause_split(split: pd.DataFrame, ax: Axes | None = None, reference: dict[str, float] | None = None) -> Axes:
    """Bar chart of the share of unlearned samples per diagnosed cause (optionally beside a reference)."""
    ax = get_ax(ax)
    s = split.drop(index="total", errors="ignore")["share"]
    x = np.arange(len(s))
    width = 0.4 if reference else 0.7
    ax.bar(x - (width / 2 if reference else 0), s.values, width=width, label="this run")
    if reference:
        ax.bar(x + width / 2, [reference.get(k, np.nan) for k in s.index], width=width, label="published study")
        ax.legend(fontsize=8)
    ax.set_xticks(x, s.index, rotation=30, ha="right")
    ax.set_ylabel("share of unlearned samples")
    return ax


def plot_scores(diagnosis: pd.DataFrame, groups: pd.Series, ax: Axes | None = None) -> Axes:
    """Mean detector score per planted group (rows) and detector (columns), unlearned samples only."""
    ax = get_ax(ax, (7.5, 4.0))
    un = diagnosis[~diagnosis["learned"].astype(bool)]
    cols = [c for c in un.columns if c.startswith("score_")]
    table = un.assign(group=un["id"].map(groups)).groupby("group")[cols].mean()
    table.columns = [c.removeprefix("score_") for c in cols]
    sns.heatmap(table, annot=True, fmt=".2f", cmap="Reds", vmin=0, vmax=1, cbar=False, ax=ax)
    ax.set_xlabel("detector")
    ax.set_ylabel("planted cause")
    ax.tick_params(axis="x", rotation=30)
    return ax
