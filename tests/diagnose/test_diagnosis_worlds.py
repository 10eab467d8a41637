"""The diagnosis on worlds it was not tuned on (other seeds, other mixes) against the
model-free baselines on the same unlearned samples: it beats every rule (a hard test); the
classifiers trained out-of-fold on the world's own planted truth it does not beat on every
world yet (issue 11), a known failure kept visible as an expected failure.

Each world is small (so its base model pretrains in about a minute) but uses the `default`
preset's model and SFT settings, so the base model really knows the facts its corpus states,
and SFT trains until converged. The baselines read the world's files only (`sft.jsonl`, and
`pretrain.txt` for the corpus lookup); the diagnosis reads the run and the base model. This is
the slow part of the suite (a few minutes); the full figures come from
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
from ilpnb.diagnose.baselines import score_baselines
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
            diagnosis = write_diagnosis(run)
            score = score_diagnosis(diagnosis, read_truth_file(Path(world) / "truth.jsonl"))
            unlearned = diagnosis.loc[~diagnosis["learned"], "id"].tolist()
            out[name] = (score, score_baselines(world, ids=unlearned))
    finally:
        torch.set_num_threads(threads)
    return out


#: the baselines that learn from the planted truth of the world they are scored on: an
#: out-of-fold classifier on the surface features of some twenty samples
LEARNED = ("surface", "surface-tree")


def _assert_beats(score, baselines, name: str) -> None:
    best = baselines.sort_values("macro_f1", ascending=False).iloc[0]
    assert score.macro_f1 > best["macro_f1"], (
        f"{name}: diagnosis macro-F1 {score.macro_f1:.3f} does not beat the baseline '{best['name']}' "
        f"({best['macro_f1']:.3f})\n{score.to_text()}\n{baselines.round(3).to_string()}")


@pytest.mark.parametrize("name", list(WORLDS))
def test_diagnosis_beats_every_rule_baseline(scores: dict, name: str) -> None:
    """The rules (length, stage, duplicates, options, their oracle thresholds, the corpus
    lookup and the combinations) read the world's files with a fixed rule each."""
    score, baselines = scores[name]
    assert score.scored >= 10, f"{name}: too few unlearned samples to score ({score.scored})"
    _assert_beats(score, baselines[~baselines["name"].isin(LEARNED)], name)


@pytest.mark.xfail(strict=False, reason=(
    "issue 11 (open): on the AVX2 path make test pins, the diagnosis now beats the out-of-fold "
    "classifiers here (seed7 0.402 vs 0.347, seed8 0.186 vs 0.141 for the best baseline overall), "
    "but lost seed7 by 0.004 before the convergence rule's learning-rate condition, and on the held-out "
    "family of bench_diagnosis the classifiers still win (0.47-0.55 vs 0.28): not yet a bar to hold"))
@pytest.mark.parametrize("name", list(WORLDS))
def test_diagnosis_beats_the_classifiers_trained_on_the_truth(scores: dict, name: str) -> None:
    score, baselines = scores[name]
    _assert_beats(score, baselines[baselines["name"].isin(LEARNED)], name)
