"""Plots of the base model's knowledge: probe recall of stated vs unstated facts, loss curve."""

from __future__ import annotations

from typing import Any

import pandas as pd
from matplotlib.axes import Axes

from ilpnb.plots.base import get_ax

__all__ = ["plot_probe_report", "plot_loss_curve"]


def plot_probe_report(report: pd.DataFrame, ax: Axes | None = None) -> Axes:
    """Greedy recall and multiple-choice accuracy of stated vs unstated facts, with chance.

    Args:
        report: the table of :func:`ilpnb.probe.knowledge.probe_report`.
        ax: axes to draw on.
    """
    ax = get_ax(ax)
    rows = []
    for stated, g in report.groupby("stated"):
        label = "stated in corpus" if stated else "never stated"
        rows.append((label, "greedy recall", g["recall"].mean(), g["chance"].mean()))
        rows.append((label, "multiple choice", g["mc_correct"].mean(), (1.0 / g["n_options"]).mean()))
    frame = pd.DataFrame(rows, columns=["facts", "measure", "accuracy", "chance"])
    width = 0.38
    for k, (measure, g) in enumerate(frame.groupby("measure", sort=False)):
        xs = [i + (k - 0.5) * width for i in range(len(g))]
        ax.bar(xs, g["accuracy"], width=width, label=measure)
        for x, c in zip(xs, g["chance"]):
            ax.hlines(c, x - width / 2, x + width / 2, colors="black", linestyles="dotted")
    ax.set_xticks(range(len(frame["facts"].unique())), frame["facts"].unique())
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("share of facts")
    ax.set_title("What the base model knows (dotted: chance)")
    ax.legend(loc="upper right", fontsize=8)
    return ax


def plot_loss_curve(info: dict[str, Any], ax: Axes | None = None) -> Axes:
    """Pretraining loss per logged step, from ``ilpnb_pretrain.json``."""
    ax = get_ax(ax)
    curve = pd.DataFrame(info["loss_curve"])
    ax.plot(curve["epoch"], curve["loss"], marker=".")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss")
    ax.set_title(f"Pretraining ({info['parameters']:,} parameters, {info['seconds']:.0f} s)")
    return ax
