"""Early stopping from interactions, and from the validation loss, on a dynamics summary.

**Stopping** (:func:`denoising_end`). Per checkpoint, the removed and emerged counts of each
prompt are divided by its base count ``|Ω_0|`` and averaged over prompts: ``r_t`` and ``e_t``.
Rule ``"net"`` (the default) ends the denoising phase at the checkpoint that maximises
``r_t − e_t``: up to it, each step removed more base interactions than it added new ones; after
it, new (over-fitted) interactions appear faster than old ones go. Ties go to the earliest
checkpoint. Rule ``"turn"`` takes the first checkpoint after which ``r`` stops growing while
``e`` grows. When the best checkpoint is the last one, the phase has not visibly ended within
the run (``detected=False``); when emergences outnumber removals at every checkpoint there is
no denoising phase at all (``detected=False`` too). Rule ``"plateau"`` takes the first
checkpoint where removals reach 90% of their maximum. Only fine-tuned checkpoints (``t ≥ 1``)
are candidates. The loss-based point (:func:`lowest_loss`) is the checkpoint
with the lowest held-out (validation) loss.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

__all__ = [
    "STOP_RULES",
    "StoppingPoint",
    "denoising_curve",
    "denoising_end",
    "lowest_loss",
    "rule_table",
    "stopping_summary",
    "stopping_table",
]

STOP_RULES = ("net", "turn", "plateau")
"""Rules of :func:`denoising_end`."""


@dataclass(frozen=True)
class StoppingPoint:
    """A stopping checkpoint chosen by a rule.

    Attributes:
        step: The checkpoint's step.
        index: Its position in the checkpoint order.
        rule: The rule that chose it.
        score: The rule's value there (``r − e`` or the validation loss).
        detected: False when the rule found no end within the run (the last checkpoint).
        reason: One sentence a person can read.
    """

    step: int
    index: int
    rule: str
    score: float
    detected: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return asdict(self)


def denoising_curve(summary: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``steps``, ``r_t`` and ``e_t`` (removed / emerged shares of ``|Ω_0|``) of a summary."""
    s = summary.sort_values("step")
    return (s["step"].to_numpy(dtype=np.int64), s["share_removed"].to_numpy(dtype=np.float64),
            s["share_emerged"].to_numpy(dtype=np.float64))


def denoising_end(steps: Sequence[int], removed: Sequence[float], emerged: Sequence[float],
                  rule: str = "net", plateau: float = 0.9) -> StoppingPoint:
    """The end of the denoising phase: an interaction-based early-stopping checkpoint.

    Only fine-tuned checkpoints (``t ≥ 1``) are candidates; the base model (``t = 0``) has
    ``r = e = 0`` by definition.

    Args:
        steps: Checkpoint steps in order (the first is the base model).
        removed: ``r_t``, removed base interactions (share of ``|Ω_0|``, or counts).
        emerged: ``e_t``, newly emerged interactions, in the same unit.
        rule: ``"net"``: argmax over ``t ≥ 1`` of ``r_t − e_t`` (earliest on ties);
            ``"turn"``: the first ``t ≥ 1`` with ``r_{t+1} ≤ r_t`` and ``e_{t+1} > e_t``;
            ``"plateau"``: the first ``t ≥ 1`` where removals reach ``plateau · max r``.
        plateau: Fraction of the largest removal share for rule ``"plateau"``.

    Returns:
        The stopping point. ``detected=False`` when no end is seen within the run: the rule
        picks the last checkpoint (still denoising), or, for ``"net"``, emergences outnumber
        removals at every checkpoint (no denoising phase at all: the earliest best checkpoint
        is returned), or, for ``"turn"``, no turn happens (the last checkpoint is returned).

    Raises:
        ValueError: Unknown rule, fewer than two checkpoints, mismatched inputs.
    """
    if rule not in STOP_RULES:
        raise ValueError(f"unknown stopping rule {rule!r}; use one of {STOP_RULES}")
    s = np.asarray(steps, dtype=np.int64)
    r, e = np.asarray(removed, dtype=np.float64), np.asarray(emerged, dtype=np.float64)
    if s.size < 2 or not (s.shape == r.shape == e.shape):
        raise ValueError(f"steps, removed and emerged need the base and at least one more checkpoint, "
                         f"of one length; got {s.size}, {r.size}, {e.size}")
    last = s.size - 1
    if rule == "net":
        net = np.nan_to_num(r - e, nan=-np.inf)
        i = 1 + int(np.flatnonzero(net[1:] >= net[1:].max() - 1e-12)[0])
        if net[i] <= 0:
            return StoppingPoint(int(s[i]), i, rule, float(net[i]), False,
                                 "emergences outnumber removals at every checkpoint, so there is no "
                                 f"denoising phase; step {s[i]} has the least net growth")
        if i == last:
            return StoppingPoint(int(s[i]), i, rule, float(net[i]), False,
                                 f"removed minus emerged still highest at the last checkpoint (step {s[i]}): "
                                 "the denoising phase has not ended within this run")
        return StoppingPoint(int(s[i]), i, rule, float(net[i]), True,
                             f"removed minus emerged peaks at step {s[i]} ({net[i]:.3f}); later checkpoints "
                             "add new interactions faster than they remove base ones")
    if rule == "plateau":
        top = float(np.nanmax(r[1:]))
        if not top > 0:
            return StoppingPoint(int(s[last]), last, rule, 0.0, False, "no base interaction is ever removed")
        i = 1 + int(np.flatnonzero(np.nan_to_num(r[1:]) >= plateau * top)[0])
        return StoppingPoint(int(s[i]), i, rule, float(r[i]), i < last,
                             f"removals reach {plateau:.0%} of their maximum ({top:.3f}) at step {s[i]}"
                             + ("" if i < last else ", the last checkpoint: still denoising"))
    for i in range(1, last):
        if r[i + 1] <= r[i] and e[i + 1] > e[i]:
            return StoppingPoint(int(s[i]), i, rule, float(r[i] - e[i]), True,
                                 f"after step {s[i]} removals stop growing while emergences grow")
    return StoppingPoint(int(s[last]), last, rule, float(r[last] - e[last]), False,
                         "removals never stop growing while emergences grow: no turn within this run")


