"""Plots of the interaction dynamics of a fine-tuning run (tables of :mod:`ilpnb.pipeline.sweep`).

Each function takes the tables (``summary``, ``orders``, ``frame``, ``stopping``) and an
optional ``ax``, draws, and returns the axes; none calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes

__all__ = [
    "STATUS_COLORS",
    "plot_denoising",
    "plot_interaction_trajectories",
    "plot_order_heatmap",
    "plot_quality",
    "plot_status_by_order",
    "plot_status_counts",
    "plot_stopping",
]

STATUS_COLORS = {"salient": "#444444", "preserved": "#2a9d8f", "emerged": "#e76f51", "removed": "#8d99ae"}
"""One colour per group, shared by every plot."""

_MEASURES = {"n": "interactions per prompt", "share": "share of the base model's salient set",
             "strength": "Σ|I| per prompt"}


def _ax(ax: Axes | None, size: tuple[float, float] = (6.4, 4.0)) -> Axes:
    if ax is None:
        _, ax = plt.subplots(figsize=size)
    return ax


def _mark_stops(ax: Axes, stopping: Mapping[str, Any] | None, labels: bool = True) -> None:
    if not stopping:
        return
    marks = [("interaction", "interaction stop", "#264653", "--")]
    if stopping.get("loss"):
        marks.append(("loss", "lowest val. loss", "#e9c46a", ":"))
    for key, label, color, style in marks:
        ax.axvline(stopping[key]["step"], color=color, linestyle=style, linewidth=1.5,
                   label=f"{label} (step {stopping[key]['step']})" if labels else None)


def plot_status_counts(summary: pd.DataFrame, measure: str = "share", stopping: Mapping[str, Any] | None = None,
                       groups: Sequence[str] = ("preserved", "emerged", "removed"), ax: Axes | None = None) -> Axes:
    """Preserved, emerged and removed interactions over steps.

    Args:
        summary: ``interaction_summary.parquet``.
        measure: ``share`` (of ``|Ω_0|``), ``n`` (count per prompt) or ``strength`` (Σ|I|).
        stopping: ``interaction_stopping.json`` to mark the stopping steps.
        groups: Which groups to draw.
        ax: Axes to draw on.
    """
    if measure not in _MEASURES:
        raise ValueError(f"measure must be one of {sorted(_MEASURES)}, got {measure!r}")
    ax = _ax(ax)
    for g in groups:
        ax.plot(summary["step"], summary[f"{measure}_{g}"], marker="o", markersize=3, label=g,
                color=STATUS_COLORS.get(g))
    _mark_stops(ax, stopping)
    ax.set_xlabel("step")
    ax.set_ylabel(_MEASURES[measure])
    ax.set_title("Fate of the salient interactions")
    ax.legend(fontsize=8)
    return ax


def plot_status_by_order(orders: pd.DataFrame, step: int | None = None, measure: str = "n",
                         groups: Sequence[str] = ("preserved", "emerged", "removed"), ax: Axes | None = None) -> Axes:
    """Counts (or strength) of each group by interaction order at one checkpoint.

    Args:
        orders: ``interaction_orders.parquet``.
        step: The checkpoint (default the last).
        measure: ``n``, ``share`` or ``strength``.
        groups: Which groups to draw.
        ax: Axes to draw on.
    """
    ax = _ax(ax)
    step = int(orders["step"].max()) if step is None else int(step)
    part = orders[orders["step"] == step]
    order_vals = sorted(orders["order"].unique())
    width = 0.8 / max(1, len(groups))
    x = np.arange(len(order_vals))
    for i, g in enumerate(groups):
        vals = part[part["group"] == g].set_index("order")[measure].reindex(order_vals).fillna(0.0)
        ax.bar(x + (i - (len(groups) - 1) / 2) * width, vals.to_numpy(), width, label=g, color=STATUS_COLORS.get(g))
    ax.set_xticks(x, [str(o) for o in order_vals])
    ax.set_xlabel("interaction order |S|")
    ax.set_ylabel(_MEASURES.get(measure, measure))
    ax.set_title(f"By order at step {step}")
    ax.legend(fontsize=8)
    return ax


def plot_order_heatmap(orders: pd.DataFrame, group: str = "emerged", measure: str = "n",
                       ax: Axes | None = None) -> Axes:
    """One group's count (or strength) by order (rows) and step (columns)."""
    ax = _ax(ax)
    part = orders[orders["group"] == group]
    steps = sorted(orders["step"].unique())
    order_vals = sorted(orders["order"].unique())
    grid = part.pivot_table(index="order", columns="step", values=measure, aggfunc="first")
    grid = grid.reindex(index=order_vals, columns=steps).fillna(0.0)
    im = ax.imshow(grid.to_numpy(), aspect="auto", origin="lower", cmap="viridis")
    ax.set_xticks(range(len(steps)), [str(s) for s in steps], rotation=90, fontsize=7)
    ax.set_yticks(range(len(order_vals)), [str(o) for o in order_vals])
    ax.set_xlabel("step")
    ax.set_ylabel("order")
    ax.set_title(f"{group}: {_MEASURES.get(measure, measure)}")
    ax.figure.colorbar(im, ax=ax, fraction=0.046)
    return ax


