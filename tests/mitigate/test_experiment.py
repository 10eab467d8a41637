"""Mitigation experiments on a smoke world: matched compute in every arm, measurement on the
original labels, the shuffle control not being the treated run, CPT documents, the crossover.

The run (``conftest.py``) has the planted truth as its diagnosis, so every cause has targets."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from ilpnb.cli import main
from ilpnb.mitigate.experiment import Experiment, run_mitigation, summarize
from ilpnb.mitigate.interventions import same_training
from ilpnb.mitigate.measure import held_out_probes, learned_table

PLAN_COLUMNS = ["steps", "examples", "tokens"]


def _arms(table: pd.DataFrame, cause: str) -> pd.DataFrame:
    return table[table["cause"] == cause].set_index("arm")


def test_replay_arms_are_compute_matched_on_the_same_targets(run: Path) -> None:
    table = run_mitigation(run, "left_forgetting", "replay", seeds=[0])
    own = _arms(table, "left_forgetting")
    assert set(own.index) == {"treated", "generic", "placebo", "unmodified"}
    # the generic control spends exactly the treated arm's extra examples and tokens, on the same targets
    assert own.at["treated", "examples"] == own.at["generic", "examples"] > own.at["unmodified", "examples"]
    assert own.at["treated", "tokens"] == own.at["generic", "tokens"]
    assert abs(own.at["treated", "steps"] - own.at["generic", "steps"]) <= 2 * 8  # ceil per stage x epochs at most
    # the placebo replays as many samples as the treated arm (the former control replayed fewer)
    extra = own["examples"] - own.at["unmodified", "examples"]
    assert extra["placebo"] == extra["treated"] > 0
    # every arm is judged on the same ids
    assert own["unlearned"].nunique() == 1 and own.at["treated", "unlearned"] > 0
    summary = summarize(table)
    row = summary[summary["cause"] == "left_forgetting"].iloc[0]
    assert row["tokens_treated"] == row["tokens_generic"]
    assert {"vs_generic", "vs_placebo", "cause_specific"} <= set(summary.columns)


def test_relabel_is_measured_on_the_original_labels(run: Path) -> None:
    table = run_mitigation(run, "data_conflict", "relabel", seeds=[0], arms=("treated",))
    exp = Experiment(run)
    treated = exp.plan("data_conflict", "relabel", 4, 0)
    assert treated.relabel
    arm = run / "mitigation" / "data_conflict-relabel-x4" / "seed-0" / "treated"
    measured = learned_table(arm, treated.to_dict(), exp.ctx)
    trained_on = pd.read_parquet(arm / "samples.parquet").set_index("id")["final_loss"]  # against the new labels
    changed = list(treated.relabel)
    kept = [i for i in trained_on.index if i not in treated.relabel]
    assert (measured.loc[changed, "loss"] - trained_on[changed]).abs().min() > 1e-3
    assert (measured.loc[kept, "loss"] - trained_on[kept]).abs().max() < 1e-3
    ids = exp.judged(treated)["data_conflict"]
    row = _arms(table, "data_conflict").loc["treated"]
    assert row["recovery"] == pytest.approx(measured.loc[ids, "learned"].mean())


def test_shuffle_controls_are_not_the_treated_run(run: Path) -> None:
    table = run_mitigation(run, "left_forgetting", "shuffle", seeds=[0])
    own = _arms(table, "left_forgetting")
    assert "placebo" not in own.index  # shuffling trains the same data whichever ids are named
    assert own.at["generic", "run_dir"] == own.at["unmodified", "run_dir"] != own.at["treated", "run_dir"]
    treated_cfg = json.loads((run / own.at["treated", "run_dir"] / "config.json").read_text())
    plain_cfg = json.loads((run / own.at["generic", "run_dir"] / "config.json").read_text())
    assert treated_cfg["stages"] == "mixed" and plain_cfg["stages"] == "sequential"
    assert own.at["treated", "examples"] == own.at["generic", "examples"]  # the same data, the same seed, reordered
    exp = Experiment(run)
    assert not same_training(exp.plan("left_forgetting", "shuffle", 4, 0), exp.plan("left_forgetting", "replay", 4, 0))


def test_cpt_knowledge_is_the_fact_in_paraphrases_not_the_sample(run: Path) -> None:
    exp = Experiment(run)
    target = exp.plan("missing_knowledge", "cpt", 4, 0).cpt_ids[0]
    docs = exp.knowledge([target], seed=0)
    meta = json.loads((Path(exp.config["world"]) / "world.json").read_text())
    sample = next(s for s in meta["samples"] if s["id"] == target)
    assert len(docs) == 20 * len(sample["relations"])
    assert len(set(docs)) > 3  # paraphrases, not one line repeated
    prompt, response = exp.records.at[target, "prompt"], exp.records.at[target, "response"]
    assert all(sample["subject"] in d and prompt not in d and d != response for d in docs)
    assert all(any(obj in d for obj in sample["answer_objects"]) for d in docs)


def test_cpt_of_a_pretraining_conflict_states_the_sft_answer_not_the_corpus_belief(run: Path) -> None:
    exp = Experiment(run)
    meta = json.loads((Path(exp.config["world"]) / "world.json").read_text())
    corpus = (Path(exp.config["world"]) / "pretrain.txt").read_text()
    for target in exp.plan("pretrain_conflict", "cpt", 4, 0).cpt_ids:
        sample = next(s for s in meta["samples"] if s["id"] == target)
        docs = exp.knowledge([target], seed=0)
        response = exp.records.at[target, "response"]
        said = [o for o in sample["answer_objects"] if o in response]  # the SFT answer's values
        assert said and all(any(o in d for o in said) for d in docs)
        if len(sample["relations"]) == 1:  # its one fact contradicts the corpus: never said there
            assert not any(d in corpus for d in docs)


def test_held_out_probes_leave_out_the_facts_the_sft_set_asks_for(run: Path) -> None:
    exp = Experiment(run)
    meta = json.loads((Path(exp.config["world"]) / "world.json").read_text())
    asked = {(s["subject"], r) for s in meta["samples"] for r in s["relations"]}
    probes = held_out_probes(exp.config)
    assert probes and not {(p["subject"], p["relation"]) for p in probes} & asked
    everything = sum(1 for _ in open(Path(exp.config["world"]) / "probes.jsonl"))
    assert len(probes) < everything


def test_cli_reports_arms_and_writes_the_crossover(run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["mitigate", str(run), "--cause", "left_forgetting", "--method", "replay", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "generic control" in out and "placebo" in out and "treated - generic" in out
    assert main(["mitigate", str(run), "--crossover", "--causes", "left_forgetting", "rare_pattern",
                 "--methods", "replay", "upsample", "--seeds", "1"]) == 0
    matrix = pd.read_parquet(run / "mitigation" / "crossover.parquet")
    assert len(matrix) == 4 and set(matrix["method"]) == {"replay", "upsample"}
    assert matrix["recovery"].between(0, 1).all() and (matrix["unlearned"] > 0).all()


def test_cpt_arms_record_pretraining_compute_and_the_longer_sft_comparison(run: Path) -> None:
    table = run_mitigation(run, "missing_knowledge", "cpt", seeds=[0], settings={"extra_epochs": 2})
    own = _arms(table, "missing_knowledge")
    assert {"treated", "generic", "placebo", "unmodified", "longer"} == set(own.index)
    assert own.at["treated", "cpt_tokens"] > 0 and own.at["treated", "cpt_steps"] > 0
    assert own.at["placebo", "cpt_tokens"] > 0  # the same plan on other samples' facts
    assert (own.loc[["generic", "unmodified", "longer"], "cpt_tokens"] == 0).all()
    # the generic control reads the targets as often as the knowledge documents stated their facts
    assert own.at["generic", "examples"] > own.at["unmodified", "examples"] == own.at["treated", "examples"]
    # 2 more epochs per stage: 2 / 8 of the unmodified run's steps more
    assert own.at["longer", "steps"] == own.at["unmodified", "steps"] * (8 + 2) // 8
    assert own["unlearned"].nunique() == 1


def test_progressive_epochs_stop_when_the_targets_loss_stops_improving(run: Path) -> None:
    table = run_mitigation(run, "rare_pattern", "progressive", seeds=[0], factor=3,
                           arms=("treated", "generic", "placebo", "unmodified"))
    own = _arms(table, "rare_pattern")
    chosen = int(own.at["treated", "factor"])
    assert own.at["treated", "run_dir"].endswith(f"progressive-e{chosen}")
    assert "placebo" not in own.index  # every sample trains longer, whichever ids are picked
    # the whole set trains `chosen` more epochs per stage (8 at smoke) ...
    assert own.at["treated", "examples"] == own.at["unmodified", "examples"] * (8 + chosen) // 8
    # ... and the generic control, a run of its own, spends as many extra examples on the targets alone
    assert own.at["generic", "run_dir"] != own.at["treated", "run_dir"]
    extra = own["examples"] - own.at["unmodified", "examples"]
    targets = Experiment(run).plan("rare_pattern", "progressive", 1, 0).targets
    assert abs(extra["generic"] - extra["treated"]) <= len(targets) * 8  # rounding: one copy per target and epoch
    assert extra["generic"] > 0
    seed_dir = run / "mitigation" / "rare_pattern-progressive-x3" / "seed-0"
    targets = Experiment(run).plan("rare_pattern", "progressive", 1, 0).targets
    loss = {int(p.name.split("-e")[1]): pd.read_parquet(p / "samples.parquet").set_index("id")["final_loss"]
            .reindex(targets).mean() for p in seed_dir.glob("progressive-e*")}
    assert sorted(loss) == list(range(1, len(loss) + 1)) and chosen in loss
    for e in range(2, chosen + 1):  # every accepted step improved the targets' loss by at least 2%
        assert loss[e] <= 0.98 * loss[e - 1]
    if chosen < 3:  # and the next one did not
        assert loss[chosen + 1] > 0.98 * loss[chosen]
