"""When has a stage of fine-tuning converged? The window rule SFT stops on, and its report.

Incomplete learning is failure *after* convergence, so SFT trains each stage until this rule
holds, with the preset's ``epochs`` as a safety cap. At every evaluation point of a stage the
:class:`ConvergenceMonitor` receives the mean response loss of the samples that stage trains
on and each one's learned verdict (by the run's criterion). The stage has converged at a
point when, over the last ``window`` points (that one included):

* the mean loss moved by at most ``max(loss_tol, rel_tol * loss)`` (max - min over the
  window): the optimisation has flattened — the absolute floor matters once the loss is near
  zero, where any relative change is large;
* at most ``flip_share`` of the samples changed verdict within the window: the per-sample
  dynamics are stable, so the verdict taken at the end is not a snapshot of a moving set.
  A sample that *oscillates* — over the last ``2 * window`` points its verdict went both up
  and down, as the two answers of a duplicated question do when SGD alternates between
  them — is not counted: more training does not settle it, its forgetting events are a
  finding (the report counts them), and on a small set one such pair is more than any share;

* the learning rate is at least ``min_lr_share`` of its peak: under a rate the schedule has
  annealed towards zero every loss goes flat and every verdict freezes — that is the schedule
  stopping the optimisation, not the optimisation finishing (a cosine schedule over the cap
  is below 10% of its peak in its last fifth). A stage that only flattens there reaches the
  cap and is reported as not converged, with the reason;

and the stage has trained for at least ``window`` points. Every stage gets a status —
``converged at step S`` or ``not converged: stopped at the cap`` — written to
``RUN/convergence.json`` and printed; a run with the rule switched off says so too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["ConvergenceRule", "ConvergenceMonitor", "StageStatus", "describe", "lr_share"]


@dataclass(frozen=True)
class ConvergenceRule:
    """The window rule (see the module docstring); thresholds are stated once, here.

    Attributes:
        window: evaluation points the rule looks back over (3: one point can be noise, three
            in a row that agree are a plateau).
        loss_tol: absolute floor of the allowed loss movement, in nats per token (0.01: a
            change a tiny model's greedy verdicts do not notice).
        rel_tol: allowed movement relative to the current mean loss (2%).
        flip_share: largest share of samples whose verdict may still change within the
            window (2%: a few oscillating samples are a finding, forgetting, not a reason
            to train on).
        min_lr_share: the learning rate, as a share of its peak, below which a flat loss
            says nothing (10%: a tenth of the rate moves the weights a tenth as far per
            step, so a plateau there is the schedule's).
    """

    window: int = 3
    loss_tol: float = 0.01
    rel_tol: float = 0.02
    flip_share: float = 0.02
    min_lr_share: float = 0.1

    def __post_init__(self) -> None:
        if self.window < 2:
            raise ValueError(f"convergence window must be at least 2 points, got {self.window}")
        if min(self.loss_tol, self.rel_tol, self.flip_share, self.min_lr_share) < 0:
            raise ValueError("convergence tolerances must be non-negative")


@dataclass
class StageStatus:
    """What the rule found for one stage."""

    stage: int | str
    converged: bool
    step: int
    epoch: float
    points: int
    reason: str
    checked: bool = True
    history: list[dict[str, Any]] = field(default_factory=list)

    def line(self) -> str:
        """One readable line: ``stage 0: converged at step 120 (epoch 6.0)`` or the cap."""
        if not self.checked:
            return f"stage {self.stage}: convergence not checked (fixed budget), stopped at step {self.step}"
        if self.converged:
            return f"stage {self.stage}: converged at step {self.step} (epoch {self.epoch:g}; {self.reason})"
        return f"stage {self.stage}: not converged: stopped at the cap, step {self.step} (epoch {self.epoch:g}; {self.reason})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


class ConvergenceMonitor:
    """Feeds the points of one stage to a :class:`ConvergenceRule`.

    Args:
        rule: the window rule.
        stage: the stage this monitor watches (for the report).
    """

    def __init__(self, rule: ConvergenceRule, stage: int | str = 0) -> None:
        self.rule = rule
        self.stage = stage
        self.history: list[dict[str, Any]] = []
        self._verdicts: list[np.ndarray] = []
        self.reason = "fewer points than the window"

    def update(self, point: int, step: int, epoch: float, losses: np.ndarray, verdicts: np.ndarray,
               lr_share: float | None = None) -> bool:
        """Add a point (per-sample losses and learned verdicts of the stage's samples, in a
        fixed order, and the learning rate as a share of its peak, None when unknown);
        returns whether the stage has now converged."""
        losses = np.asarray(losses, dtype=float)
        verdicts = np.asarray(verdicts, dtype=bool)
        if self._verdicts and len(verdicts) != len(self._verdicts[-1]):
            raise ValueError(f"point {point}: {len(verdicts)} samples, the stage had {len(self._verdicts[-1])}")
        mean = float(losses.mean()) if len(losses) else 0.0
        if self.history and self.history[-1]["point"] == point:  # a point redone after a resume
            self.history.pop()
            self._verdicts.pop()
        self.history.append({"point": point, "step": step, "epoch": epoch, "mean_loss": mean,
                             "learned_share": float(verdicts.mean()) if len(verdicts) else 0.0,
                             "lr_share": None if lr_share is None else float(lr_share)})
        self._verdicts.append(verdicts)
        return self.converged()

    def converged(self) -> bool:
        """Whether the rule holds at the latest point (the reason is kept in ``self.reason``)."""
        w = self.rule.window
        if len(self.history) < w:
            self.reason = f"{len(self.history)} point(s) in the stage, the window is {w}"
            return False
        loss = np.array([h["mean_loss"] for h in self.history[-w:]])
        moved = float(loss.max() - loss.min())
        allowed = max(self.rule.loss_tol, self.rule.rel_tol * float(loss[-1]))
        v = np.stack(self._verdicts[-w:])
        recent = np.stack(self._verdicts[-2 * w:]).astype(np.int8)
        steps = np.diff(recent, axis=0)
        oscillating = (steps > 0).any(axis=0) & (steps < 0).any(axis=0)
        changed = (v != v[0]).any(axis=0) & ~oscillating
        flips = float(changed.mean()) if v.shape[1] else 0.0
        self.reason = (f"mean loss {loss[-1]:.4f}, moved {moved:.4f} over {w} points (allowed {allowed:.4f}); "
                       f"{flips:.1%} of samples changed verdict (allowed {self.rule.flip_share:.0%})"
                       + (f", {int(oscillating.sum())} oscillating (not counted)" if oscillating.any() else ""))
        lr = self.history[-1].get("lr_share")
        annealed = lr is not None and lr < self.rule.min_lr_share
        if annealed:
            self.reason += (f"; learning rate at {lr:.0%} of its peak (a flat loss counts from "
                            f"{self.rule.min_lr_share:.0%}: below, the schedule has stopped the optimisation)")
        return moved <= allowed and flips <= self.rule.flip_share and not annealed

    def status(self, converged: bool, step: int, epoch: float, checked: bool = True) -> StageStatus:
        """The stage's final status."""
        reason = self.reason if checked else "the rule is off for this run"
        return StageStatus(self.stage, converged, step, epoch, len(self.history), reason, checked, list(self.history))


def lr_share(scheduler: str, step: int, total_steps: int, warmup: float) -> float:
    """The learning rate at ``step`` of a stage of ``total_steps`` as a share of its peak,
    under transformers' schedule ``scheduler`` with ``warmup`` (a share of the steps when
    below 1, else a count, as ``TrainingArguments.warmup_steps`` takes it)."""
    import torch
    from transformers import get_scheduler

    n_warm = math.ceil(warmup * total_steps) if warmup < 1 else int(warmup)
    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    sched = get_scheduler(scheduler, opt, num_warmup_steps=n_warm, num_training_steps=max(total_steps, 1))
    return float(sched.lr_lambdas[0](min(max(step, 0), total_steps)))


def describe(statuses: list[dict[str, Any]]) -> str:
    """The lines of a run's ``convergence.json`` (one per stage)."""
    return "\n".join(StageStatus(**s).line() for s in statuses)
