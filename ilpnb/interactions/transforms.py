"""Exact subset transforms: AND (Harsanyi / Möbius) and OR interactions of a game.

A game over ``n`` players is a vector of length ``2^n`` in *bitmask order*: entry ``m`` holds
``v(S)`` for the subset ``S = {i : bit i of m is set}`` (bit i set = player i kept).

* AND: ``I_and(S) = sum_{L ⊆ S} (-1)^{|S|-|L|} v(L)`` (the Möbius transform), and back
  ``v(S) = sum_{L ⊆ S} I_and(L)`` (the zeta / subset-sum transform).
* OR: ``I_or(∅) = v(∅)`` and, for ``S ≠ ∅``, ``I_or(S) = -sum_{L ⊆ S} (-1)^{|S|-|L|}
  v(N \\ L)``; back ``v(S) = I_or(∅) + sum_{T ≠ ∅, T ∩ S ≠ ∅} I_or(T)``.

All transforms are the fast in-place butterfly (``n`` passes over the vector, ``n·2^n``
additions), not the ``3^n`` double sum; :func:`naive_and_interactions` is the ``3^n``
reference kept for tests. They accept NumPy arrays or torch tensors and return the same kind.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
import torch

__all__ = [
    "and_interactions",
    "and_reconstruct",
    "keep_matrix",
    "moebius_transform",
    "moebius_transpose",
    "n_players_of",
    "naive_and_interactions",
    "or_interactions",
    "or_interactions_transpose",
    "or_reconstruct",
    "salient",
    "subset_orders",
    "subset_tuple",
    "superset_sum",
    "zeta_transform",
]

Array = TypeVar("Array", np.ndarray, torch.Tensor)


def n_players_of(values: np.ndarray | torch.Tensor) -> int:
    """Number of players ``n`` of a game vector of length ``2^n``.

    Raises:
        ValueError: If the length is not a power of two.
    """
    size = int(values.shape[-1])
    n = size.bit_length() - 1
    if size < 1 or (1 << n) != size:
        raise ValueError(f"a game vector must have length 2^n, got {size}")
    return n


def _copy(x: Array) -> Array:
    if isinstance(x, torch.Tensor):
        return x.detach().clone().contiguous()
    return np.array(x, dtype=np.float64 if np.asarray(x).dtype.kind in "iub" else None, copy=True)


def _butterfly(x: Array, sign: float, up: bool) -> Array:
    """In place, for every bit i: ``x[S∪i] += sign·x[S]`` (up) or ``x[S] += sign·x[S∪i]``."""
    n = n_players_of(x)
    for i in range(n):
        view = x.reshape(-1, 2, 1 << i)
        if up:
            view[:, 1, :] += sign * view[:, 0, :]
        else:
            view[:, 0, :] += sign * view[:, 1, :]
    return x


def moebius_transform(v: Array) -> Array:
    """Möbius transform ``f(S) = sum_{L ⊆ S} (-1)^{|S|-|L|} v(L)`` in ``n·2^n`` operations."""
    return _butterfly(_copy(v), -1.0, up=True)


def zeta_transform(f: Array) -> Array:
    """Subset sums ``v(S) = sum_{L ⊆ S} f(L)`` (the inverse of the Möbius transform)."""
    return _butterfly(_copy(f), 1.0, up=True)


def superset_sum(f: Array) -> Array:
    """Superset sums ``g(L) = sum_{S ⊇ L} f(S)`` (the transpose of :func:`zeta_transform`)."""
    return _butterfly(_copy(f), 1.0, up=False)


def moebius_transpose(f: Array) -> Array:
    """Transpose of the Möbius transform: ``g(L) = sum_{S ⊇ L} (-1)^{|S|-|L|} f(S)``."""
    return _butterfly(_copy(f), -1.0, up=False)


def _flip(x: Array) -> Array:
    # bitmask complement N \ S is index 2^n - 1 - m: a reversal of the vector
    return torch.flip(x, dims=(-1,)) if isinstance(x, torch.Tensor) else x[..., ::-1].copy()


def and_interactions(v: Array) -> Array:
    """AND (Harsanyi) interactions of a game: its Möbius transform.

    Args:
        v: Game values in bitmask order, length ``2^n``.

    Returns:
        ``I_and`` in the same order and of the same kind (NumPy or torch).
    """
    return moebius_transform(v)


def and_reconstruct(i_and: Array) -> Array:
    """Game values rebuilt from AND interactions: ``v(S) = sum_{L ⊆ S} I_and(L)``."""
    return zeta_transform(i_and)


def or_interactions(v_or: Array) -> Array:
    """OR interactions of a game (see the module docstring for the definition).

    Args:
        v_or: Game values in bitmask order, length ``2^n``.

    Returns:
        ``I_or`` in bitmask order; ``I_or(∅) = v_or(∅)``.
    """
    out = -moebius_transform(_flip(v_or))
    out[0] = v_or[0]
    return out


def or_interactions_transpose(s: Array) -> Array:
    """Transpose of the linear map :func:`or_interactions` applied to ``s`` (for gradients)."""
    head = s[0]
    t = _copy(s)
    t[0] = 0.0
    out = -_flip(moebius_transpose(t))
    out[0] += head
    return out


def or_reconstruct(i_or: Array) -> Array:
    """Game values rebuilt from OR interactions.

    ``v(S) = I_or(∅) + sum_{T≠∅, T∩S≠∅} I_or(T)``.
    """
    j = _copy(i_or)
    j[0] = 0.0
    z = zeta_transform(j)  # z[A] = sum of I_or(T) over nonempty T ⊆ A
    return i_or[0] + z[-1] - _flip(z)


def naive_and_interactions(v: np.ndarray) -> np.ndarray:
    """Reference ``3^n`` double sum for the AND interactions (slow; for tests)."""
    v = np.asarray(v, dtype=np.float64)
    out = np.zeros_like(v)
    for s in range(v.shape[0]):
        total, sub, size = 0.0, s, bin(s).count("1")
        while True:
            total += (-1) ** (size - bin(sub).count("1")) * v[sub]
            if sub == 0:
                break
            sub = (sub - 1) & s
        out[s] = total
    return out


def keep_matrix(n: int, start: int = 0, stop: int | None = None) -> np.ndarray:
    """Boolean coalition rows for the subsets with bitmask ``start <= m < stop``.

    Args:
        n: Number of players.
        start: First bitmask.
        stop: One past the last bitmask (default ``2^n``).

    Returns:
        Shape ``(stop - start, n)``; entry ``[r, i]`` is bit i of ``start + r``.
    """
    stop = (1 << n) if stop is None else stop
    masks = np.arange(start, stop, dtype=np.int64)
    return ((masks[:, None] >> np.arange(n, dtype=np.int64)[None, :]) & 1).astype(bool)


def subset_orders(n: int) -> np.ndarray:
    """Order ``|S|`` of every subset in bitmask order, shape ``(2^n,)``."""
    return keep_matrix(n).sum(axis=1)


def subset_tuple(mask: int) -> tuple[int, ...]:
    """Sorted player indices of a bitmask."""
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


def salient(interactions: np.ndarray | torch.Tensor, frac: float = 0.05, *,
            reference: float | None = None, include_empty: bool = False) -> np.ndarray:
    """Which interactions are salient: ``|I(S)| > frac · max_S |I(S)|``.

    Args:
        interactions: One or more interaction vectors in bitmask order (last axis ``2^n``);
            with several (e.g. AND and OR stacked) the maximum is taken over all of them.
        frac: Threshold as a fraction of the largest magnitude.
        reference: Use this magnitude instead of the maximum (e.g. a base model's).
        include_empty: Count the empty set (the baseline term ``I(∅)``); by default it is
            neither salient nor part of the maximum.

    Returns:
        A boolean array of the same shape.
    """
    arr = np.abs(np.asarray(interactions.detach().cpu() if isinstance(interactions, torch.Tensor)
                            else interactions, dtype=np.float64))
    body = arr if include_empty else arr[..., 1:]
    ref = float(body.max()) if reference is None and body.size else float(reference or 0.0)
    out = arr > frac * ref
    if not include_empty:
        out[..., 0] = False
    return out
