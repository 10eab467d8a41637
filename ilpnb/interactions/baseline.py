"""Learned baseline: the "absent word" embedding that makes interactions small.

A masked word should look *absent* to the model, not like some other word. Following the
published method, the baseline is fitted so that the interaction between random disjoint
subsets of players is as small as possible:

    minimise  E | v(S1 ∪ S2 ∪ S3) - v(S1 ∪ S3) - v(S2 ∪ S3) + v(S3) |

over the baseline vectors, with S1, S2, S3 drawn at random (each player independently in S1,
S2, S3 or none of them, S1 and S2 non-empty). Choices made here (documented defaults of
:class:`BaselineConfig`):

* one vector per player (``shared=False``) or one for all, starting from the mean input
  embedding;
* Adam, ``steps=200`` steps of ``triples=8`` random triples (32 masked forward + backward
  passes a step, chunked to the value function's batch size with gradient accumulation);
* the learning rate is relative to the RMS of the embedding matrix entries, so the same
  setting fits any model scale;
* each vector stays within an L2 ball of ``radius`` × (mean embedding norm) around its start,
  which rules out the degenerate solution of a baseline that makes masking a no-op;
* the objective before and after fitting is measured on separate held-out triples.

The model's parameters are frozen for the fit and restored afterwards; it runs in eval mode.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from .masking import embedding_stats, eval_mode, frozen_parameters
from .value import ValueFunction

__all__ = ["BaselineConfig", "BaselineFit", "disjoint_objective", "fit_baseline", "sample_triples"]


@dataclass
class BaselineConfig:
    """Settings of the learned baseline.

    Attributes:
        steps: Adam steps.
        lr: Learning rate, in units of the RMS of the embedding entries.
        triples: Random disjoint triples per step.
        shared: One baseline vector for all players instead of one per player.
        radius: Max L2 distance from the start, in units of the mean embedding norm
            (``None``: unconstrained).
        eval_triples: Held-out triples for the before / after objective.
        seed: Seed of the triple sampler.
    """

    steps: int = 200
    lr: float = 0.05
    triples: int = 8
    shared: bool = False
    radius: float | None = 1.0
    eval_triples: int = 32
    seed: int = 0


@dataclass
class BaselineFit:
    """A fitted baseline.

    Attributes:
        baseline: Tensor of shape ``(n, d)`` (rows equal when shared).
        history: Training objective per step.
        initial: Held-out objective of the starting baseline.
        final: Held-out objective of the fitted baseline.
        config: The settings used.
    """

    baseline: torch.Tensor
    history: list[float]
    initial: float
    final: float
    config: dict[str, Any] = field(default_factory=dict)


def sample_triples(n: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """Random disjoint triples as coalition rows.

    Args:
        n: Number of players (at least 2).
        count: How many triples.
        rng: NumPy random generator.

    Returns:
        Boolean array ``(count, 4, n)``: rows ``S1∪S2∪S3``, ``S1∪S3``, ``S2∪S3``, ``S3``.
    """
    out = np.zeros((count, 4, n), dtype=bool)
    for k in range(count):
        while True:
            part = rng.integers(0, 4, size=n)  # 0: S1, 1: S2, 2: S3, 3: none
            if (part == 0).any() and (part == 1).any():
                break
        s1, s2, s3 = part == 0, part == 1, part == 2
        out[k] = [s1 | s2 | s3, s1 | s3, s2 | s3, s3]
    return out


def disjoint_objective(value_fn: ValueFunction, masks: np.ndarray,
                       baseline: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ``|v(S1∪S2∪S3) - v(S1∪S3) - v(S2∪S3) + v(S3)|`` over triples (one batch).

    Args:
        value_fn: The value function.
        masks: Output of :func:`sample_triples`.
        baseline: Baseline vectors (default the value function's).

    Returns:
        A scalar tensor (differentiable w.r.t. ``baseline`` under grad mode).
    """
    count, _, n = masks.shape
    v = value_fn.evaluate(torch.from_numpy(masks.reshape(count * 4, n)), baseline).view(count, 4)
    return (v[:, 0] - v[:, 1] - v[:, 2] + v[:, 3]).abs().mean()


def _held_out(value_fn: ValueFunction, masks: np.ndarray, baseline: torch.Tensor) -> float:
    per = max(1, value_fn.batch_size // 4)
    total = 0.0
    with torch.no_grad():
        for a in range(0, masks.shape[0], per):
            chunk = masks[a:a + per]
            total += float(disjoint_objective(value_fn, chunk, baseline)) * chunk.shape[0]
    return total / masks.shape[0]


def fit_baseline(value_fn: ValueFunction, config: BaselineConfig | None = None,
                 **overrides: Any) -> BaselineFit:
    """Fit the learned baseline of a value function (see the module docstring).

    Args:
        value_fn: The value function; its current :attr:`~.ValueFunction.baseline` is the
            starting point (``"learned"`` starts from the mean embedding).
        config: Settings; keyword ``overrides`` replace single fields.
        **overrides: E.g. ``steps=20``.

    Returns:
        The fit; assign ``fit.baseline`` to ``value_fn.baseline`` to use it.
    """
    cfg = BaselineConfig(**{**asdict(config or BaselineConfig()), **overrides})
    n = value_fn.n_players
    _, rms, mean_norm = embedding_stats(value_fn.model)
    max_shift = None if cfg.radius is None else cfg.radius * mean_norm
    start = value_fn.baseline.detach().float()
    init = start.mean(0, keepdim=True) if cfg.shared else start.clone()
    param = torch.nn.Parameter(init.clone())
    opt = torch.optim.Adam([param], lr=cfg.lr * rms)
    rng = np.random.default_rng(cfg.seed)
    held = sample_triples(n, cfg.eval_triples, np.random.default_rng(cfg.seed + 1))
    per_chunk = max(1, value_fn.batch_size // 4)

    def full(p: torch.Tensor) -> torch.Tensor:
        return p.expand(n, -1) if cfg.shared else p

    history: list[float] = []
    with eval_mode(value_fn.model), frozen_parameters(value_fn.model):
        initial = _held_out(value_fn, held, full(init))
        for _ in range(cfg.steps):
            masks = sample_triples(n, cfg.triples, rng)
            opt.zero_grad()
            total = 0.0
            with torch.enable_grad():
                for a in range(0, cfg.triples, per_chunk):
                    chunk = masks[a:a + per_chunk]
                    share = chunk.shape[0] / cfg.triples
                    loss = disjoint_objective(value_fn, chunk, full(param)) * share
                    loss.backward()
                    total += float(loss.detach())
            opt.step()
            if max_shift is not None:
                with torch.no_grad():
                    delta = param - init
                    norm = delta.norm(dim=1, keepdim=True).clamp(min=1e-12)
                    scale = (max_shift / norm).clamp(max=1.0)
                    param.copy_(init + delta * scale)
            history.append(total)
        fitted = full(param.detach()).clone().to(value_fn.baseline.dtype)
        final = _held_out(value_fn, held, fitted)
    return BaselineFit(fitted, history, initial, final, asdict(cfg))