def plot_quality(summary: pd.DataFrame, metric: str = "rho",
                 groups: Sequence[str] = ("salient", "preserved", "emerged", "removed"),
                 stopping: Mapping[str, Any] | None = None, ax: Axes | None = None) -> Axes:
    """Non-cancelling ratio ``ρ`` or generalisation ratio ``γ`` of each group over steps.

    Args:
        summary: ``interaction_summary.parquet``.
        metric: ``rho``, ``gamma`` or ``order`` (mean order).
        groups: Which groups to draw.
        stopping: Marks the stopping steps.
        ax: Axes to draw on.
    """
    names = {"rho": "non-cancelling ratio ρ", "gamma": "generalisation ratio γ", "order": "mean order"}
    if metric not in names:
        raise ValueError(f"metric must be one of {sorted(names)}, got {metric!r}")
    ax = _ax(ax)
    for g in groups:
        ax.plot(summary["step"], summary[f"{metric}_{g}"], marker="o", markersize=3, label=g,
                color=STATUS_COLORS.get(g))
    _mark_stops(ax, stopping, labels=False)
    ax.set_xlabel("step")
    ax.set_ylabel(names[metric])
    if metric != "order":
        ax.set_ylim(0, 1.05)
    ax.set_title(names[metric])
    ax.legend(fontsize=8)
    return ax


def plot_denoising(summary: pd.DataFrame, stopping: Mapping[str, Any] | None = None, ax: Axes | None = None) -> Axes:
    """The stopping curve: removed and emerged shares, and removed − emerged."""
    ax = _ax(ax)
    ax.plot(summary["step"], summary["share_removed"], color=STATUS_COLORS["removed"], label="removed r")
    ax.plot(summary["step"], summary["share_emerged"], color=STATUS_COLORS["emerged"], label="emerged e")
    ax.plot(summary["step"], summary["denoise"], color="black", linewidth=2, label="r − e")
    ax.axhline(0, color="grey", linewidth=0.5)
    _mark_stops(ax, stopping)
    ax.set_xlabel("step")
    ax.set_ylabel("share of the base model's salient set")
    ax.set_title("End of the denoising phase")
    ax.legend(fontsize=8)
    return ax


def plot_stopping(summary: pd.DataFrame, stopping: Mapping[str, Any] | None = None,
                  left: str = "val_loss", right: str = "test_acc", ax: Axes | None = None) -> Axes:
    """Validation loss (left axis) and held-out accuracy (right axis) with the stopping steps.

    Returns:
        The left axes (the right one is ``ax.right_ax``).
    """
    ax = _ax(ax)
    ax.plot(summary["step"], summary[left], color="#264653", marker="o", markersize=3, label=left)
    ax.set_xlabel("step")
    ax.set_ylabel(left)
    twin = ax.twinx()
    twin.plot(summary["step"], summary[right], color="#e76f51", marker="s", markersize=3, label=right)
    if right.endswith("acc"):
        twin.set_ylim(-0.02, 1.02)
    twin.set_ylabel(right)
    _mark_stops(ax, stopping)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=8, loc="best")
    ax.set_title("Where to stop, and what it buys")
    ax.right_ax = twin  # type: ignore[attr-defined]
    return ax


def plot_interaction_trajectories(frame: pd.DataFrame, prompt_id: str | None = None, top: int = 20,
                                  ax: Axes | None = None) -> Axes:
    """Values of one prompt's salient interactions across steps (rows: interactions).

    Rows are the ``top`` interactions with the largest magnitude at any step among those
    ever salient, labelled ``kind: words`` and sorted by their status at the last step.
    """
    ax = _ax(ax, (7.0, 5.0))
    prompt_id = prompt_id or str(frame["prompt_id"].iloc[0])
    rows = frame[frame["prompt_id"] == prompt_id]
    ever = rows.groupby(["mask", "kind"])["salient"].transform("any")
    rows = rows[ever]
    grid = rows.pivot_table(index=["kind", "mask"], columns="step", values="value", aggfunc="first")
    if grid.empty:
        ax.set_title(f"{prompt_id}: no salient interaction")
        return ax
    last = rows[rows["step"] == rows["step"].max()].set_index(["kind", "mask"])
    rank = {"preserved": 0, "emerged": 1, "removed": 2, "none": 3}
    keep = grid.abs().max(axis=1).sort_values(ascending=False).index[:top]
    keep = sorted(keep, key=lambda k: (rank.get(last.loc[k, "status"], 4), -grid.loc[k].abs().max()))
    grid = grid.loc[keep]
    lim = float(np.nanmax(np.abs(grid.to_numpy()))) or 1.0
    im = ax.imshow(grid.to_numpy(), aspect="auto", cmap="RdBu_r", vmin=-lim, vmax=lim)
    labels = [f"{k}: {last.loc[(k, m), 'words']} [{last.loc[(k, m), 'status']}]" for k, m in keep]
    ax.set_yticks(range(len(keep)), labels, fontsize=7)
    ax.set_xticks(range(grid.shape[1]), [str(s) for s in grid.columns], rotation=90, fontsize=7)
    ax.set_xlabel("step")
    ax.set_title(f"Interactions of {prompt_id} (status at the last step)")
    ax.figure.colorbar(im, ax=ax, fraction=0.046, label="I(S)")
    return ax
