"""AND-OR split: sparse AND and OR interactions that together explain the game.

The game ``v`` is split as ``v_and = 0.5(v + q) + p`` and ``v_or = 0.5(v + q) - p`` with a
learnable vector ``p`` (free) and a small learnable "noise" ``q`` bounded by
``|q| <= q_thres · |v(N) - v(∅)|``, and ``p, q`` are fitted to minimise the sparsity loss
``Σ_S |I_and(S)| + Σ_S |I_or(S)|`` with ``I_and`` the AND interactions of ``v_and`` and
``I_or`` the OR interactions of ``v_or`` (:mod:`.transforms`). Then, for every subset S,
``sum_{L ⊆ S} I_and(L) + I_or(∅) + sum_{T≠∅, T∩S≠∅} I_or(T) = v(S) + q(S)`` exactly.

Optimiser (as in the published method): SGD with momentum 0.9 on the (sub)gradient of the
L1 loss, the learning rate decaying log-uniformly from ``lr`` to ``lr / 10`` over the
iterations. The bound on ``q`` is kept by projection (clamping after each step). The gradient
is computed in closed form with the transposed transforms (no autograd graph): the fast
transforms (``O(n·2^n)`` per iteration), or for games of at most :data:`DENSE_MAX_PLAYERS`
players the same maps as dense matrices (fewer NumPy calls), and the parameters with the
lowest loss seen are returned.

Learning rate. The L1 subgradient does not scale with ``v`` while the optimal ``p`` does, and
the gradient of low-order entries grows like ``2^n``; a fixed absolute rate (the published
1e-5…1e-7) therefore suits only one game size and scale. By default (``relative_lr=True``)
the rate is ``lr · std(v) / 2^n``; on tiny-model games with n = 5…10 and a sparse synthetic
game, ``lr`` 0.003–0.03 reached within a few percent of the best loss found over a grid of
absolute rates, while 0.1 was sometimes and 1 always unstable. ``relative_lr=False`` uses
``lr`` as is. Defaults (:class:`AndOrConfig`): ``q_thres=0.02`` (published 0.02–0.04),
``iterations=5000``, ``lr=0.01`` relative, decaying to 0.001.

Optionally the order-0 and order-1 OR terms are merged into AND afterwards (this keeps the
decomposition exact: ``∅`` and singletons contribute to the same subsets either way).
"""

from __future__ import annotations

import functools
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from .transforms import (
    and_interactions,
    moebius_transpose,
    n_players_of,
    or_interactions,
    or_interactions_transpose,
    subset_orders,
)

__all__ = ["AndOrConfig", "AndOrFit", "fit_and_or", "merge_low_order", "sparsity_loss"]


@dataclass
class AndOrConfig:
    """Settings of the AND-OR fit.

    Attributes:
        q_thres: Bound on ``|q|`` relative to ``|v(N) - v(∅)|`` (0 disables ``q``).
        iterations: SGD iterations.
        lr: Initial learning rate; it decays log-uniformly to ``lr * lr_decay``.
        relative_lr: Read ``lr`` in units of ``std(v) / 2^n`` (see the module docstring).
        lr_decay: Final / initial learning rate.
        momentum: SGD momentum.
        merge_low_order: Move order-0 and order-1 OR terms into AND after fitting.
    """

    q_thres: float = 0.02
    iterations: int = 5000
    lr: float = 0.01
    relative_lr: bool = True
    lr_decay: float = 0.1
    momentum: float = 0.9
    merge_low_order: bool = False


@dataclass
class AndOrFit:
    """Result of :func:`fit_and_or`.

    Attributes:
        p: The AND/OR split vector, bitmask order.
        q: The bounded noise vector, bitmask order.
        and_values: AND interactions of ``v_and``.
        or_values: OR interactions of ``v_or``.
        bound: The bound on ``|q|``.
        initial_loss: Sparsity loss at ``p = q = 0``.
        final_loss: Sparsity loss of the returned parameters (before any merge).
        history: Loss every ``max(1, iterations // 100)`` iterations.
        config: The settings used.
    """

    p: np.ndarray
    q: np.ndarray
    and_values: np.ndarray
    or_values: np.ndarray
    bound: float
    initial_loss: float
    final_loss: float
    history: list[float] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)


def sparsity_loss(and_values: np.ndarray, or_values: np.ndarray) -> float:
    """``Σ|I_and| + Σ|I_or|``."""
    return float(np.abs(and_values).sum() + np.abs(or_values).sum())


