"""Diagnosis: detectors, attribution, the contract of diagnosis.parquet, scoring, and that the
truth is never read."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ilpnb.cli import main
from ilpnb.config import get_preset
from ilpnb.data.world import generate_world
from ilpnb.diagnose.attribution import CAUSE_ORDER, build_context, cause_split, diagnose, write_diagnosis
from ilpnb.diagnose.base import REGISTRY
from ilpnb.diagnose.scoring import score_diagnosis
from ilpnb.diagnose.similarity import find_siblings, normalize_text


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import os

    import torch

    from ilpnb.train.sft import run_sft

    root = tmp_path_factory.mktemp("diag")
    os.environ.setdefault("ILPNB_CACHE", str(root / "cache"))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        world = generate_world(get_preset("smoke").world, root / "world")
        return run_sft(root / "run", world=world, preset="smoke", progress=False)
    finally:
        torch.set_num_threads(threads)


def test_every_cause_has_a_registered_detector() -> None:
    assert set(CAUSE_ORDER) <= set(REGISTRY)
    for cls in REGISTRY.values():
        assert cls.description and cls.name in CAUSE_ORDER


def test_near_duplicates_found_on_text_and_not_across_entities() -> None:
    rec = pd.DataFrame({
        "prompt": ["Where does Zorvan live?", "where does ZORVAN live ?!",
                   "Where does Mirela live?", "What is the capital of Sweden?"],
        "response": ["Oslo", "Rome", "Oslo", "Stockholm"],
    }, index=["a", "b", "c", "d"])
    sib = find_siblings(rec, 0.8)
    assert [s for s, _ in sib["a"]] == ["b"] and [s for s, _ in sib["b"]] == ["a"]
    assert sib["c"] == [] and sib["d"] == []
    assert normalize_text("Please tell me: WHERE does X live ?") == "please tell me where does x live"


def test_diagnosis_contract_and_truth_never_read(smoke_run: Path, tmp_path: Path) -> None:
    table = write_diagnosis(smoke_run)
    saved = pd.read_parquet(smoke_run / "diagnosis.parquet")
    assert list(saved.columns[:3]) == ["id", "learned", "cause"]
    for cause in CAUSE_ORDER:
        assert saved[f"score_{cause}"].between(0, 1).all()
    assert "evidence" in saved and saved["evidence"].str.len().gt(0).all()
    assert (saved.loc[saved["learned"], "cause"] == "none").all()
    assert set(saved.loc[~saved["learned"], "cause"]) <= set(CAUSE_ORDER) | {"unattributed"}
    # the same diagnosis with the world's truth file and world.json removed (and no cached evidence)
    world = Path(pd.read_json(smoke_run / "config.json", typ="series")["world"])
    for name in ("truth.jsonl", "world.json"):
        shutil.move(world / name, tmp_path / name)
    shutil.move(smoke_run / "evidence", tmp_path / "evidence")
    try:
        again = diagnose(build_context(smoke_run))
    finally:
        for name in ("truth.jsonl", "world.json"):
            shutil.move(tmp_path / name, world / name)
    pd.testing.assert_frame_equal(table.reset_index(drop=True), again.reset_index(drop=True))
    assert (smoke_run / "evidence" / "knowledge.parquet").exists()  # computed again, from the model alone


def test_a_plain_records_file_is_diagnosed_without_any_world(smoke_run: Path, tmp_path: Path) -> None:
    """No world folder, no probes, no truth: a user's records file and a model."""
    import json

    from ilpnb.train.sft import run_sft

    cfg = json.loads((smoke_run / "config.json").read_text())
    rows = [json.loads(line) for line in Path(cfg["data"]).read_text().splitlines()][:16]
    data = tmp_path / "mine.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{k}", "prompt": r["prompt"], "response": r["response"]}) + "\n"
                            for k, r in enumerate(rows)))
    run = run_sft(tmp_path / "run", model=cfg["model"], data=str(data), preset="smoke", progress=False,
                  checkpoints="none", sft={"epochs": 2})
    table = write_diagnosis(run)
    assert len(table) == 16 and set(table["cause"]) <= set(CAUSE_ORDER) | {"none", "unattributed"}
    know = pd.read_parquet(run / "evidence" / "knowledge.parquet")
    assert set(know.index) == {f"q{k}" for k in range(16)} and know["category"].notna().all()
    assert table["evidence"].str.len().gt(0).all()


def test_cause_split_shares_sum_to_one(smoke_run: Path) -> None:
    split = cause_split(write_diagnosis(smoke_run))
    assert split.loc["total", "unlearned samples"] == split["unlearned samples"].iloc[:-1].sum()
    if split.loc["total", "unlearned samples"]:
        assert np.isclose(split["share"].iloc[:-1].sum(), 1.0)


def test_scoring_counts_and_excludes_learned() -> None:
    diag = pd.DataFrame({
        "id": ["1", "2", "3", "4", "5", "6"],
        "learned": [False, False, False, True, False, False],
        "cause": ["missing_knowledge", "data_conflict", "missing_knowledge", "none", "unattributed", "rare_pattern"],
    })
    truth = pd.Series({"1": "missing_knowledge", "2": "data_conflict", "3": "data_conflict",
                       "4": "pretrain_conflict", "5": "rare_pattern", "6": "none"})
    s = score_diagnosis(diag, truth)
    assert s.scored == 5 and s.excluded_learned == 1
    assert s.per_cause.loc["missing_knowledge", "precision"] == 0.5
    assert s.per_cause.loc["missing_knowledge", "recall"] == 1.0
    assert s.per_cause.loc["data_conflict", "recall"] == 0.5
    assert s.per_cause.loc["rare_pattern", "f1"] == 0.0
    assert s.confusion.loc["data_conflict", "missing_knowledge"] == 1
    with pytest.raises(ValueError, match="not in the truth"):
        score_diagnosis(diag, truth.drop("1"))


def test_cli_diagnose_and_score(smoke_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["diagnose", str(smoke_run)]) == 0
    world = Path(pd.read_json(smoke_run / "config.json", typ="series")["world"])
    assert main(["score", str(smoke_run), "--truth", str(world / "truth.jsonl")]) == 0
    out = capsys.readouterr().out
    assert "macro-F1" in out and (smoke_run / "score.json").exists()


def test_macro_f1_averages_only_planted_causes() -> None:
    diag = pd.DataFrame({"id": ["1", "2", "3"], "learned": [False] * 3,
                         "cause": ["missing_knowledge", "left_forgetting", "data_conflict"]})
    truth = pd.Series({"1": "missing_knowledge", "2": "missing_knowledge", "3": "data_conflict"})
    s = score_diagnosis(diag, truth)
    assert s.per_cause.loc["left_forgetting", "support"] == 0
    assert np.isclose(s.macro_f1, (2 * 1.0 * 0.5 / 1.5 + 1.0) / 2)
