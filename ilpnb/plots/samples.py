"""Per-sample plots: the learning curve of one SFT sample across evaluation points.

:func:`plot_learning_curve` draws, for one sample of ``dynamics.parquet``, its loss (left axis)
and its token accuracy and exact reproduction (right axis, 0–1) over training steps, with the
ends of sequential stages marked by dashed lines and the sample's own stage shaded.
:func:`stage_boundaries` gives those stage ends from the whole table, so a curve shows them
even for a sample whose rows are filtered out of it.

Like every plot of ilpnb it takes data and an optional ``ax`` and returns the axes; it never
calls ``plt.show()``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

__all__ = ["CURVE_STYLE", "stage_boundaries", "stage_spans", "plot_learning_curve"]

CURVE_STYLE: dict[str, dict[str, Any]] = {
    "loss": {"color": "#1f4e9c", "label": "loss (nats/token)", "marker": "o"},
    "token_acc": {"color": "#d9822b", "label": "token accuracy", "marker": "s"},
    "exact": {"color": "#2e8540", "label": "exact reproduction", "marker": "D", "drawstyle": "steps-post"},
    "pass@5": {"color": "#7b3fa0", "label": "MC pass@5", "marker": "^"},
}
"""Colours, labels and markers of the metrics a curve may show."""

_RIGHT = ("token_acc", "exact", "pass@1", "pass@5", "pass@10", "mc_p_gold", "gold_first_p")


def _points(dyn: pd.DataFrame) -> pd.DataFrame:
    """One row per evaluation point: ``point``, ``step``, ``stage`` (sorted by point)."""
    cols = [c for c in ("point", "step", "stage") if c in dyn.columns]
    return dyn[cols].drop_duplicates("point" if "point" in cols else "step").sort_values(cols[0])


def stage_spans(dyn: pd.DataFrame) -> list[tuple[Any, float, float]]:
    """``(stage, first step, last step)`` of each training stage, in order.

    A stage starts where the previous one ended (its first update is after that step), so the
    spans tile the step axis. The base measurement (point 0) belongs to the first stage.
    """
    pts = _points(dyn)
    if "stage" not in pts.columns or pts.empty:
        return []
    spans: list[tuple[Any, float, float]] = []
    start = float(pts["step"].iloc[0])
    for stage, g in pts.groupby((pts["stage"] != pts["stage"].shift()).cumsum(), sort=False):
        end = float(g["step"].max())
        spans.append((g["stage"].iloc[0], start, end))
        start = end
    # the base point (stage of the first stage, step 0 only) is not a stage of its own
    if len(spans) > 1 and spans[0][1] == spans[0][2]:
        first = spans.pop(0)
        spans[0] = (spans[0][0], first[1], spans[0][2])
    return spans


def stage_boundaries(dyn: pd.DataFrame) -> list[tuple[float, Any, Any]]:
    """``(step, stage before, stage after)`` where one sequential stage ends and the next begins."""
    spans = stage_spans(dyn)
    return [(a[2], a[0], b[0]) for a, b in zip(spans, spans[1:])]


def plot_learning_curve(
    rows: pd.DataFrame,
    ax: Any = None,
    *,
    boundaries: Sequence[tuple[float, Any, Any]] | None = None,
    metrics: Sequence[str] = ("loss", "token_acc", "exact"),
    sample_stage: Any = None,
    title: str | None = None,
    legend: bool = True,
) -> Any:
    """The learning curve of one sample.

    Args:
        rows: The sample's rows of ``dynamics.parquet`` (columns ``step`` and the metrics;
            ``stage`` and ``sample_stage`` when known).
        ax: Axes to draw on; a new figure (not registered with pyplot) when None.
        boundaries: Stage ends as from :func:`stage_boundaries` of the whole table; computed
            from ``rows`` when None.
        metrics: Columns to draw; ``loss`` on the left axis, rates (accuracy, exact, pass@N,
            probabilities) on a right axis from 0 to 1.
        sample_stage: The stage the sample is trained in (shaded); read from ``rows`` when None.
        title: Axes title.
        legend: Draw a legend.

    Returns:
        The (left) axes; the right axes is ``ax.right_ax`` when rates are drawn.
    """
    if ax is None:
        from matplotlib.figure import Figure

        ax = Figure(figsize=(6.4, 2.8)).add_subplot(111)
    d = rows.sort_values("step")
    steps = d["step"].to_numpy(dtype=float)
    left = [m for m in metrics if m not in _RIGHT and m in d.columns]
    right = [m for m in metrics if m in _RIGHT and m in d.columns]
    handles = []
    for m in left:
        style = dict(CURVE_STYLE.get(m, {"label": m}))
        (h,) = ax.plot(steps, d[m].to_numpy(dtype=float), markersize=4, linewidth=1.6, **style)
        handles.append(h)
    ax.set_xlabel("training step")
    if left:
        ax.set_ylabel(CURVE_STYLE.get(left[0], {}).get("label", left[0]) if len(left) == 1 else "value")
    rax = None
    if right:
        rax = ax.twinx()
        for m in right:
            style = dict(CURVE_STYLE.get(m, {"label": m}))
            y = d[m].to_numpy(dtype=float)
            (h,) = rax.plot(steps, y, markersize=4, linewidth=1.4, alpha=0.9, **style)
            handles.append(h)
        rax.set_ylim(-0.05, 1.05)
        rax.set_ylabel("rate")
    ax.right_ax = rax
    bounds = list(boundaries) if boundaries is not None else stage_boundaries(d)
    for step, before, after in bounds:
        ax.axvline(step, color="#555555", linestyle="--", linewidth=1.0, zorder=0)
        ax.annotate(f"stage {before} → {after}", xy=(step, 1.0), xycoords=("data", "axes fraction"),
                    xytext=(3, -10), textcoords="offset points", fontsize=7, color="#555555")
    if sample_stage is None and "sample_stage" in d.columns and len(d):
        sample_stage = d["sample_stage"].iloc[0]
    if sample_stage is not None and bounds:
        edges = [float(steps.min()) if len(steps) else 0.0] + [b[0] for b in bounds] + [
            float(steps.max()) if len(steps) else 1.0]
        stages = [bounds[0][1]] + [b[2] for b in bounds]
        for k, st in enumerate(stages):
            if str(st) == str(sample_stage):
                ax.axvspan(edges[k], edges[k + 1], color="#f2e6b8", alpha=0.45, zorder=-1, linewidth=0)
    if len(steps):
        ax.set_xlim(float(np.min(steps)) - 0.3, float(np.max(steps)) + 0.3)
    if title:
        ax.set_title(title, fontsize=9)
    if legend and handles:
        ax.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=len(handles),
                  fontsize=7, frameon=False)
    return ax
