"""Small shared helpers of the plot functions: getting axes and saving figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.axes import Axes

__all__ = ["get_ax", "save_figure"]


def get_ax(ax: Axes | None, size: tuple[float, float] = (6.0, 3.6)) -> Axes:
    """``ax`` itself, or the axes of a new figure of ``size`` inches."""
    if ax is not None:
        return ax
    _, new = plt.subplots(figsize=size)
    return new


def save_figure(ax: Axes, path: str | Path, dpi: int = 110) -> Path:
    """Save the figure holding ``ax`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    ax.figure.savefig(path, dpi=dpi, bbox_inches="tight")
    return path
