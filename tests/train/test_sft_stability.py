"""Two seeds -> Cohen's kappa of their unlearned sets (`ilpnb stability`)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sft_helpers import CliRun, Smoke, run_cli

from ilpnb.train.derived import cohen_kappa, seed_agreement


def test_cohen_kappa_values() -> None:
    a = np.array([1, 1, 0, 0, 1, 0, 1, 0], dtype=bool)
    assert cohen_kappa(a, a) == 1.0
    assert cohen_kappa(a, ~a) == -1.0
    b = np.array([1, 0, 0, 0, 1, 0, 1, 1], dtype=bool)
    # po = 6/8, pe = 0.5*0.5 + 0.5*0.5 = 0.5 -> kappa = 0.5
    assert cohen_kappa(a, b) == pytest.approx(0.5)
    from sklearn.metrics import cohen_kappa_score

    assert cohen_kappa(a, b) == pytest.approx(cohen_kappa_score(a, b))


def test_two_seeds_give_a_kappa(world_run: CliRun, smoke: Smoke, tmp_path) -> None:
    other = tmp_path / "seed1"
    code, stdout, stderr = run_cli(["sft", "--world", str(smoke.world), "--out", str(other), "--preset", "smoke",
                                    "--seed", "1", "--no-progress"])
    assert code == 0, stderr
    a, b = pd.read_parquet(world_run.out / "samples.parquet"), pd.read_parquet(other / "samples.parquet")
    agree = seed_agreement(a, b)
    assert agree["samples"] == len(a) == len(b)
    assert -1.0 <= agree["kappa"] <= 1.0
    code, stdout, stderr = run_cli(["stability", str(world_run.out), str(other)])
    assert code == 0, stderr
    assert f"Cohen's kappa of the unlearned sets: {agree['kappa']:.3f} over {len(a)} samples" in stdout
    # with another criterion, recomputed from the dynamics
    code, stdout, _ = run_cli(["stability", str(world_run.out), str(other), "--criterion", "loss"])
    assert code == 0 and "Cohen's kappa" in stdout
    # a run against itself agrees perfectly
    code, stdout, _ = run_cli(["stability", str(world_run.out), str(world_run.out)])
    assert "kappa of the unlearned sets: 1.000" in stdout
