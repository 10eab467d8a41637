"""Per-sample quantities derived from the dynamics table.

From ``dynamics.parquet`` (a row per sample × evaluation point) :func:`summarize_samples`
gives one row per sample: learned at the end (by a criterion), the step it was first
learned, how many forgetting events (learned -> not learned) it had, whether it was
learned at the end of each earlier stage, and the final loss slope. :func:`cohen_kappa`
and :func:`seed_agreement` measure how stable the unlearned set is across seeds.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ilpnb.probe.criteria import Thresholds, learned

__all__ = ["summarize_samples", "cohen_kappa", "seed_agreement"]


def summarize_samples(dyn: pd.DataFrame, criterion: str = "exact", thresholds: Thresholds = Thresholds()) -> pd.DataFrame:
    """One row per sample with its learning history.

    Columns: ``id``, ``sample_stage``, ``learned`` (at the final point), ``learned_base``
    (at step 0), ``first_learned_step`` (NaN if never), ``forgetting_events``,
    ``max_stage_learned`` (learned at the end of any stage before the last),
    ``final_loss``, ``base_loss``, ``loss_slope`` (loss change per point over the last
    points, negative when still improving).
    """
    d = dyn.sort_values(["point"]).copy()
    d["_learned"] = learned(d, criterion, thresholds).to_numpy()
    last_point = d["point"].max()
    stage_ends = d.groupby("stage")["point"].max()
    final_stage = d.loc[d["point"] == last_point, "stage"].iloc[0]
    early_ends = set(stage_ends[stage_ends.index != final_stage].tolist()) - {0}
    rows = []
    for sid, g in d.groupby("id", sort=False):
        flags = g["_learned"].to_numpy()
        steps = g["step"].to_numpy()
        first = steps[flags.argmax()] if flags.any() else np.nan
        events = int(np.sum(flags[:-1] & ~flags[1:]))
        early = g[g["point"].isin(early_ends)]["_learned"].any() if early_ends else False
        tail = g["loss"].to_numpy()[-3:]
        slope = float(np.polyfit(np.arange(len(tail)), tail, 1)[0]) if len(tail) >= 2 else 0.0
        rows.append({
            "id": sid,
            "sample_stage": int(g["sample_stage"].iloc[0]),
            "learned": bool(flags[-1]),
            "learned_base": bool(flags[0]),
            "first_learned_step": first,
            "forgetting_events": events,
            "max_stage_learned": bool(early),
            "final_loss": float(g["loss"].iloc[-1]),
            "base_loss": float(g["loss"].iloc[0]),
            "loss_slope": slope,
        })
    return pd.DataFrame(rows)


def cohen_kappa(a: np.ndarray, b: np.ndarray) -> float:
    """Cohen's kappa of two boolean labelings of the same samples (1.0 = identical)."""
    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    po = float(np.mean(a == b))
    pa, pb = a.mean(), b.mean()
    pe = pa * pb + (1 - pa) * (1 - pb)
    return 1.0 if pe == 1.0 else float((po - pe) / (1 - pe))


def seed_agreement(samples_a: pd.DataFrame, samples_b: pd.DataFrame) -> dict[str, float]:
    """Agreement of the unlearned sets of two runs (e.g. two seeds) on the same samples.

    Returns:
        ``kappa``, ``agreement`` (share of samples with the same verdict), the unlearned
        share of each run, and the Jaccard overlap of the unlearned sets.
    """
    m = samples_a[["id", "learned"]].merge(samples_b[["id", "learned"]], on="id", suffixes=("_a", "_b"))
    ua, ub = ~m["learned_a"].to_numpy(), ~m["learned_b"].to_numpy()
    union = np.sum(ua | ub)
    return {
        "kappa": cohen_kappa(ua, ub),
        "agreement": float(np.mean(ua == ub)),
        "unlearned_a": float(ua.mean()),
        "unlearned_b": float(ub.mean()),
        "jaccard": float(np.sum(ua & ub) / union) if union else 1.0,
        "samples": int(len(m)),
    }
