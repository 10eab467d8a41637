"""The planted real world: planting rules (model-free), the folder, and no shortcuts in sft.jsonl.

The model is replaced by a table of what it "knows" (the measurement itself is exercised on
the packaged SmolLM2 by the notebook tier): the tests check the planting rules and the
measurement's bookkeeping, not a model's knowledge.
"""

from __future__ import annotations

import json
import random
from collections import Counter

import pandas as pd
import pytest

from ilpnb.data.realworld import (
    PHRASINGS,
    RETRAINED,
    Fact,
    Knowledge,
    plant,
    realworld_counts,
)

CAUSES = ("none", "pretrain_conflict", "missing_knowledge", "data_conflict", "left_forgetting", "rare_pattern")


def _facts(n: int = 400) -> list[Fact]:
    rng = random.Random(1)
    syll = ["ka", "lo", "mi", "ra", "su", "te", "vo", "ni", "pe", "da"]
    names = sorted({"".join(rng.sample(syll, 3)).title() for _ in range(4 * n)})[:n]
    return [Fact(f"{name}land", "capital", f"{name[::-1].title()} City") for name in names]


def _knowledge(facts: list[Fact], known: int = 200) -> Knowledge:
    rng = random.Random(2)
    facts = rng.sample(facts, len(facts))  # known or not is not in the names
    every = set(range(len(PHRASINGS)))
    k = {f.subject: every - {rng.randrange(len(PHRASINGS) - 1)} for f in facts[:known]}  # one phrasing fails
    u = {f.subject: every - {rng.randrange(len(PHRASINGS))} for f in facts[known:]}
    return Knowledge(known=k, unknown=u)


def _world(seed: int = 0):
    facts = _facts()
    return facts, _knowledge(facts), plant(facts, _knowledge(facts), realworld_counts(36, 8), seed=seed)


def test_counts_stages_and_ids():
    _, _, w = _world()
    counts = Counter(w.truth.values())
    assert counts == realworld_counts(36, 8)
    by_stage = {s: Counter(w.truth[r.id] for r in w.records if r.stage == s) for s in (0, 1)}
    for cause in CAUSES:
        if cause == "left_forgetting":
            assert by_stage[1][cause] == 0 and by_stage[0][cause] == 8
        else:
            assert by_stage[0][cause] > 0 and by_stage[1][cause] > 0, cause
    ids = [r.id for r in w.records]
    assert len(set(ids)) == len(ids)
    # ids are in file order but the causes are shuffled within a stage
    assert [w.truth[i] for i in ids[:10]] != sorted(w.truth[i] for i in ids[:10])


def test_each_cause_follows_its_rule():
    facts, know, w = _world()
    value = {f.subject: f.value for f in facts}
    by_subject: dict[str, list] = {}
    for r in w.records:
        how, cause = w.planting[r.id], w.truth[r.id]
        by_subject.setdefault(how["subject"], []).append((r, cause))
        assert r.options is not None and len(r.options) == 3 and r.response not in r.options
        if cause == "rare_pattern":
            assert all(s in know.known for s in how["subjects"])
            assert all(value[s] in r.response for s in how["subjects"])
            continue
        phrasing = PHRASINGS.index(how["phrasing"])
        if cause in ("none", "pretrain_conflict", "left_forgetting"):
            assert how["subject"] in know.known and phrasing in know.known[how["subject"]]
        else:
            assert how["subject"] in know.unknown and phrasing in know.unknown[how["subject"]]
        if cause == "pretrain_conflict":
            assert how["answer"] != value[how["subject"]] and value[how["subject"]] not in r.response
        elif cause in ("none", "missing_knowledge", "left_forgetting"):
            assert value[how["subject"]] in r.response
    pairs = [g for g in by_subject.values() if any(c == "data_conflict" for _, c in g)]
    assert len(pairs) == 4
    for g in pairs:
        (a, _), (b, _) = g
        assert a.prompt != b.prompt and w.planting[a.id]["answer"] != w.planting[b.id]["answer"]
        assert a.stage == b.stage
    # consistent near-duplicates: clean pairs, two phrasings, the same answer
    clean_pairs = [g for g in by_subject.values() if len(g) == 2 and all(c == "none" for _, c in g)]
    assert clean_pairs and all(w.planting[a.id]["answer"] == w.planting[b.id]["answer"] and a.prompt != b.prompt
                               for (a, _), (b, _) in clean_pairs)
    # one answer style per phrasing, the same in both stages (stage 1 contradicts only the retrained phrasing)
    style = {}
    for r in w.records:
        how = w.planting[r.id]
        if how["phrasing"] not in (RETRAINED,) and "subjects" not in how:
            shape = r.response.replace(how["subject"], "{c}").replace(how["answer"], "{v}")
            assert style.setdefault(how["phrasing"], shape) == shape
    # left forgetting: the retrained phrasing in stage 0, retrained on other subjects in stage 1 in another style
    lf = [r for r in w.records if w.truth[r.id] == "left_forgetting"]
    retrained = [r for r in w.records if w.planting[r.id]["phrasing"] == RETRAINED and r.stage == 1]
    assert len(retrained) == len(lf) and all(w.truth[r.id] == "none" for r in retrained)
    same_style = [r for r in w.records if w.planting[r.id]["phrasing"] == RETRAINED and r.stage == 0
                  and w.truth[r.id] == "none"]
    assert len(same_style) == len(lf) // 2
    assert all(r.response.endswith(f"capital city is {w.planting[r.id]['answer']}.") for r in same_style)
    assert {w.planting[r.id]["subject"] for r in lf}.isdisjoint({w.planting[r.id]["subject"] for r in retrained})
    assert all(r.response == value[w.planting[r.id]["subject"]] for r in lf)
    assert all(r.response.endswith(".") and r.response != value[w.planting[r.id]["subject"]] for r in retrained)


