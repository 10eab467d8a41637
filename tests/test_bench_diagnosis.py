"""The pure helpers of benchmarks/bench_diagnosis.py: aggregation of per-run scores into
mean / sd / min, clean share, convergence and baseline summaries, the closing lines. No model
is trained."""

from __future__ import annotations

import json
import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from script_loader import load_script

bd = load_script("benchmarks/bench_diagnosis.py", "bench_diagnosis")
CAUSES = bd.CAUSES


def _row(tag: str, family: str, macro: float, f1: dict[str, float], best: float = 0.3, corpus: float = 0.4,
         share: float = 0.1, converged: bool = True, seed: int = 0) -> dict:
    row = {"world": tag, "tag": tag, "family": family, "sft_seed": seed, "macro_f1": macro,
           "best_sft_only": best, "corpus": corpus, "unlearned": 50, "unlearned_clean_share": share,
           "converged": converged}
    row.update({f"f1_{c}": f1.get(c, math.nan) for c in CAUSES})
    return row


def test_worlds_list() -> None:
    worlds = bd.WORLDS
    assert len(worlds) >= 8
    assert sum(w["family"] == bd.HELDOUT for w in worlds) >= 2
    assert worlds[0]["family"] == bd.PROJECT and "small" in worlds[0]["tag"]
    assert len({w["tag"] for w in worlds}) == len(worlds)
    assert {w["family"] for w in worlds[:2]} == {bd.PROJECT, bd.HELDOUT}


def test_summarize_mean_sd_min_ignores_nan() -> None:
    s = bd.summarize([0.8, math.nan, 0.9, 1.0, None])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(0.9)
    assert s["sd"] == pytest.approx(np.std([0.8, 0.9, 1.0], ddof=1))
    assert s["min"] == pytest.approx(0.8) and s["max"] == pytest.approx(1.0)
    one = bd.summarize([0.7])
    assert one["mean"] == 0.7 and one["min"] == 0.7 and math.isnan(one["sd"]) and one["n"] == 1
    empty = bd.summarize([math.nan])
    assert empty["n"] == 0 and math.isnan(empty["mean"]) and math.isnan(empty["min"])


def test_aggregate_per_cause_and_macro() -> None:
    rows = [_row("a", bd.PROJECT, 0.9, {c: 0.9 for c in CAUSES}),
            _row("b", bd.PROJECT, 0.7, {**{c: 0.7 for c in CAUSES}, "left_forgetting": math.nan}),
            _row("c", bd.HELDOUT, 0.8, {c: 0.5 for c in CAUSES})]
    t = bd.aggregate(rows)
    assert list(t.index) == [*CAUSES, "macro-F1"]
    assert list(t.columns) == ["mean", "sd", "min", "n"]
    assert t.loc["macro-F1", "mean"] == pytest.approx(0.8)
    assert t.loc["macro-F1", "sd"] == pytest.approx(0.1)
    assert t.loc["macro-F1", "min"] == pytest.approx(0.7)
    assert t.loc["macro-F1", "n"] == 3
    # a cause not scored in a run (NaN) is left out of that cause's statistics
    assert t.loc["left_forgetting", "n"] == 2
    assert t.loc["left_forgetting", "mean"] == pytest.approx(0.7)
    assert t.loc["left_forgetting", "min"] == pytest.approx(0.5)
    assert t.loc["rare_pattern", "min"] == pytest.approx(0.5)

    fam = bd.aggregate_by_family(rows)
    assert fam[("all", "mean")]["macro-F1"] == pytest.approx(0.8)
    assert fam[(bd.PROJECT, "mean")]["macro-F1"] == pytest.approx(0.8)
    assert fam[(bd.PROJECT, "min")]["macro-F1"] == pytest.approx(0.7)
    assert fam[(bd.HELDOUT, "mean")]["macro-F1"] == pytest.approx(0.8)
    assert fam[(bd.HELDOUT, "n")]["macro-F1"] == 1
    only = bd.aggregate_by_family(rows[:2])
    assert {c[0] for c in only.columns} == {"all", bd.PROJECT}


def test_per_world_baselines_mean_max() -> None:
    rows = [_row("a", bd.PROJECT, 0.9, {}, best=0.2, corpus=0.5, seed=0),
            _row("a", bd.PROJECT, 0.8, {}, best=0.4, corpus=0.3, converged=False, seed=1),
            _row("b", bd.HELDOUT, 0.6, {}, best=math.nan, corpus=math.nan)]
    t = bd.per_world(rows)
    assert list(t.index) == ["a", "b"]
    assert t.loc["a", "runs"] == 2
    assert t.loc["a", "macro_mean"] == pytest.approx(0.85) and t.loc["a", "macro_min"] == pytest.approx(0.8)
    assert t.loc["a", "sft_only_mean"] == pytest.approx(0.3) and t.loc["a", "sft_only_max"] == pytest.approx(0.4)
    assert t.loc["a", "corpus_mean"] == pytest.approx(0.4) and t.loc["a", "corpus_max"] == pytest.approx(0.5)
    assert t.loc["a", "converged"] == "1/2"
    assert math.isnan(t.loc["b", "sft_only_max"])


def test_final_lines_format() -> None:
    rows = [_row("a", bd.PROJECT, 0.9, {}, best=0.2), _row("b", bd.HELDOUT, 0.8, {}, best=0.4)]
    macro, shortcut = bd.final_lines(rows)
    assert macro == ("macro-F1 over 2 runs: mean 0.850, sd 0.071, min 0.800 "
                     "(goal mean >= 0.85, min >= 0.75)")
    assert shortcut == "best sft-only shortcut baseline macro-F1: mean 0.30, max 0.40 (goal <= 0.45)"
    single = bd.final_lines(rows[:1])[0]
    assert single.startswith("macro-F1 over 1 runs: mean 0.900, sd nan, min 0.900")


