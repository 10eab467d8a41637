"""Learnedness criteria: when does a sample count as learned at an evaluation point?

Four criteria over the columns of ``dynamics.parquet``:

* ``exact`` — greedy decoding reproduces the response exactly;
* ``token_acc`` — token accuracy at least ``token_acc`` (default 0.9);
* ``loss`` — mean response NLL at most ``loss`` (default 0.5 nats per token);
* ``mc`` — the multiple-choice criterion of the published study: pass@N of the gold option
  at least T (default N = 5, T = 0.2); samples without options fall back to ``exact``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["CRITERIA", "Thresholds", "learned"]

CRITERIA = ("exact", "token_acc", "loss", "mc")


@dataclass(frozen=True)
class Thresholds:
    """Thresholds of the criteria."""

    token_acc: float = 0.9
    loss: float = 0.5
    mc_n: int = 5
    mc_threshold: float = 0.2


def learned(rows: pd.DataFrame, criterion: str = "exact", thresholds: Thresholds = Thresholds()) -> pd.Series:
    """Boolean Series: whether each row (sample at a point) counts as learned.

    Raises:
        ValueError: unknown criterion, or ``mc`` without the pass@N column.
    """
    if criterion == "exact":
        return rows["exact"].astype(bool)
    if criterion == "token_acc":
        return rows["token_acc"] >= thresholds.token_acc
    if criterion == "loss":
        return rows["loss"] <= thresholds.loss
    if criterion == "mc":
        col = f"pass@{thresholds.mc_n}"
        if col not in rows:
            raise ValueError(f"criterion 'mc' needs column '{col}' (track with options and pass_n including {thresholds.mc_n})")
        p = rows[col].to_numpy(dtype=float)
        return pd.Series(np.where(np.isnan(p), rows["exact"].astype(bool), p >= thresholds.mc_threshold),
                         index=rows.index)
    raise ValueError(f"unknown criterion '{criterion}' (known: {', '.join(CRITERIA)})")