def test_lengths_overlap_across_causes():
    facts = _facts()
    w = plant(facts, _knowledge(facts), realworld_counts(72, 16))
    words = pd.DataFrame([{"cause": w.truth[r.id], "words": len(r.response.split())} for r in w.records])
    ranges = words.groupby("cause")["words"].agg(["min", "max"])
    # every cause but left forgetting (bare values by construction of its interference) has short and long answers
    for cause in ("none", "pretrain_conflict", "missing_knowledge", "data_conflict"):
        assert ranges.loc[cause, "min"] <= 2 and ranges.loc[cause, "max"] >= 5, cause
    assert ranges.loc["rare_pattern", "min"] <= ranges.loc["none", "max"]


def test_seeded_and_too_little_knowledge_is_a_clear_error():
    facts, know, w = _world(seed=3)
    again = plant(facts, know, realworld_counts(36, 8), seed=3)
    assert [r.to_json() for r in again.records] == [r.to_json() for r in w.records]
    other = plant(facts, know, realworld_counts(36, 8), seed=4)
    assert [r.to_json() for r in other.records] != [r.to_json() for r in w.records]
    small = Knowledge(known=dict(list(know.known.items())[:10]), unknown=know.unknown)
    with pytest.raises(ValueError, match="real.world"):
        plant(facts, small, realworld_counts(36, 8))


def test_folder_contract_and_sft_only_shortcuts(tmp_path):
    from ilpnb.diagnose.baselines import max_sft_only_macro_f1, score_baselines
    from ilpnb.pipeline.realworld import write_realworld
    from ilpnb.runs import read_truth_file

    facts, _, w = _world()
    out = write_realworld(tmp_path / "w", w, facts, {"model": "fake"})
    assert sorted(p.name for p in out.iterdir()) == ["probes.jsonl", "sft.jsonl", "truth.jsonl", "world.json"]
    meta = json.loads((out / "world.json").read_text())
    assert meta["samples"] == len(w.records) and meta["stages"] == [0, 1]
    assert "planted_cause" not in (out / "world.json").read_text()
    assert "planted_cause" not in (out / "sft.jsonl").read_text()
    assert read_truth_file(out / "truth.jsonl").to_dict() == w.truth
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_realworld(out, w, facts, {})
    facts = _facts()
    big = write_realworld(tmp_path / "big", plant(facts, _knowledge(facts), realworld_counts(72, 16)), facts, {})
    table = score_baselines(big).set_index("name")
    # the shortcut rules of the honest-diagnosis issue: length, stage, duplicates and options
    # alone stay low
    rules = table.loc[["length@oracle", "stage@oracle", "duplicates@oracle", "options", "combined-sft"]]
    assert rules["macro_f1"].max() <= 0.45, rules["macro_f1"].to_string()
    # a classifier fitted on the truth finds the causes that are written in the data (a rare
    # composite template, a phrasing restyled later); the two that live in the model stay hidden
    assert table.loc[["surface-tree", "surface"], ["pretrain_conflict", "missing_knowledge"]].max().max() <= 0.4
    assert max_sft_only_macro_f1(table.reset_index()) <= 0.65


def test_heldout_questions_of_the_interaction_study(tmp_path):
    """Known capitals no SFT sample asks, in an SFT phrasing and the answer style SFT teaches for it."""
    from ilpnb.data.realworld import QUESTIONS, STYLES, country_facts
    from ilpnb.pipeline.real_interactions import dense_then_sparse, real_heldout_prompts
    from ilpnb.pipeline.realworld import write_realworld

    facts = [f for f in country_facts() if " " not in f.subject][:120]
    knowledge = _knowledge(facts, known=80)
    out = write_realworld(tmp_path / "w", plant(facts, knowledge, realworld_counts(24, 4)), facts, {})
    pd.DataFrame({"knowledge": ["known" if f.subject in knowledge.known else "unknown" for f in facts]},
                 index=pd.Index([f.subject for f in facts], name="subject")).to_parquet(out / "knowledge.parquet")
    sft = [json.loads(line) for line in (out / "sft.jsonl").read_text().splitlines()]
    value = {f.subject: f.value for f in facts}
    held = real_heldout_prompts(out, 6)
    assert len(held) == 6 and held == real_heldout_prompts(out, 6)
    for r in held:
        c = r.meta["subject"]
        assert c in knowledge.known and not any(c in s["prompt"] for s in sft)
        q = r.meta["phrasing"]
        assert q in QUESTIONS and r.prompt == q.format(c=c)
        same = [s for s in sft if any(s["prompt"] == q.format(c=k) for k in value)]
        styles = {k for s in same for k, st in enumerate(STYLES)
                  for x in value if s["prompt"] == q.format(c=x) and st.format(v=value[x], c=x) == s["response"]}
        assert r.response in {STYLES[k].format(v=value[c], c=c) for k in styles}
    steps = list(range(2, 42, 2))
    chosen = dense_then_sparse(steps, 8, 11)
    assert chosen[:8] == steps[:8] and len(chosen) == 11 and chosen[-1] == 40 and chosen == sorted(set(chosen))
    assert max(b - a for a, b in zip(chosen[8:], chosen[9:])) > 2  # sparser later
    assert dense_then_sparse([4, 8], 8, 11) == [4, 8]
