"""The learning-curve plot: stage spans and boundaries, axes in and out, nothing shown."""

from __future__ import annotations

import pandas as pd
from matplotlib.figure import Figure
from widgets_helpers import dynamics

from ilpnb.plots.samples import plot_learning_curve, stage_boundaries, stage_spans


def test_stage_spans_tile_the_steps_and_boundaries_sit_at_stage_ends() -> None:
    dyn = dynamics()
    assert stage_spans(dyn) == [(0, 0.0, 4.0), (1, 4.0, 16.0)]
    assert stage_boundaries(dyn) == [(4.0, 0, 1)]


def test_mixed_run_has_one_stage_and_no_boundary() -> None:
    dyn = pd.DataFrame({"point": [0, 1, 2], "step": [0, 3, 6], "stage": [0, "all", "all"]})
    assert stage_spans(dyn) == [("all", 0.0, 6.0)]
    assert stage_boundaries(dyn) == []


def test_plot_returns_the_axes_it_was_given_with_three_curves() -> None:
    dyn = dynamics()
    rows = dyn[dyn["id"] == "s3"]
    ax = Figure().add_subplot(111)
    out = plot_learning_curve(rows, ax, boundaries=stage_boundaries(dyn), title="s3")
    assert out is ax
    assert [l.get_label() for l in ax.get_lines() if not l.get_label().startswith("_")] == ["loss (nats/token)"]
    right = [l.get_label() for l in ax.right_ax.get_lines()]
    assert right == ["token accuracy", "exact reproduction"]
    assert list(ax.get_lines()[0].get_xdata()) == [0, 2, 4, 10, 16]
    vlines = [l for l in ax.get_lines() if list(l.get_xdata()) == [4.0, 4.0]]
    assert len(vlines) == 1  # the stage 0 -> 1 boundary
    assert any("stage 0 → 1" in t.get_text() for t in ax.texts)
    assert ax.right_ax.get_ylim() == (-0.05, 1.05)
    assert len(ax.patches) == 1  # the sample's own stage is shaded
    assert ax.get_title() == "s3"


def test_plot_makes_its_own_axes_and_skips_missing_metrics() -> None:
    rows = dynamics().query("id == 's1'").drop(columns=["token_acc"])
    ax = plot_learning_curve(rows, metrics=("loss", "token_acc", "exact", "pass@5"), legend=False)
    assert ax.figure is not None and ax.get_legend() is None
    assert [l.get_label() for l in ax.right_ax.get_lines()] == ["exact reproduction", "MC pass@5"]