def lowest_loss(steps: Sequence[int], losses: Sequence[float]) -> StoppingPoint:
    """The checkpoint with the lowest validation loss (earliest on ties; NaNs ignored).

    Raises:
        ValueError: Empty or mismatched inputs, or no finite loss.
    """
    s, l = np.asarray(steps, dtype=np.int64), np.asarray(losses, dtype=np.float64)
    if s.size == 0 or s.shape != l.shape:
        raise ValueError(f"steps and losses must be non-empty and of one length, got {s.size}, {l.size}")
    if not np.isfinite(l).any():
        raise ValueError("no finite validation loss")
    i = int(np.nanargmin(np.where(np.isfinite(l), l, np.nan)))
    detected = i < s.size - 1
    reason = (f"validation loss is lowest at step {s[i]} ({l[i]:.4f})" if detected else
              f"validation loss still falling at the last checkpoint (step {s[i]}, {l[i]:.4f})")
    return StoppingPoint(int(s[i]), i, "val_loss", float(l[i]), detected, reason)


def stopping_summary(summary: pd.DataFrame, rule: str = "net",
                     metrics: Sequence[str] = ("val_loss", "test_loss", "test_acc", "test_first_acc",
                                               "heldout_acc", "train_exact", "train_loss")
                     ) -> dict[str, Any]:
    """Interaction-based and loss-based stopping points, and what each buys.

    Args:
        summary: Output of :func:`summarize_dynamics` (with ``val_loss`` for the loss rule).
        rule: Rule of :func:`denoising_end`.
        metrics: Summary columns to report at each stopping point.

    Returns:
        ``{"interaction": StoppingPoint dict, "loss": … or None, "final_step": int,
        "at": {"interaction" | "loss" | "final" | "base": {step, metric: value}}}``.
    """
    s = summary.sort_values("step").reset_index(drop=True)
    steps, r, e = denoising_curve(s)
    inter = denoising_end(steps, r, e, rule)
    loss = lowest_loss(steps, s["val_loss"]) if "val_loss" in s and s["val_loss"].notna().any() else None

    def at(i: int) -> dict[str, Any]:
        row = s.iloc[i]
        return {"step": int(row["step"]), **{m: (None if pd.isna(row[m]) else float(row[m]))
                                              for m in metrics if m in s}}

    points = {"base": at(0), "interaction": at(inter.index)}
    if loss is not None:
        points["loss"] = at(loss.index)
    points["final"] = at(len(s) - 1)
    return {"rule": rule, "interaction": inter.to_dict(), "loss": loss.to_dict() if loss else None,
            "final_step": int(steps[-1]), "at": points}


def rule_table(summary: pd.DataFrame,
               metrics: Sequence[str] = ("val_loss", "test_loss", "test_acc", "test_first_acc", "train_exact")
               ) -> pd.DataFrame:
    """Every stopping rule on one summary: its step, whether it found an end, and the metrics there.

    Returns:
        One row per rule (each of :data:`STOP_RULES`, then ``val_loss``) with ``rule``,
        ``step``, ``detected``, ``reason`` and the ``metrics`` columns present in ``summary``.
    """
    s = summary.sort_values("step").reset_index(drop=True)
    steps, r, e = denoising_curve(s)
    points = [denoising_end(steps, r, e, rule) for rule in STOP_RULES]
    if "val_loss" in s and s["val_loss"].notna().any():
        points.append(lowest_loss(steps, s["val_loss"]))
    rows = [{"rule": p.rule, "step": p.step, "detected": p.detected,
             **{m: s.loc[p.index, m] for m in metrics if m in s}, "reason": p.reason} for p in points]
    return pd.DataFrame(rows)


def stopping_table(stopping: Mapping[str, Any]) -> pd.DataFrame:
    """The ``"at"`` part of :func:`stopping_summary` as a table, one row per stopping point."""
    order = ["base", "interaction", "loss", "final"]
    names = sorted(stopping["at"], key=lambda n: order.index(n) if n in order else len(order))
    return pd.DataFrame([{"point": n, **stopping["at"][n]} for n in names])

