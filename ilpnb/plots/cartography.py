"""The Dataset Cartography map of an SFT run, from its in-training statistics.

:func:`plot_cartography` draws one point per sample at its *variability* (x: the standard
deviation over epochs of the mean gold-token probability) and *confidence* (y: its mean),
coloured by *correctness* (the share of epochs at which the training pass reproduced the
response exactly) — the map of Swayamdipta et al. (2020): easy-to-learn samples top left,
hard-to-learn bottom left, ambiguous ones to the right. With ``highlight`` (e.g. the
unlearned ids of a diagnosis) those samples are ringed. The input is
:func:`ilpnb.train.train_stats.cartography` of ``RUN/train_dynamics.parquet``.

Like every plot of ilpnb it takes data and an optional ``ax`` and returns the axes.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd
from matplotlib.axes import Axes

from ilpnb.plots.base import get_ax

__all__ = ["plot_cartography"]


def plot_cartography(carto: pd.DataFrame, ax: Axes | None = None, highlight: Iterable[str] | None = None,
                     title: str | None = "Dataset cartography (in-training statistics)") -> Axes:
    """Scatter of variability (x) against confidence (y), coloured by correctness.

    Args:
        carto: one row per sample with ``id``, ``confidence``, ``variability``, ``correctness``.
        ax: axes to draw on (a new figure when None).
        highlight: sample ids to ring (e.g. the unlearned ones).
        title: axes title (None: none).

    Raises:
        KeyError: a column is missing (named in the message).
    """
    missing = [c for c in ("id", "confidence", "variability", "correctness") if c not in carto.columns]
    if missing:
        raise KeyError(f"plot_cartography: the cartography table lacks {missing} "
                       "(make it with ilpnb.train.train_stats.cartography)")
    ax = get_ax(ax, (5.4, 4.2))
    points = ax.scatter(carto["variability"], carto["confidence"], c=carto["correctness"], cmap="viridis",
                        vmin=0.0, vmax=1.0, s=18, alpha=0.85, linewidths=0)
    ax.figure.colorbar(points, ax=ax, label="correctness (share of epochs exact)")
    if highlight is not None:
        ringed = carto[carto["id"].astype(str).isin({str(i) for i in highlight})]
        ax.scatter(ringed["variability"], ringed["confidence"], s=60, facecolors="none", edgecolors="#c0392b",
                   linewidths=1.2, label=f"highlighted ({len(ringed)})")
        ax.legend(loc="lower right", fontsize=8)
    ax.set_xlabel("variability (sd of gold-token probability over epochs)")
    ax.set_ylabel("confidence (mean gold-token probability)")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlim(left=0.0)
    if title:
        ax.set_title(title)
    return ax
