"""AND-OR split: exact reconstruction, bounded q, sparsity, low-order merge."""

from __future__ import annotations

import numpy as np
import pytest

from ilpnb.interactions import AndOrConfig, fit_and_or, merge_low_order, sparsity_loss


def rebuild(i_and: np.ndarray, i_or: np.ndarray) -> np.ndarray:
    """v(S) from the definitions: sum I_and over L ⊆ S, I_or(∅) + I_or over T meeting S."""
    size = len(i_and)
    out = np.zeros(size)
    for s in range(size):
        out[s] = sum(i_and[t] for t in range(size) if t & ~s == 0)
        out[s] += i_or[0] + sum(i_or[t] for t in range(1, size) if t & s)
    return out


def sparse_game(n: int, seed: int) -> np.ndarray:
    """A game that is an AND of {0,1}, an OR of {2,3} and small noise."""
    rng = np.random.default_rng(seed)
    keep = (np.arange(1 << n)[:, None] >> np.arange(n)) & 1
    v = 1.0 + 3.0 * (keep[:, 0] & keep[:, 1]) + 2.0 * (keep[:, 2] | keep[:, 3])
    return v + 0.01 * rng.normal(size=1 << n)


@pytest.mark.parametrize("n", [3, 5])
def test_and_or_rebuilds_v_plus_q(n: int) -> None:
    v = np.random.default_rng(n).normal(size=1 << n) * 2
    fit = fit_and_or(v, iterations=300, q_thres=0.04)
    assert fit.bound == pytest.approx(0.04 * abs(v[-1] - v[0]))
    assert np.abs(fit.q).max() <= fit.bound + 1e-12 and np.abs(fit.q).max() > 0
    np.testing.assert_allclose(rebuild(fit.and_values, fit.or_values), v + fit.q, atol=1e-5)


def test_without_q_rebuilds_v_exactly() -> None:
    v = sparse_game(5, 0)
    fit = fit_and_or(v, AndOrConfig(q_thres=0.0, iterations=300))
    assert not fit.q.any()
    np.testing.assert_allclose(rebuild(fit.and_values, fit.or_values), v, atol=1e-5)


def test_fit_finds_the_sparse_split() -> None:
    v = sparse_game(5, 1)
    fit = fit_and_or(v, iterations=3000)
    assert fit.final_loss < 0.55 * fit.initial_loss
    assert fit.final_loss == pytest.approx(sparsity_loss(fit.and_values, fit.or_values))
    assert len(fit.history) == 100
    # the AND {0,1} and the OR {2,3} terms dominate
    assert abs(fit.and_values[0b00011]) > 2.5 and abs(fit.or_values[0b01100]) > 1.5
    big = np.abs(np.concatenate([fit.and_values[1:], fit.or_values[1:]])) > 0.5
    assert big.sum() <= 6


def test_merge_low_order_keeps_exactness() -> None:
    v = np.random.default_rng(7).normal(size=16)
    fit = fit_and_or(v, iterations=50, merge_low_order=True)
    assert not fit.or_values[[0, 1, 2, 4, 8]].any()
    np.testing.assert_allclose(rebuild(fit.and_values, fit.or_values), v + fit.q, atol=1e-5)
    a, o = merge_low_order(np.ones(4), np.ones(4))
    assert a.tolist() == [2, 2, 2, 1] and o.tolist() == [0, 0, 0, 1]


def test_absolute_learning_rate() -> None:
    v = sparse_game(4, 2)
    rel = fit_and_or(v, iterations=200)
    ab = fit_and_or(v, iterations=200, relative_lr=False, lr=0.01 * v.std() / 16)
    np.testing.assert_allclose(rel.p, ab.p, atol=1e-12)


@pytest.mark.parametrize("n", [5, 6, 8])
def test_dense_maps_fit_as_the_fast_transforms(n: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small games fit with the transforms as matrices; the fit equals the fast transforms' one."""
    from ilpnb.interactions import andor

    v = np.random.default_rng(n).normal(size=1 << n) + sparse_game(n, seed=n)
    dense = fit_and_or(v, iterations=300)
    monkeypatch.setattr(andor, "DENSE_MAX_PLAYERS", 0)
    fast = fit_and_or(v, iterations=300)
    assert andor._Maps(n).dense is None
    np.testing.assert_allclose(dense.final_loss, fast.final_loss, rtol=1e-6)
    np.testing.assert_allclose(dense.and_values, fast.and_values, atol=1e-6 * np.abs(v).max())
    np.testing.assert_allclose(dense.or_values, fast.or_values, atol=1e-6 * np.abs(v).max())
    np.testing.assert_allclose(rebuild(dense.and_values, dense.or_values), v + dense.q, atol=1e-9)
