"""Planting fidelity: the verdict of each criterion on scripted models, the table's contract,
graceful degradation and named errors, and a real run on the smoke world's base model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import ilpnb.probe.fidelity as fidelity
from ilpnb.config import get_preset
from ilpnb.data.world import generate_world
from ilpnb.models.tokenizer import train_tokenizer
from ilpnb.probe.fidelity import CRITERIA, fidelity_samples, planting_fidelity
from ilpnb.probe.scoring import Scores


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(get_preset("smoke").world, tmp_path_factory.mktemp("fid") / "world")


@pytest.fixture(scope="module")
def tok(world: Path):
    return train_tokenizer((world / "pretrain.txt").read_text().splitlines(), vocab_size=1024)


def _facts(world: Path) -> dict[tuple[str, str], dict]:
    return {(f["subject"], f["relation"]): f for f in json.loads((world / "world.json").read_text())["facts"]}


def _script(monkeypatch: pytest.MonkeyPatch, world: Path, tok, knows) -> None:
    """Replace the model by a rule: ``knows(fact, obj)`` -> log-probability of ``obj`` as the
    answer to the fact's probe (the greedy answer is the most likely value of the kind)."""
    facts = _facts(world)
    probes = [json.loads(line) for line in (world / "probes.jsonl").read_text().splitlines()]
    prompt_fact = {p["prompt"]: facts[(p["subject"], p["relation"])] for p in probes}
    kinds: dict[str, set[str]] = {}
    for f in facts.values():
        kinds.setdefault(f["relation"], set()).add(f["object"])

    def logprob(fact: dict, obj: str) -> float:
        return float(knows(fact, obj))

    def fake_run_probes(model, tokenizer, rows, batch_size=64, n_pass=10):
        out = []
        for p in rows:
            fact = prompt_fact[p["prompt"]]
            best = max(sorted(kinds[fact["relation"]]), key=lambda v: logprob(fact, v))
            out.append({"id": p["id"], "subject": p["subject"], "relation": p["relation"], "answer": p["answer"],
                        "recall": best == p["answer"] and logprob(fact, best) > logprob(fact, "?"),
                        "answer_logprob": logprob(fact, p["answer"]), "mc_p_gold": np.nan, "mc_correct": False,
                        "pass_at_n": np.nan, "n_options": 1 + len(p.get("options", []))})
        return pd.DataFrame(out)

    def fake_score(model, pairs, batch_size=32, pad_id=0, first_logprobs=False):
        lps = []
        for ctx, cont in pairs:
            prompt = tok.decode(ctx, skip_special_tokens=True)
            lps.append(logprob(prompt_fact[prompt], tok.decode(cont).strip()))
        n = np.ones(len(pairs), dtype=int)
        return Scores(logprob=np.array(lps), n_tokens=n, n_correct=n)

    monkeypatch.setattr(fidelity, "run_probes", fake_run_probes)
    monkeypatch.setattr(fidelity, "score_continuations", fake_score)


def _oracle(fact: dict, obj: str) -> float:
    """Knows exactly the stated facts; flat on everything else."""
    return 0.0 if fact["stated"] and obj == fact["object"] else -4.0


def test_a_faithful_base_model_passes_every_check(monkeypatch, world: Path, tok) -> None:
    _script(monkeypatch, world, tok, _oracle)
    table = planting_fidelity(world, model=None, tokenizer=tok)
    truth = pd.read_json(world / "truth.jsonl", lines=True)["planted_cause"].value_counts()
    assert list(table.columns) == ["cause", "criterion", "samples", "passed", "share"]
    assert list(table["cause"]) == [c for c in CRITERIA if c in truth]
    assert dict(zip(table["cause"], table["samples"])) == truth.to_dict()
    assert (table["share"] == 1.0).all(), table


def test_a_model_that_knows_the_unstated_facts_fails_the_chance_check(monkeypatch, world: Path, tok) -> None:
    _script(monkeypatch, world, tok, lambda f, o: 0.0 if o == f["object"] else -20.0)
    table = planting_fidelity(world, model=None, tokenizer=tok).set_index("cause")
    assert table.loc["missing_knowledge", "share"] == 0.0
    assert table.loc["data_conflict", "share"] == 0.0
    assert table.loc["none", "share"] == 1.0
    per = fidelity_samples(world, model=None, tokenizer=tok)
    assert per.loc[per["cause"] == "missing_knowledge", "detail"].str.contains("p_gold 1.00 among").all()


