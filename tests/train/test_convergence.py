"""The convergence rule: the window test itself, and SFT that stops on it (or reports the cap)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sft_helpers import Smoke, subset

from ilpnb.train.convergence import ConvergenceMonitor, ConvergenceRule, describe, lr_share
from ilpnb.train.sft import load_dynamics, run_sft


def _feed(monitor: ConvergenceMonitor, losses: list[float], flips: list[int] | None = None, n: int = 50) -> list[bool]:
    out = []
    for k, loss in enumerate(losses):
        verdicts = np.zeros(n, bool)
        verdicts[: (flips or [0] * len(losses))[k]] = True
        out.append(monitor.update(k + 1, 10 * (k + 1), float(k + 1), np.full(n, loss), verdicts))
    return out


def test_flat_loss_and_stable_verdicts_converge_only_after_a_full_window() -> None:
    got = _feed(ConvergenceMonitor(ConvergenceRule(window=3)), [2.0, 1.0, 0.5, 0.499, 0.498, 0.497])
    assert got == [False, False, False, False, True, True]


def test_a_falling_loss_is_not_converged() -> None:
    got = _feed(ConvergenceMonitor(ConvergenceRule(window=3)), [1.0, 0.9, 0.8, 0.7, 0.6, 0.5])
    assert not any(got)


def test_near_zero_loss_uses_the_absolute_floor() -> None:
    rule = ConvergenceRule(window=3, loss_tol=0.01, rel_tol=0.02)
    assert _feed(ConvergenceMonitor(rule), [0.009, 0.004, 0.001])[-1]  # halving, but below the floor


def test_flipping_verdicts_block_convergence() -> None:
    mon = ConvergenceMonitor(ConvergenceRule(window=3, flip_share=0.02))
    # 5 more of 50 samples become learned at every point although the loss is flat: still learning
    assert _feed(mon, [0.5, 0.5, 0.5, 0.5], flips=[0, 5, 10, 15]) == [False, False, False, False]
    assert "20.0% of samples changed verdict" in mon.reason and "oscillating" not in mon.reason


def test_oscillating_samples_do_not_block_convergence() -> None:
    # 2 of 12 samples alternate (a duplicated question's two answers); the rest settled
    mon = ConvergenceMonitor(ConvergenceRule(window=3, flip_share=0.02))
    n = 12
    for k, pattern in enumerate([(0, 1), (1, 0), (0, 1), (1, 0), (0, 1), (1, 0)]):
        verdicts = np.ones(n, bool)
        verdicts[:2] = pattern
        done = mon.update(k + 1, k + 1, float(k + 1), np.full(n, 0.01), verdicts)
    assert done and "0.0% of samples changed verdict" in mon.reason and "2 oscillating" in mon.reason
    # a sample learned once inside the window (up only) still counts
    mon = ConvergenceMonitor(ConvergenceRule(window=3, flip_share=0.02))
    for k in range(4):
        verdicts = np.ones(n, bool)
        verdicts[0] = k >= 3
        done = mon.update(k + 1, k + 1, float(k + 1), np.full(n, 0.01), verdicts)
    assert not done and "8.3% of samples changed verdict" in mon.reason


def test_a_flat_loss_under_an_annealed_learning_rate_is_not_convergence() -> None:
    mon = ConvergenceMonitor(ConvergenceRule(window=3, min_lr_share=0.1))
    flat = [mon.update(k + 1, k + 1, float(k + 1), np.full(10, 0.7), np.zeros(10, bool), lr_share=lr)
            for k, lr in enumerate([0.5, 0.3, 0.2, 0.09, 0.05])]
    assert flat == [False, False, True, False, False]
    assert "learning rate at 5% of its peak" in mon.reason
    assert mon.history[-1]["lr_share"] == 0.05


def test_lr_share_follows_the_transformers_schedule() -> None:
    assert lr_share("cosine", 50, 100, 0.0) == pytest.approx(0.5)
    assert lr_share("cosine", 90, 100, 0.0) == pytest.approx(0.5 * (1 + np.cos(np.pi * 0.9)))
    assert lr_share("cosine", 0, 100, 0.05) == 0.0 and lr_share("cosine", 5, 100, 0.05) == pytest.approx(1.0)
    assert lr_share("constant", 99, 100, 0.0) == 1.0
    assert lr_share("linear", 100, 100, 0.0) == 0.0


def test_bad_rules_are_refused() -> None:
    with pytest.raises(ValueError, match="window"):
        ConvergenceRule(window=1)
    with pytest.raises(ValueError, match="non-negative"):
        ConvergenceRule(loss_tol=-1)


def _run(smoke: Smoke, tmp_path: Path, name: str, **sft: object) -> Path:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    return run_sft(tmp_path / name, model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                   checkpoints="none", sft={"batch_size": 4, "epochs": 6, **sft})


def test_sft_stops_when_the_rule_holds(smoke: Smoke, tmp_path: Path) -> None:
    # tolerances so wide that the rule holds as soon as the window is full: 3 points a stage
    run = _run(smoke, tmp_path, "loose", converge_loss_tol=100.0, converge_flip_share=1.0)
    conv = json.loads((run / "convergence.json").read_text())
    assert [s["converged"] for s in conv["stages"]] == [True, True]
    assert [s["points"] for s in conv["stages"]] == [3, 3]
    assert [s["epoch"] for s in conv["stages"]] == [3.0, 3.0]
    assert conv["rule"]["on"] and conv["rule"]["cap_epochs"] == 6
    dyn = load_dynamics(run)
    assert sorted(dyn["point"].unique()) == list(range(7))  # step 0 + 3 points per stage
    final = dyn[dyn["point"] == 6]
    assert final["output"].notna().all() and final["mc_p_gold"].notna().all()  # measured as an end
    assert "converged at step" in describe(conv["stages"])
    cfg = json.loads((run / "config.json").read_text())["sft"]
    assert cfg["converge"] and cfg["converge_loss_tol"] == 100.0 and cfg["lr_scheduler"] == "cosine"


def test_sft_reports_the_cap_when_the_rule_never_holds(smoke: Smoke, tmp_path: Path) -> None:
    run = _run(smoke, tmp_path, "strict", converge_loss_tol=0.0, converge_rel_tol=0.0, converge_flip_share=0.0)
    conv = json.loads((run / "convergence.json").read_text())
    assert [s["points"] for s in conv["stages"]] == [6, 6]
    assert not any(s["converged"] for s in conv["stages"])
    assert describe(conv["stages"]).count("not converged: stopped at the cap") == 2


def test_a_fixed_budget_says_it_was_not_checked(smoke: Smoke, tmp_path: Path) -> None:
    run = _run(smoke, tmp_path, "fixed", converge=False, converge_loss_tol=100.0, converge_flip_share=1.0)
    conv = json.loads((run / "convergence.json").read_text())
    assert [s["points"] for s in conv["stages"]] == [6, 6]  # the rule would hold, but it is off
    assert "convergence not checked" in describe(conv["stages"])