def test_unlearned_clean_share() -> None:
    diag = pd.DataFrame({"id": ["1", "2", "3", "4"], "learned": [False, False, True, False]})
    truth = pd.Series({"1": "none", "2": "data_conflict", "3": "none", "4": "none"})
    assert bd.unlearned_clean_share(diag, truth) == (3, 2, pytest.approx(2 / 3))
    all_learned = diag.assign(learned=True)
    n, clean, share = bd.unlearned_clean_share(all_learned, truth)
    assert (n, clean) == (0, 0) and math.isnan(share)


def test_convergence_summary() -> None:
    ok, text = bd.convergence_summary([{"stage": 0, "converged": True, "epoch": 12.0, "checked": True},
                                       {"stage": 1, "converged": False, "epoch": 30.0, "checked": True}])
    assert not ok and text == "s0 converged e12, s1 cap e30"
    assert bd.convergence_summary([{"stage": 0, "converged": True, "epoch": 5}]) == (True, "s0 converged e5")
    assert bd.convergence_summary([]) == (False, "no convergence.json")
    assert bd.convergence_summary([{"stage": 0, "converged": False, "checked": False, "epoch": 8}]) == \
        (False, "s0 unchecked e8")


def test_baseline_summary() -> None:
    table = pd.DataFrame({"name": ["length", "surface", "corpus", "combined"],
                          "reads": ["sft.jsonl", "sft.jsonl", "sft.jsonl+pretrain.txt", "sft.jsonl+pretrain.txt"],
                          "macro_f1": [0.2, 0.35, 0.6, 0.7]})
    s = bd.baseline_summary(table)
    assert s == {"best_sft_only": pytest.approx(0.35), "best_sft_only_name": "surface", "corpus": pytest.approx(0.6)}
    none = bd.baseline_summary(None)
    assert math.isnan(none["best_sft_only"]) and none["best_sft_only_name"] is None and math.isnan(none["corpus"])
    no_corpus = bd.baseline_summary(table.iloc[:2])
    assert math.isnan(no_corpus["corpus"])


def test_make_row_and_json() -> None:
    per = pd.DataFrame({"f1": [1.0, 0.5, 0.0, math.nan, 0.8], "support": [2, 2, 1, 0, 3]},
                       index=pd.Index(CAUSES, name="cause"))
    score = SimpleNamespace(per_cause=per, macro_f1=0.575, scored=10, excluded_learned=4)
    diag = pd.DataFrame({"id": [str(i) for i in range(12)], "learned": [False] * 10 + [True] * 2})
    truth = pd.Series({str(i): ("none" if i < 2 or i >= 10 else "rare_pattern") for i in range(12)})
    world = {"name": "w", "tag": "w", "family": bd.HELDOUT}
    row = bd.make_row(world, 1, diag, truth, score, None, [{"stage": 0, "converged": True, "epoch": 3}],
                      {"sft_s": 12.34}, forgotten_share=0.7)
    assert row["unlearned_forgotten_share"] == 0.7
    assert row["unlearned"] == 10 and row["unlearned_clean"] == 2 and row["unlearned_clean_share"] == 0.2
    assert row["f1_missing_knowledge"] == 1.0 and math.isnan(row["f1_left_forgetting"])
    assert row["support_rare_pattern"] == 3 and row["sft_s"] == 12.3 and row["converged"]
    assert row["planted_but_learned"] == 4 and math.isnan(row["best_sft_only"])
    text = json.dumps(bd.jsonable({"rows": [row], "x": np.float64(math.nan), "n": np.int64(3)}), allow_nan=False)
    back = json.loads(text)
    assert back["x"] is None and back["n"] == 3 and back["rows"][0]["f1_left_forgetting"] is None
    line = bd.run_line(1, 2, {**row, "best_sft_only": 0.31, "best_sft_only_name": "surface", "corpus": 0.4})
    assert line.startswith("[1/2] w, sft seed 1: macro-F1 0.575 over 10 unlearned (20% planted clean, 70% forgotten)")


def test_unlearned_by_stage_counts_each_cause_in_the_last_and_the_earlier_stages() -> None:
    diag = pd.DataFrame({"id": ["a", "b", "c", "d", "e"], "learned": [False, True, False, True, False]})
    truth = pd.Series({"a": "none", "b": "none", "c": "data_conflict", "d": "data_conflict"})  # e: not in truth
    stage = pd.Series({"a": 0, "b": 1, "c": 1, "d": 0})  # e: no stage, counts as the last
    counts = bd.unlearned_by_stage(diag, truth, stage)
    assert counts["n_earlier_none"] == 1 and counts["unlearned_earlier_none"] == 1
    assert counts["n_last_none"] == 2 and counts["unlearned_last_none"] == 1  # b learned, e unlearned
    assert counts["n_last_data_conflict"] == 1 and counts["unlearned_last_data_conflict"] == 1
    assert counts["n_earlier_data_conflict"] == 1 and counts["unlearned_earlier_data_conflict"] == 0
    table = bd.stage_table([counts, counts])
    assert table.loc["none", "earlier unlearned"] == "2/2 (100%)"
    assert table.loc["rare_pattern", "last unlearned"] == "0/0"
    assert table.loc["data_conflict", "earlier unlearned"] == "0/2 (0%)"
