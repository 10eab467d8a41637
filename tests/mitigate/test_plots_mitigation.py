"""Mitigation plots: bars per arm present, and the crossover heatmap with one annotated cell per pair."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
import pytest

from ilpnb.mitigate.crossover import crossover_matrix
from ilpnb.mitigate.experiment import summarize
from ilpnb.plots.mitigation import plot_crossover, plot_recovery


def _results() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame([{"seed": s, "arm": a, "method": "replay", "target": "left_forgetting", "cause": c,
                          "unlearned": 5, "recovery": float(rng.uniform()), "recovery_truth": 0.5,
                          "collateral_loss": 0.0, "held_out_recall": 0.3, "steps": 10, "tokens": 100, "cpt_tokens": 0}
                         for s in range(3) for a in ("treated", "generic", "placebo", "unmodified")
                         for c in ("left_forgetting", "rare_pattern")])


def test_recovery_bars_one_per_arm_and_row() -> None:
    ax = plot_recovery(summarize(_results()))
    bars = [c for c in ax.containers if hasattr(c, "patches")]
    assert len(bars) == 4 and all(len(c.patches) == 2 for c in bars)  # 4 arms x 2 causes
    assert {t.get_text() for t in ax.get_legend().get_texts()} == {"treated", "generic", "placebo", "unmodified"}


def test_crossover_heatmap_annotates_every_cell_with_its_interval() -> None:
    rows = [{"seed": s, "method": m, "cause": c, "unlearned": 4, "recovery": 0.1 * s + (0.5 if m == "replay" else 0.0),
             "unmodified": 0.1} for s in range(3) for m in ("replay", "upsample") for c in ("left_forgetting", "rare_pattern")]
    matrix = crossover_matrix(pd.DataFrame(rows))
    assert len(matrix) == 4 and (matrix["recovery_lo"] < matrix["recovery"]).all()
    ax = plot_crossover(matrix)
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 4 and all("[" in t for t in texts)
    assert "0.60" in " ".join(texts)  # replay: mean of 0.5, 0.6, 0.7
    gain = plot_crossover(matrix, "gain")
    assert len(gain.texts) == 4
    with pytest.raises(ValueError, match="needs columns"):
        plot_crossover(matrix, "nope")
