"""The diagnosis holds on worlds it was not tuned on: other seeds, other mixes, other sizes.

Each world is small (so its base model pretrains in about a minute) but uses the `default`
preset's model and SFT settings, so the base model really knows the facts its corpus states.
This is the slow part of the suite (a few minutes); the full-size figures come from
`benchmarks/bench_diagnosis.py`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from ilpnb.config import get_preset
from ilpnb.data.world import generate_world
from ilpnb.data.world_config import WorldConfig
from ilpnb.diagnose.attribution import write_diagnosis
from ilpnb.diagnose.scoring import read_truth_file, score_diagnosis

pytestmark = pytest.mark.slow

WORLDS = {
    "seed7": {"seed": 7, "counts": {"none": 40, "missing_knowledge": 8, "pretrain_conflict": 8,
                                    "data_conflict": 8, "left_forgetting": 8, "rare_pattern": 8}},
    "seed8-skewed": {"seed": 8, "counts": {"none": 50, "missing_knowledge": 14, "pretrain_conflict": 5,
                                           "data_conflict": 10, "left_forgetting": 6, "rare_pattern": 6}},
}


@pytest.fixture(scope="module")
def scores(tmp_path_factory: pytest.TempPathFactory) -> dict:
    import torch

    from ilpnb.train.sft import run_sft

    root = tmp_path_factory.mktemp("worlds")
    os.environ.setdefault("ILPNB_CACHE", str(root / "cache"))
    threads = torch.get_num_threads()
    out = {}
    try:
        for name, change in WORLDS.items():
            cfg = WorldConfig.from_dict({**get_preset("default").world.to_dict(), "extra_people": 4, **change})
            world = generate_world(cfg, root / f"world-{name}")
            run = run_sft(root / f"run-{name}", world=world, preset="default", progress=False)
            out[name] = score_diagnosis(write_diagnosis(run), read_truth_file(Path(world) / "truth.jsonl"))
    finally:
        torch.set_num_threads(threads)
    return out


@pytest.mark.parametrize("name", list(WORLDS))
def test_macro_f1_holds_on_unseen_worlds(scores: dict, name: str) -> None:
    score = scores[name]
    assert score.scored >= 10, f"{name}: too few unlearned samples to score ({score.scored})"
    assert score.macro_f1 >= 0.8, f"{name}: macro-F1 {score.macro_f1:.3f}\n{score.to_text()}"
