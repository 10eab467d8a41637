"""`torchrun --nproc_per_node 2` on CPU (gloo) gives the dynamics of the 1-process run.

The two runs are made mathematically equal: ordered data (no shuffling), a per-process batch
of B/2 on 2 processes against B on 1, and stage sizes that are multiples of B (no padded or
repeated last batch). Each optimizer step then sees the same B samples; the Trainer divides
the summed token loss by the token count gathered over both processes and DDP averages the
gradients, so the update is the 1-process update up to the order of floating-point sums.
Step 0 involves no training: it must match to float32 rounding (the two runs only batch the
measuring forward passes differently). Later points may drift by the reduction order of the
gradient all-reduce, amplified over a few Adam steps: they are compared with atol 1e-4.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sft_helpers import Smoke, subset

from ilpnb.train.sft import load_dynamics, run_sft

HERE = Path(__file__).resolve().parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_torchrun_two_processes_equal_one(smoke: Smoke, tmp_path: Path) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    one = run_sft(tmp_path / "one", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                  checkpoints="none", sft={"ordered": True, "batch_size": 4, "epochs": 2})
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ILPNB_CACHE": str(smoke.cache), "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(HERE / "sft_ddp_script.py"),
           str(tmp_path / "two"), str(smoke.model), str(data), "2"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    two = load_dynamics(tmp_path / "two")
    ref = load_dynamics(one)
    # every (sample, point) measured exactly once
    assert not two.duplicated(["id", "point"]).any()
    assert len(two) == len(ref) == 12 * 5
    assert set(map(tuple, two[["id", "point"]].to_numpy())) == set(map(tuple, ref[["id", "point"]].to_numpy()))
    two = two.sort_values(["point", "id"]).reset_index(drop=True)
    ref = ref.sort_values(["point", "id"]).reset_index(drop=True)
    assert two["step"].tolist() == ref["step"].tolist() and two["stage"].tolist() == ref["stage"].tolist()
    floats = ["loss", "token_acc", "gold_first_p", "top_token_p", "js_base", "mc_p_gold", "pass@5"]
    start = two["point"] == 0
    for col in floats:
        np.testing.assert_allclose(two.loc[start, col], ref.loc[start, col], rtol=1e-5, atol=1e-6, err_msg=col)
        np.testing.assert_allclose(two[col], ref[col], rtol=1e-3, atol=1e-4, err_msg=col)
    assert two["exact"].tolist() == ref["exact"].tolist()
    assert two["output"].tolist() == ref["output"].tolist()
    # the schedule gathered from both ranks is the 1-process one (order within a step aside)
    key = ["step", "id"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "two" / "schedule.parquet").sort_values(key).reset_index(drop=True),
                                  pd.read_parquet(one / "schedule.parquet").sort_values(key).reset_index(drop=True))
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "two" / "samples.parquet"),
                                  pd.read_parquet(one / "samples.parquet"), check_exact=False, atol=1e-4)
    # the in-training statistics of both ranks, gathered: every trained (sample, step) once, equal to the
    # 1-process ones (the first step to float32 rounding: the same weights, batched differently)
    td_two = pd.read_parquet(tmp_path / "two" / "train_dynamics.parquet").sort_values(key).reset_index(drop=True)
    td_one = pd.read_parquet(one / "train_dynamics.parquet").sort_values(key).reset_index(drop=True)
    assert not td_two.duplicated(key).any() and len(td_two) == 12 * 2
    same = ["step", "id", "stage", "point", "epoch", "sample_stage", "n_tokens"]
    pd.testing.assert_frame_equal(td_two[same], td_one[same])
    first = td_two["step"] == 1
    for col in ("loss", "token_acc", "p_gold"):
        np.testing.assert_allclose(td_two.loc[first, col], td_one.loc[first, col], rtol=1e-5, atol=1e-6, err_msg=col)
        np.testing.assert_allclose(td_two[col], td_one[col], rtol=1e-3, atol=1e-4, err_msg=col)
    assert td_two["exact"].tolist() == td_one["exact"].tolist()
