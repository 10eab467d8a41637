"""An interrupted run, resumed, gives the dynamics of an uninterrupted one and overwrites nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sft_helpers import CliRun, Smoke
from transformers import TrainerCallback

from ilpnb.runs import ConfigMismatchError
from ilpnb.train.sft import load_dynamics, run_sft


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in folder.rglob("*") if p.is_file() and "trainer" not in p.parts}


def assert_same_dynamics(a: pd.DataFrame, b: pd.DataFrame, atol: float = 1e-5) -> None:
    key = ["point", "id"]
    a, b = a.sort_values(key).reset_index(drop=True), b.sort_values(key).reset_index(drop=True)
    assert list(a.columns) == list(b.columns)
    for col in a.columns:
        if pd.api.types.is_float_dtype(a[col]):
            np.testing.assert_allclose(a[col], b[col], atol=atol, rtol=1e-4, err_msg=col)
        else:
            assert a[col].tolist() == b[col].tolist(), col


class InterruptAfterEpoch(TrainerCallback):
    """Interrupts the first stage's training at the end of an epoch, after ilpnb's callback has
    measured and written that epoch's point (callbacks run in the order they were added)."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, args, state, control, **kw):  # noqa: ANN001, ANN201
        if round(state.epoch or 0) >= self.epoch:
            raise KeyboardInterrupt(f"interrupted after epoch {self.epoch} (test)")


def test_resume_after_interruption_equals_an_uninterrupted_run(world_run: CliRun, smoke: Smoke,
                                                               tmp_path: Path) -> None:
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_sft(out, world=smoke.world, preset="smoke", progress=False, callbacks=[InterruptAfterEpoch(2)])
    assert not (out / "dynamics.parquet").exists()
    assert sorted(p.name for p in (out / "dynamics").glob("*.parquet")) == [f"point-{i:04d}.parquet" for i in range(3)]
    made = _digest(out)
    # resuming needs resume=True, and the same settings
    with pytest.raises(FileExistsError):
        run_sft(out, world=smoke.world, preset="smoke", progress=False)
    with pytest.raises(ConfigMismatchError):
        run_sft(out, world=smoke.world, preset="smoke", progress=False, resume=True, sft={"seed": 1})
    run_sft(out, world=smoke.world, preset="smoke", progress=False, resume=True)
    after = _digest(out)
    changed = [name for name, h in made.items() if after.get(name) != h]
    assert changed == [], f"resume overwrote {changed}"
    assert_same_dynamics(load_dynamics(out), load_dynamics(world_run.out))
    reference = pd.read_parquet(world_run.out / "samples.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out / "samples.parquet"), reference, check_exact=False, atol=1e-5)
    # the in-training statistics too: the redone epoch's rows replace, never duplicate, the first try's
    key = ["step", "id"]
    td, ref_td = (pd.read_parquet(f / "train_dynamics.parquet").sort_values(key).reset_index(drop=True)
                  for f in (out, world_run.out))
    assert not td.duplicated(key).any() and len(td) == len(pd.read_parquet(out / "schedule.parquet"))
    pd.testing.assert_frame_equal(td, ref_td, check_exact=False, atol=1e-5)
    # a finished run resumed again does nothing
    run_sft(out, world=smoke.world, preset="smoke", progress=False, resume=True)
    assert _digest(out) == after


def test_resume_keeps_the_convergence_window_when_points_are_not_stored(smoke: Smoke, tmp_path: Path) -> None:
    """With ``track="ends"`` the dynamics of intermediate points are not stored; the cheap passes
    the convergence rule read are, so a resumed stage decides on the same window as an
    uninterrupted one instead of starting it again."""
    import json

    kw = {"world": smoke.world, "preset": "smoke", "progress": False, "track": "ends", "sft": {"epochs": 6}}
    ref = run_sft(tmp_path / "ref", **kw)
    out = tmp_path / "run"
    with pytest.raises(KeyboardInterrupt):
        run_sft(out, callbacks=[InterruptAfterEpoch(3)], **kw)
    assert sorted(p.name for p in (out / "convergence_passes").glob("*.parquet")) == [
        f"point-{i:04d}.parquet" for i in (1, 2, 3)]
    run_sft(out, resume=True, **kw)

    def history(run: Path) -> list[list[tuple[int, float]]]:
        stages = json.loads((run / "convergence.json").read_text())["stages"]
        return [[(h["point"], round(h["mean_loss"], 5)) for h in st["history"]] for st in stages]

    assert history(out) == history(ref)
    assert history(out)[0][0][0] == 1  # the window of stage 0 starts at its first point, not after the resume
