"""Free in-training statistics: per-sample numbers read off the training forward pass.

The training step already computes every sample's logits; :func:`batch_stats` turns them
(with the batch's labels) into, per sample, the response-token loss, the token accuracy,
whether every teacher-forced argmax matched (``exact``: greedy decoding would reproduce the
response at that moment) and the mean probability of the gold tokens (``p_gold``) — no
extra forward pass. :class:`StatsRecorder` keeps them per micro-batch, keyed by sample index
and optimizer step, and hands them out (gathered over processes by the caller) as a table:
``RUN/train_dynamics.parquet`` has one row per sample × visit (``id``, ``step``, ``stage``,
``epoch``, ``point``, ``loss``, ``token_acc``, ``exact``, ``p_gold``, ``n_tokens``).

From that table:

* :func:`forgetting_events` — Toneva et al. (2019): a forgetting event is a visit at which a
  sample learned at its previous visit is no longer learned; samples learned at some visit
  and never forgotten are *unforgettable*;
* :func:`cartography` — Dataset Cartography (Swayamdipta et al., 2020): per sample the
  *confidence* (mean over epochs of ``p_gold``), the *variability* (its standard deviation
  over epochs) and the *correctness* (share of epochs with ``exact``);
* :func:`summarize_training` — both, one row per sample.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch

__all__ = ["STAT_COLUMNS", "StatsRecorder", "batch_stats", "cartography", "forgetting_events",
           "load_train_dynamics", "summarize_training"]

#: the per-sample statistics of one training visit (besides ``id``, ``step``, ``stage``, ``epoch``, ``point``)
STAT_COLUMNS = ("loss", "token_acc", "exact", "p_gold", "n_tokens")


@torch.no_grad()
def batch_stats(logits: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample statistics of a teacher-forced batch.

    Args:
        logits: ``(batch, seq, vocab)`` logits of the training forward pass (not shifted).
        labels: ``(batch, seq)`` training labels, -100 where no loss is taken (prompt, padding).

    Returns:
        Tensors of shape ``(batch,)`` on the logits' device: ``loss`` (mean NLL of the labelled
        tokens), ``token_acc``, ``exact`` (every argmax equals its target), ``p_gold`` (mean
        probability of the target tokens) and ``n_tokens``; computed in float32 on the labelled
        positions only, as :func:`ilpnb.probe.scoring.score_continuations` computes them.
    """
    if logits.dim() != 3 or labels.shape != logits.shape[:2]:
        raise ValueError(f"batch_stats: logits {tuple(logits.shape)} and labels {tuple(labels.shape)} "
                         "must be (batch, seq, vocab) and (batch, seq)")
    target = labels[:, 1:]
    sel = target != -100
    rows = sel.nonzero(as_tuple=True)[0]
    picked = logits.detach()[:, :-1][sel].float()  # (labelled tokens, vocab): the only positions scored
    gold = target[sel]
    tok_lp = picked.gather(-1, gold.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(picked, dim=-1)
    ok = (picked.argmax(-1) == gold).float()
    n = sel.sum(1)
    batch = labels.shape[0]

    def per_row(values: torch.Tensor) -> torch.Tensor:
        return torch.zeros(batch, dtype=torch.float32, device=logits.device).index_add_(0, rows, values.float())

    denom = n.clamp(min=1).float()
    correct = per_row(ok)
    return {"loss": -per_row(tok_lp) / denom, "token_acc": correct / denom, "exact": correct == n.float(),
            "p_gold": per_row(tok_lp.exp()) / denom, "n_tokens": n}


@dataclass
class StatsRecorder:
    """The in-training statistics of one process since the last :meth:`pop`.

    Tensors stay on the device until :meth:`pop` (no synchronisation per micro-batch).
    """

    parts: list[tuple[int, float, torch.Tensor, dict[str, torch.Tensor]]] = field(default_factory=list)

    def add(self, step: int, epoch: float, idx: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor) -> None:
        """Record one micro-batch: its optimizer ``step``, the ``epoch`` before it, its sample indices."""
        self.parts.append((step, epoch, idx.detach(), batch_stats(logits, labels)))

    def add_token_stats(self, step: int, epoch: float, idx: torch.Tensor, log_probs: torch.Tensor,
                        top1: torch.Tensor, mask: torch.Tensor) -> None:
        """Record a micro-batch from per-token values instead of logits (a fused output layer's
        ``log_probs``, ``is_top1`` and ``label_mask``, each ``(batch, seq)``, zero where unlabelled)."""
        with torch.no_grad():
            m = mask.detach().float()
            n = m.sum(1)
            denom = n.clamp(min=1)
            lp = log_probs.detach().float() * m
            correct = (top1.detach().float() * m).sum(1)
            stats = {"loss": -lp.sum(1) / denom, "token_acc": correct / denom, "exact": correct == n,
                     "p_gold": (log_probs.detach().float().exp() * m).sum(1) / denom, "n_tokens": n.long()}
        self.parts.append((step, epoch, idx.detach(), stats))

    def pop(self) -> list[dict[str, float | int | bool]]:
        """The rows recorded since the last call (``idx``, ``step``, ``epoch`` and :data:`STAT_COLUMNS`)."""
        rows: list[dict[str, float | int | bool]] = []
        for step, epoch, idx, stats in self.parts:
            values = {k: v.cpu().tolist() for k, v in stats.items()}
            for j, i in enumerate(idx.cpu().tolist()):
                rows.append({"idx": int(i), "step": step, "epoch": epoch, **{k: values[k][j] for k in STAT_COLUMNS}})
        self.parts = []
        return rows


def _check(td: pd.DataFrame, needs: tuple[str, ...], what: str) -> None:
    missing = [c for c in needs if c not in td.columns]
    if missing:
        raise KeyError(f"{what}: the train dynamics table lacks column(s) {missing} "
                       "(expected RUN/train_dynamics.parquet as ilpnb's SFT writes it)")


def forgetting_events(td: pd.DataFrame, learned: str = "exact") -> pd.DataFrame:
    """Forgetting events per sample (Toneva et al.): learned at one visit, not at the next.

    Args:
        td: the train dynamics table (one row per sample × visit).
        learned: the boolean column that says a visit found the sample learned.

    Returns:
        One row per ``id``: ``visits``, ``forgetting_events``, ``first_learned_step`` (NaN if
        never), ``ever_learned``, ``unforgettable`` (learned at some visit, never forgotten),
        ``learned_last_visit``.
    """
    _check(td, ("id", "step", learned), "forgetting_events")
    d = td.sort_values(["id", "step"], kind="stable")
    flags = d[learned].astype(bool).to_numpy()
    same = d["id"].to_numpy()[1:] == d["id"].to_numpy()[:-1]
    forgot = np.zeros(len(d), dtype=bool)
    forgot[1:] = same & flags[:-1] & ~flags[1:]
    d = d.assign(_learned=flags, _forgot=forgot, _step_learned=d["step"].where(flags))
    g = d.groupby("id", sort=True)
    out = pd.DataFrame({"visits": g.size(), "forgetting_events": g["_forgot"].sum().astype(int),
                        "first_learned_step": g["_step_learned"].min(), "ever_learned": g["_learned"].any(),
                        "learned_last_visit": g["_learned"].last()})
    out["unforgettable"] = out["ever_learned"] & (out["forgetting_events"] == 0)
    return out.reset_index()


def cartography(td: pd.DataFrame) -> pd.DataFrame:
    """The Dataset Cartography map: confidence, variability and correctness per sample.

    Each epoch counts once (a sample seen twice in an epoch, e.g. upsampled, is averaged
    within it first); epochs are told apart by ``stage`` and ``epoch``.

    Returns:
        One row per ``id``: ``epochs``, ``confidence`` (mean of ``p_gold``), ``variability``
        (its population standard deviation, 0 with one epoch), ``correctness`` (share of
        epochs with ``exact``).
    """
    _check(td, ("id", "stage", "epoch", "p_gold", "exact"), "cartography")
    per_epoch = (td.assign(_epoch=np.floor(td["epoch"].astype(float) + 1e-9), _exact=td["exact"].astype(float))
                 .groupby(["id", td["stage"].astype(str), "_epoch"], sort=True)[["p_gold", "_exact"]].mean())
    g = per_epoch.groupby(level="id")
    out = pd.DataFrame({"epochs": g.size(), "confidence": g["p_gold"].mean(),
                        "variability": g["p_gold"].std(ddof=0).fillna(0.0), "correctness": g["_exact"].mean()})
    return out.reset_index()


def summarize_training(td: pd.DataFrame, learned: str = "exact") -> pd.DataFrame:
    """:func:`forgetting_events` and :func:`cartography` side by side, one row per sample."""
    return forgetting_events(td, learned).merge(cartography(td), on="id", how="outer")


def load_train_dynamics(run: str | Path) -> pd.DataFrame:
    """``RUN/train_dynamics.parquet`` of a finished run (or the points written so far).

    Raises:
        FileNotFoundError: the run recorded none (made before they existed, or with
            ``train_stats=False``).
    """
    path = Path(run)
    if (path / "train_dynamics.parquet").exists():
        return pd.read_parquet(path / "train_dynamics.parquet")
    parts = sorted((path / "train_dynamics").glob("point-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{path / 'train_dynamics.parquet'}: missing; the run recorded no in-training "
                                "statistics (made with train_stats=False, or before ilpnb recorded them)")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
