"""Scoring a diagnosis against the planted truth of a world.

Only unlearned samples are scored: a sample planted with a cause but learned anyway is not
an instance of incomplete learning and is left out. Unlearned samples planted ``none`` stay
in (as true label ``none``): attributing them to a cause is a false positive of that cause.
Per cause: precision, recall, F1; macro-F1 is the mean F1 over the causes that have unlearned
samples in the truth (a world without, say, left forgetting does not score that cause, but a
sample wrongly diagnosed with it still costs the recall of its true cause).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ilpnb.diagnose.attribution import CAUSE_ORDER
from ilpnb.runs import read_truth_file  # re-exported: the one truth.jsonl reader

__all__ = ["DiagnosisScore", "score_diagnosis", "read_truth_file"]


@dataclass
class DiagnosisScore:
    """The confusion matrix (true planted cause x diagnosed cause) and per-cause metrics."""

    confusion: pd.DataFrame
    per_cause: pd.DataFrame
    macro_f1: float
    scored: int
    excluded_learned: int
    extra: dict = field(default_factory=dict)

    def to_text(self) -> str:
        """A readable report."""
        lines = [f"scored {self.scored} unlearned samples ({self.excluded_learned} planted-but-learned left out)",
                 "", "confusion (rows: planted, columns: diagnosed)", self.confusion.to_string(), "",
                 self.per_cause.round(3).to_string(), "", f"macro-F1 = {self.macro_f1:.3f}"]
        return "\n".join(lines)


def score_diagnosis(diagnosis: pd.DataFrame, truth: pd.Series) -> DiagnosisScore:
    """Score a diagnosis table (``id``, ``learned``, ``cause``) against planted causes.

    Raises:
        ValueError: diagnosis ids missing from the truth.
    """
    d = diagnosis.set_index(diagnosis["id"].astype(str))
    missing = [i for i in d.index if i not in truth.index]
    if missing:
        raise ValueError(f"{len(missing)} diagnosed ids are not in the truth file, e.g. {missing[:3]}")
    d = d.assign(planted=truth.reindex(d.index))
    excluded = int(((d["planted"] != "none") & d["learned"].astype(bool)).sum())
    un = d[~d["learned"].astype(bool)]
    rows = ["none"] + list(CAUSE_ORDER)
    cols = list(CAUSE_ORDER) + ["unattributed"]
    conf = pd.crosstab(un["planted"], un["cause"]).reindex(index=rows, columns=cols, fill_value=0)
    metrics = []
    for c in CAUSE_ORDER:
        tp = int(((un["planted"] == c) & (un["cause"] == c)).sum())
        fp = int(((un["planted"] != c) & (un["cause"] == c)).sum())
        fn = int(((un["planted"] == c) & (un["cause"] != c)).sum())
        p = tp / (tp + fp) if tp + fp else np.nan
        r = tp / (tp + fn) if tp + fn else np.nan
        f1 = 2 * p * r / (p + r) if tp else (0.0 if (tp + fp + fn) else np.nan)
        metrics.append({"cause": c, "precision": p, "recall": r, "f1": f1, "support": tp + fn})
    per = pd.DataFrame(metrics).set_index("cause")
    present = per[per["support"] > 0]  # causes the world planted (and left unlearned)
    macro = float(present["f1"].mean()) if len(present) else float("nan")
    return DiagnosisScore(confusion=conf, per_cause=per, macro_f1=macro, scored=len(un), excluded_learned=excluded)