def test_a_model_that_believes_the_sft_answers_fails_the_conflict_check(monkeypatch, world: Path, tok) -> None:
    meta = json.loads((world / "world.json").read_text())
    sft_obj = {}
    for s in meta["samples"]:
        for rel, obj in zip(s["relations"], s["answer_objects"]):
            sft_obj[(s["subject"], rel)] = obj
    _script(monkeypatch, world, tok,
            lambda f, o: 0.0 if o == sft_obj.get((f["subject"], f["relation"]), f["object"]) else -4.0)
    table = planting_fidelity(world, model=None, tokenizer=tok).set_index("cause")
    assert table.loc["pretrain_conflict", "share"] == 0.0
    assert table.loc["none", "share"] == 1.0


def test_chance_allows_a_margin_and_forgetting_a_fact_fails_recall(monkeypatch, world: Path, tok) -> None:
    _script(monkeypatch, world, tok, _oracle)  # flat on unstated facts: chance even without margin
    assert planting_fidelity(world, None, tok, margin=1e-9).set_index("cause").loc["missing_knowledge", "share"] == 1.0
    # a slight lean towards the world's value of an unstated fact (e^1 against 1): within the margin only
    _script(monkeypatch, world, tok, lambda f, o: _oracle(f, o) + (not f["stated"] and o == f["object"]))
    assert planting_fidelity(world, None, tok).set_index("cause").loc["missing_knowledge", "share"] == 1.0
    assert planting_fidelity(world, None, tok, margin=1e-9).set_index("cause").loc["missing_knowledge", "share"] == 0.0
    _script(monkeypatch, world, tok, lambda f, o: -4.0)  # knows nothing
    table = planting_fidelity(world, None, tok).set_index("cause")
    assert table.loc["none", "share"] == 0.0 and table.loc["missing_knowledge", "share"] == 1.0


def test_without_world_json_the_table_degrades_gracefully(tmp_path: Path, world: Path, tok) -> None:
    folder = tmp_path / "other"
    folder.mkdir()
    for name in ("sft.jsonl", "truth.jsonl"):
        shutil.copy(world / name, folder / name)
    table = planting_fidelity(folder, model=None, tokenizer=tok)
    assert table["share"].isna().all()
    assert table["samples"].sum() == len((folder / "truth.jsonl").read_text().splitlines())
    assert "world.json" in table.attrs["note"]


def test_bad_folders_name_the_file_and_key(tmp_path: Path, world: Path, tok) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(world, folder)
    (folder / "truth.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="truth.jsonl"):
        planting_fidelity(folder, None, tok)
    shutil.copy(world / "truth.jsonl", folder / "truth.jsonl")
    meta = json.loads((folder / "world.json").read_text())
    del meta["samples"]
    (folder / "world.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="world.json: key 'samples'"):
        planting_fidelity(folder, None, tok)
    (folder / "truth.jsonl").write_text('{"id": "w00001"}\n')
    with pytest.raises(ValueError, match="truth.jsonl, line 1"):
        planting_fidelity(folder, None, tok)


def test_on_the_smoke_base_model(tmp_path_factory: pytest.TempPathFactory, world: Path) -> None:
    import torch

    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.pipeline.workbench import load_base_model, world_fidelity

    root = tmp_path_factory.mktemp("fidmodel")
    old = os.environ.get("ILPNB_CACHE")
    os.environ["ILPNB_CACHE"] = str(root / "cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        p = get_preset("smoke")
        model, tok = load_base_model(pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=False))
        table = planting_fidelity(world, model, tok)
        assert table["share"].between(0, 1).all() and (table["passed"] <= table["samples"]).all()
        per = fidelity_samples(world, model, tok)
        assert len(per) == table["samples"].sum() and per["detail"].str.len().gt(0).all()
        again = world_fidelity(root / "run", "smoke")  # the notebook helper: its own world, same settings
        pd.testing.assert_frame_equal(again, table)
    finally:
        torch.set_num_threads(threads)
        if old is None:
            os.environ.pop("ILPNB_CACHE", None)
        else:
            os.environ["ILPNB_CACHE"] = old
