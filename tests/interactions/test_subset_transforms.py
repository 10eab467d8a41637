"""Exact transforms: fast vs naive sums, reconstruction, OR definition, shapiq cross-check."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ilpnb.interactions import (
    and_interactions,
    and_reconstruct,
    keep_matrix,
    naive_and_interactions,
    or_interactions,
    or_reconstruct,
    salient,
    subset_orders,
    subset_tuple,
)
from ilpnb.interactions.transforms import (
    moebius_transpose,
    n_players_of,
    or_interactions_transpose,
    superset_sum,
)


def naive_or_interactions(v: np.ndarray) -> np.ndarray:
    """I_or straight from the definition (3^n)."""
    size = len(v)
    full = size - 1
    out = np.zeros(size)
    out[0] = v[0]
    for s in range(1, size):
        k = bin(s).count("1")
        out[s] = -sum((-1) ** (k - bin(sub).count("1")) * v[full ^ sub]
                      for sub in range(size) if sub & ~s == 0)
    return out


def naive_or_reconstruct(i_or: np.ndarray) -> np.ndarray:
    size = len(i_or)
    return np.array([i_or[0] + sum(i_or[t] for t in range(1, size) if t & s) for s in range(size)])


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7])
def test_fast_and_equals_naive(n: int) -> None:
    v = np.random.default_rng(n).normal(size=1 << n) * 5
    fast = and_interactions(v)
    np.testing.assert_allclose(fast, naive_and_interactions(v), atol=1e-9)
    np.testing.assert_allclose(and_reconstruct(fast), v, atol=1e-9)


@pytest.mark.parametrize("n", [1, 3, 6])
def test_or_matches_definition_and_rebuilds(n: int) -> None:
    v = np.random.default_rng(10 + n).normal(size=1 << n)
    fast = or_interactions(v)
    np.testing.assert_allclose(fast, naive_or_interactions(v), atol=1e-9)
    np.testing.assert_allclose(naive_or_reconstruct(fast), v, atol=1e-9)
    np.testing.assert_allclose(or_reconstruct(fast), v, atol=1e-9)


def test_torch_and_numpy_agree() -> None:
    v = np.random.default_rng(0).normal(size=64)
    vt = torch.tensor(v)
    out = and_interactions(vt)
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.numpy(), and_interactions(v), atol=1e-12)
    np.testing.assert_allclose(or_interactions(vt).numpy(), or_interactions(v), atol=1e-12)
    np.testing.assert_array_equal(vt.numpy(), v)  # inputs untouched


def test_transposes_are_exact() -> None:
    n, rng = 4, np.random.default_rng(3)
    eye = np.eye(1 << n)
    s = rng.normal(size=1 << n)
    m_and = np.stack([and_interactions(e) for e in eye], axis=1)
    m_or = np.stack([or_interactions(e) for e in eye], axis=1)
    np.testing.assert_allclose(moebius_transpose(s), m_and.T @ s, atol=1e-12)
    np.testing.assert_allclose(or_interactions_transpose(s), m_or.T @ s, atol=1e-12)
    np.testing.assert_allclose(superset_sum(s), np.stack([and_reconstruct(e) for e in eye], 1).T @ s,
                               atol=1e-12)


def test_helpers() -> None:
    assert keep_matrix(3)[5].tolist() == [True, False, True]
    assert keep_matrix(3, 2, 4).shape == (2, 3)
    assert subset_orders(3).tolist() == [0, 1, 1, 2, 1, 2, 2, 3]
    assert subset_tuple(0b1011) == (0, 1, 3)
    with pytest.raises(ValueError, match="2\\^n"):
        n_players_of(np.zeros(6))


def test_salient() -> None:
    i = np.array([100.0, 1.0, -0.04, 0.5])
    assert salient(i).tolist() == [False, True, False, True]  # max over non-empty = 1
    assert salient(i, include_empty=True).tolist() == [True, False, False, False]
    both = salient(np.stack([i, 2 * i]))
    assert both.shape == (2, 4) and both[0].tolist() == [False, True, False, True]
    assert salient(i, reference=10.0).tolist() == [False, True, False, False]


def _shapiq_game(v: np.ndarray, n: int):
    weights = 1 << np.arange(n)

    def game(coalitions: np.ndarray) -> np.ndarray:
        return v[np.asarray(coalitions, dtype=np.int64) @ weights]

    return game


@pytest.mark.parametrize("n", [3, 6])
def test_matches_shapiq_moebius_and_co_moebius(n: int) -> None:
    shapiq = pytest.importorskip("shapiq")
    v = np.random.default_rng(20 + n).normal(size=1 << n) * 3
    exact = shapiq.ExactComputer(_shapiq_game(v, n), n_players=n)
    moebius = exact("Moebius")
    co = exact("Co-Moebius")
    i_and, i_or = and_interactions(v), or_interactions(v)
    for mask in range(1 << n):
        s = subset_tuple(mask)
        assert abs(i_and[mask] - moebius.values[moebius.interaction_lookup[s]]) < 1e-6
        if s:
            expected = (-1) ** (len(s) + 1) * co.values[co.interaction_lookup[s]]
            assert abs(i_or[mask] - expected) < 1e-6
