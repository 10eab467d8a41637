"""Plots of per-sample learning dynamics: curves by group, unlearned share by group."""

from __future__ import annotations

import pandas as pd
from matplotlib.axes import Axes

from ilpnb.plots.base import get_ax

__all__ = ["plot_group_curves", "plot_sample_curves", "plot_unlearned_share", "mark_stages"]


def mark_stages(dyn: pd.DataFrame, ax: Axes) -> Axes:
    """Dashed vertical lines at the steps where a training stage ends (except the last)."""
    ends = dyn.groupby("stage")["step"].max().sort_values()
    for step in ends.iloc[:-1]:
        ax.axvline(step, color="grey", linestyle="--", linewidth=0.8)
    return ax


def plot_group_curves(dyn: pd.DataFrame, groups: pd.Series, metric: str = "exact", ax: Axes | None = None) -> Axes:
    """Mean of ``metric`` over evaluation steps, one line per group.

    Args:
        dyn: ``dynamics.parquet``.
        groups: sample id -> group label (e.g. planted cause, or diagnosed cause).
        metric: a numeric or boolean column of ``dyn``.
        ax: axes to draw on.
    """
    ax = get_ax(ax)
    d = dyn.assign(group=dyn["id"].map(groups))
    table = d.groupby(["group", "step"])[metric].mean().unstack(0)
    for col in table.columns:
        ax.plot(table.index, table[col], marker=".", label=str(col))
    mark_stages(dyn, ax)
    ax.set_xlabel("SFT step (dashed: end of a stage)")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7, ncol=2)
    return ax


def plot_sample_curves(dyn: pd.DataFrame, ids: list[str], metric: str = "loss", ax: Axes | None = None) -> Axes:
    """``metric`` over steps for a few samples, one thin line each."""
    ax = get_ax(ax)
    for sid in ids:
        g = dyn[dyn["id"] == sid].sort_values("step")
        ax.plot(g["step"], g[metric], linewidth=1, alpha=0.8, label=sid)
    mark_stages(dyn, ax)
    ax.set_xlabel("SFT step")
    ax.set_ylabel(metric)
    if len(ids) <= 10:
        ax.legend(fontsize=7)
    return ax


def plot_unlearned_share(samples: pd.DataFrame, groups: pd.Series, ax: Axes | None = None) -> Axes:
    """Share of samples unlearned at the end, per group, with the count on each bar."""
    ax = get_ax(ax)
    d = samples.assign(group=samples["id"].map(groups))
    share = d.groupby("group")["learned"].agg(lambda s: 1.0 - s.mean())
    count = d.groupby("group").size()
    bars = ax.bar(share.index.astype(str), share.values, color="#c0504d")
    for bar, n in zip(bars, count[share.index]):
        ax.annotate(f"n={n}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center", va="bottom", fontsize=7)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("unlearned at the end")
    ax.tick_params(axis="x", rotation=30)
    return ax