def merge_low_order(and_values: np.ndarray, or_values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move the order-0 and order-1 OR interactions into AND (the sum stays exact).

    Args:
        and_values: AND interactions, bitmask order.
        or_values: OR interactions, bitmask order.

    Returns:
        ``(and_values, or_values)`` with ``or_values`` zero at orders 0 and 1.
    """
    low = subset_orders(int(np.log2(len(and_values)))) <= 1
    a, o = np.array(and_values, dtype=np.float64), np.array(or_values, dtype=np.float64)
    a[low] += o[low]
    o[low] = 0.0
    return a, o


#: games of at most this many players are fitted with the four linear maps of an iteration
#: (AND, OR and their transposes) as dense matrices: one matrix-vector product each instead of
#: n strided NumPy passes, a few times faster at n <= 8 where per-call overhead dominates; a
#: larger game (a 2^n x 2^n matrix grows fast) uses the fast transforms
DENSE_MAX_PLAYERS = 8


@functools.lru_cache(maxsize=16)
def _dense_maps(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(AND, OR, AND^T, OR^T)`` of n-player games as matrices (columns: images of the unit vectors)."""
    eye = np.eye(1 << n)
    and_m = np.stack([and_interactions(e) for e in eye], axis=1)
    or_m = np.stack([or_interactions(e) for e in eye], axis=1)
    return and_m, or_m, np.ascontiguousarray(and_m.T), np.ascontiguousarray(or_m.T)


class _Maps:
    """The linear maps of one fit: dense matrices for small games, else the fast transforms."""

    def __init__(self, n: int) -> None:
        self.dense = _dense_maps(n) if n <= DENSE_MAX_PLAYERS else None

    def split(self, v: np.ndarray, p: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        half = 0.5 * (v + q)
        if self.dense is None:
            return and_interactions(half + p), or_interactions(half - p)
        return self.dense[0] @ (half + p), self.dense[1] @ (half - p)

    def grads(self, ia: np.ndarray, io: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """d loss / d v_and and d loss / d v_or of the L1 sparsity loss."""
        if self.dense is None:
            return moebius_transpose(np.sign(ia)), or_interactions_transpose(np.sign(io))
        return self.dense[2] @ np.sign(ia), self.dense[3] @ np.sign(io)


def fit_and_or(v: np.ndarray, config: AndOrConfig | None = None, **overrides: Any) -> AndOrFit:
    """Fit the AND-OR split of a game (see the module docstring).

    Args:
        v: Game values in bitmask order, length ``2^n``.
        config: Settings; keyword ``overrides`` replace single fields.
        **overrides: E.g. ``iterations=200``.

    Returns:
        The fitted split, with AND and OR interactions.
    """
    cfg = AndOrConfig(**{**asdict(config or AndOrConfig()), **overrides})
    v = np.asarray(v, dtype=np.float64)
    bound = float(cfg.q_thres * abs(v[-1] - v[0]))
    p, q = np.zeros_like(v), np.zeros_like(v)
    buf_p, buf_q = np.zeros_like(v), np.zeros_like(v)
    maps = _Maps(n_players_of(v))
    ia, io = maps.split(v, p, q)
    initial = best_loss = sparsity_loss(ia, io)
    best_p, best_q = p.copy(), q.copy()
    history: list[float] = []
    every = max(1, cfg.iterations // 100)
    decay = cfg.lr_decay ** (1.0 / max(1, cfg.iterations - 1))
    lr = cfg.lr * (float(v.std()) / v.shape[0] if cfg.relative_lr else 1.0)
    for it in range(cfg.iterations):
        ga, go = maps.grads(ia, io)
        buf_p *= cfg.momentum
        buf_p += ga - go
        p -= lr * buf_p
        if bound > 0:
            buf_q *= cfg.momentum
            buf_q += 0.5 * (ga + go)
            q -= lr * buf_q
            np.clip(q, -bound, bound, out=q)
        lr *= decay
        ia, io = maps.split(v, p, q)
        loss = sparsity_loss(ia, io)
        if loss < best_loss:
            best_loss, best_p, best_q = loss, p.copy(), q.copy()
        if it % every == 0:
            history.append(loss)
    ia, io = maps.split(v, best_p, best_q)
    if cfg.merge_low_order:
        ia, io = merge_low_order(ia, io)
    return AndOrFit(best_p, best_q, ia, io, bound, initial, best_loss, history, asdict(cfg))
