"""The one interaction-tracking engine: its table, resume, the validation / test split, set cross-entropy."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from interactions_helpers import PROMPT

from ilpnb.config import DynamicsConfig
from ilpnb.data.records import SFTRecord
from ilpnb.interactions import TRACK_SCHEMA, set_cross_entropy, split_prompts, track, track_sets

SETTINGS = DynamicsConfig(max_players=5, and_or_iterations=30)
PROMPTS = [SFTRecord(id="a", prompt=PROMPT, response="paris is the answer"),
           SFTRecord(id="b", prompt="what is the capital city of germany ?", response="berlin")]


def _loader(models: dict, tok):
    calls: list[str] = []

    def load(name):
        calls.append(name)
        return models[name], tok
    return load, calls


def test_one_table_in_the_engine_schema(llama, qwen2, chat_tokenizer) -> None:
    load, calls = _loader({"base": llama, "tuned": qwen2}, chat_tokenizer)
    table = track(["base", "tuned"], PROMPTS, SETTINGS, loader=load)
    assert calls == ["base", "tuned"]
    assert list(table.columns[:len(TRACK_SCHEMA)]) == list(TRACK_SCHEMA)
    assert len(table) == 2 * 2 * 2 * 2 ** 5  # prompts × checkpoints × {and, or} × subsets
    assert table[["prompt_id", "step"]].apply(tuple, axis=1).is_monotonic_increasing
    assert set(table["status"]) <= {"preserved", "emerged", "removed", "none"}
    for pid, rows in table.groupby("prompt_id"):
        # same players and the same target at both checkpoints
        words = [tuple(rows[(rows["step"] == s) & (rows["order"] == 1) & (rows["kind"] == "and")]["words"])
                 for s in (0, 1)]
        assert words[0] == words[1] and len(words[0]) == 5
        assert rows["target"].nunique() == 1
        # statuses follow the set definitions
        keys = lambda r: set(zip(r["mask"], r["kind"]))  # noqa: E731
        sets = track_sets([keys(rows[(rows["step"] == s) & rows["salient"]]) for s in (0, 1)])
        for t in (0, 1):
            at = rows[rows["step"] == t]
            for status in ("preserved", "emerged", "removed"):
                assert keys(at[at["status"] == status]) == sets[t][status], (pid, t, status)
        # the AND-OR split rebuilds v(N) (up to its bounded noise term)
        for s in (0, 1):
            at = rows[rows["step"] == s]
            assert at["value"].sum() == pytest.approx(at["v"][at["mask"] == at["mask"].max()].iloc[0], abs=0.2)
    # the two models are two games
    a, b = (table[(table["prompt_id"] == "a") & (table["step"] == s)]["value"].to_numpy() for s in (0, 1))
    assert not np.allclose(a, b)


def test_a_store_resumes_without_loading_a_model(llama, qwen2, chat_tokenizer, tmp_path) -> None:
    load, _ = _loader({"base": llama, "tuned": qwen2}, chat_tokenizer)
    first = track(["base", "tuned"], PROMPTS, SETTINGS, store=tmp_path, loader=load)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "players.json", "step-000000.json", "step-000000.parquet", "step-000001.json", "step-000001.parquet"]

    def refuse(name):
        raise AssertionError(f"{name} loaded again")
    again = track(["base", "tuned"], PROMPTS, SETTINGS, store=tmp_path, loader=refuse)
    pd.testing.assert_frame_equal(first, again)
    # a new checkpoint is computed with the stored players
    load3, calls = _loader({"base": llama, "tuned": qwen2, "more": llama}, chat_tokenizer)
    three = track(["base", "tuned", "more"], PROMPTS, SETTINGS, store=tmp_path, loader=load3)
    assert calls == ["more"]
    base, more = (three[three["step"] == s].reset_index(drop=True) for s in (0, 2))
    np.testing.assert_allclose(base["v"], more["v"], atol=1e-5)  # the same model, the same game


def test_bad_calls(llama, chat_tokenizer) -> None:
    load, _ = _loader({"base": llama}, chat_tokenizer)
    with pytest.raises(ValueError, match="unique"):
        track(["base"], [PROMPTS[0], PROMPTS[0]], SETTINGS, loader=load)
    with pytest.raises(ValueError, match="at least one"):
        track([], PROMPTS, SETTINGS, loader=load)


def test_validation_and_test_prompts_are_disjoint_and_seeded() -> None:
    recs = [SFTRecord(id=f"p{i}", prompt=f"q {i}", response="a") for i in range(9)]
    split = split_prompts(recs, 0.5, seed=0)
    assert set(split) == {r.id for r in recs}
    val = {k for k, v in split.items() if v == "validation"}
    test = {k for k, v in split.items() if v == "test"}
    assert val and test and not val & test and len(val) == 4  # round(4.5) = 4
    assert split_prompts(recs, 0.5, seed=0) == split
    assert split_prompts(recs, 0.5, seed=1) != split
    assert list(split_prompts(recs[:2], 0.9).values()).count("test") == 1  # one is always left for test
    fixed = [SFTRecord(id="x", prompt="q", response="a", meta={"split": "test"}), *recs[:3]]
    assert split_prompts(fixed, 1.0)["x"] == "test"
    with pytest.raises(ValueError, match="split"):
        split_prompts([SFTRecord(id="x", prompt="q", response="a", meta={"split": "train"})])


def test_set_cross_entropy_rebuilds_the_output_from_one_set() -> None:
    # one prompt, two players (masks 0..3), one kind; at step 1: I(∅) = 0.5, {0} preserved 1.0,
    # {1} emerged -2.0, {0,1} not salient 0.1
    rows = pd.DataFrame({"prompt_id": "p", "step": 1, "kind": "and", "mask": [0, 1, 2, 3],
                         "value": [0.5, 1.0, -2.0, 0.1], "salient": [False, True, True, False],
                         "status": ["none", "preserved", "emerged", "none"], "v": [0.5, 1.5, -1.5, -0.4]})
    ce = set_cross_entropy(rows).iloc[0]
    sp = lambda x: float(np.logaddexp(0.0, -x))  # noqa: E731
    assert ce["v_full"] == pytest.approx(-0.4)
    assert ce["ce_model"] == pytest.approx(sp(-0.4))
    assert ce["ce_all"] == pytest.approx(sp(0.5 + 1.0 - 2.0 + 0.1))
    assert ce["ce_salient"] == pytest.approx(sp(0.5 + 1.0 - 2.0))
    assert ce["ce_preserved"] == pytest.approx(sp(1.5))
    assert ce["ce_emerged"] == pytest.approx(sp(-1.5))
    # separate AND and OR transforms of one v: only the AND terms are summed
    both = pd.concat([rows, rows.assign(kind="or", value=[9.0, 9.0, 9.0, 9.0])])
    assert set_cross_entropy(both, additive=False).iloc[0]["ce_all"] == pytest.approx(ce["ce_all"])
