"""`ilpnb sft --world`: the dynamics table, exact reproduction against generation, the loss
mask, and the order in which stages and samples are trained."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sft_helpers import CliRun, Smoke, read_jsonl, subset

from ilpnb.config import get_preset
from ilpnb.data.records import read_records
from ilpnb.models.registry import load_model_and_tokenizer
from ilpnb.probe.scoring import score_continuations
from ilpnb.train import sft as sft_module
from ilpnb.train.format import encode_pair
from ilpnb.train.sft import load_dynamics, run_sft
from ilpnb.train.tracking import Tracker, greedy_outputs
from ilpnb.train.trainer import SFTTrainer, collate

COLUMNS = ["id", "point", "step", "epoch", "stage", "sample_stage", "loss", "token_acc", "exact", "n_tokens",
           "gold_first_p", "gold_first_rank", "top_token", "top_token_p", "js_base", "mc_p_gold", "mc_top_option",
           "mc_top_p", "pass@1", "pass@5", "pass@10", "base_top_answer", "base_top_p", "output"]


def test_world_run_writes_every_sample_at_every_point(world_run: CliRun, smoke: Smoke) -> None:
    assert world_run.code == 0, world_run.stderr
    dyn_path = world_run.out / "dynamics.parquet"
    assert f"dynamics: {dyn_path}" in world_run.stdout
    assert "unlearned at the end (exact):" in world_run.stdout
    assert "stage 0: converged at step" in world_run.stdout or "stage 0: not converged: stopped at the cap" in world_run.stdout
    dyn = pd.read_parquet(dyn_path)
    assert list(dyn.columns) == COLUMNS
    ids = [r["id"] for r in read_jsonl(smoke.data)]
    points = sorted(dyn["point"].unique())
    last = sum(_stage_points(world_run.out))  # the points of every stage after step 0
    assert points == list(range(last + 1))
    assert len(dyn) == len(ids) * len(points)
    assert not dyn.duplicated(["id", "point"]).any()
    for _, g in dyn.groupby("point"):
        assert sorted(g["id"]) == sorted(ids)
    per_point = dyn.groupby("point")["step"].first()
    assert per_point.iloc[0] == 0 and per_point.is_monotonic_increasing and per_point.is_unique
    # the measures are well formed
    assert dyn["loss"].gt(0).all() and dyn["token_acc"].between(0, 1).all()
    assert dyn["exact"].dtype == bool
    assert (dyn["exact"] == (dyn["token_acc"] == 1.0)).all()
    assert dyn["gold_first_rank"].ge(1).all() and dyn["gold_first_p"].between(0, 1).all()
    assert dyn["js_base"].between(0, 1).all() and np.allclose(dyn.loc[dyn.point == 0, "js_base"], 0, atol=1e-5)
    p = dyn["mc_p_gold"]  # every world record has options
    assert p.between(0, 1).all()
    for n in (1, 5, 10):
        np.testing.assert_allclose(dyn[f"pass@{n}"], 1 - (1 - p) ** n)
    assert dyn["base_top_answer"].notna().all()
    # the shared unlearned share is the one in samples.parquet
    samples = pd.read_parquet(world_run.out / "samples.parquet")
    share = (~samples["learned"]).mean()
    assert f"({share:.1%})" in world_run.stdout
    # outputs at step 0 and at the end only
    assert dyn.loc[dyn.point.isin([0, last]), "output"].notna().all()
    assert dyn.loc[~dyn.point.isin([0, last]), "output"].isna().all()
    # learning happened
    assert dyn.loc[dyn.point == last, "loss"].mean() < dyn.loc[dyn.point == 0, "loss"].mean()


def _stage_points(run) -> list[int]:
    """Evaluation points each stage made (it may stop at its cap or converge before it)."""
    return [s["points"] for s in json.loads((run / "convergence.json").read_text())["stages"]]


def test_sequential_stages_in_the_stage_column(world_run: CliRun, smoke: Smoke) -> None:
    dyn = load_dynamics(world_run.out)
    per_stage = _stage_points(world_run.out)
    stage_of_point = dyn.groupby("point")["stage"].first().to_dict()
    stages = sorted({int(r.get("stage", 0)) for r in read_jsonl(smoke.data)})
    starts = np.cumsum([1] + per_stage[:-1])
    assert stage_of_point == {0: stages[0], **{int(starts[k]) + e: s for k, s in enumerate(stages)
                                               for e in range(per_stage[k])}}
    cfg = json.loads((world_run.out / "config.json").read_text())
    assert cfg["stages"] == "sequential"
    meta = json.loads((world_run.out / "checkpoints" / "stage-0-end" / "ilpnb_checkpoint.json").read_text())
    assert meta["stage"] == 0 and meta["step"] == dyn.loc[dyn.point == per_stage[0], "step"].iloc[0]
    assert meta["settings"]["sft"]["epochs"] == get_preset("smoke").sft.epochs  # the cap, recorded
    assert max(per_stage) <= get_preset("smoke").sft.epochs


def _tracker_and_model(smoke: Smoke, model_dir: str) -> tuple[Tracker, torch.nn.Module, object]:
    model, tok = load_model_and_tokenizer(model_dir)
    records = read_records(smoke.data)
    return Tracker(tok, records, max_length=64), model, tok


@pytest.mark.parametrize("where", ["base", "final"])
def test_exact_equals_greedy_generation(world_run: CliRun, smoke: Smoke, where: str) -> None:
    """Teacher-forced exact reproduction == model.generate greedy decoding, on every sample."""
    dyn = load_dynamics(world_run.out)
    point = 0 if where == "base" else dyn["point"].max()
    folder = smoke.model if where == "base" else world_run.out / "checkpoints" / "stage-1-end"
    tracker, model, tok = _tracker_and_model(smoke, str(folder))
    encoded = [it.enc for it in tracker.items]
    generated = greedy_outputs(model, tok, encoded, batch_size=16)
    golds = [tok.decode(e.response_ids, skip_special_tokens=True).strip() for e in encoded]
    by_generation = np.array([g == gold for g, gold in zip(generated, golds)])
    # teacher forcing recomputed on the checkpoint, and as recorded in the run
    fresh = tracker.measure(model, {"point": point})
    rows = dyn[dyn.point == point].set_index("id").loc[[it.id for it in tracker.items]]
    np.testing.assert_array_equal(fresh["exact"].to_numpy(), rows["exact"].to_numpy())
    np.testing.assert_array_equal(by_generation, rows["exact"].to_numpy())
    assert rows["output"].tolist() == generated
    if where == "final":  # both verdicts occur, so the comparison means something
        assert 0 < by_generation.sum() < len(by_generation)


def test_loss_only_on_response_tokens(smoke: Smoke, tmp_path) -> None:
    model, tok = load_model_and_tokenizer(str(smoke.model))
    records = read_records(smoke.data)[:8]
    encs = [encode_pair(tok, r.prompt, r.response, 64) for r in records]
    for e in encs:
        n = len(e.prompt_ids)
        assert e.labels[:n] == [-100] * n
        assert e.labels[n:] == e.response_ids and e.response_ids[-1] == tok.eos_token_id
        assert len(e.input_ids) == len(e.labels)
    batch = collate([{"input_ids": e.input_ids, "labels": e.labels} for e in encs], tok.pad_token_id)
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()  # padding is never a target
    from transformers import TrainingArguments

    trainer = SFTTrainer(model=model, args=TrainingArguments(output_dir=str(tmp_path), report_to=[], use_cpu=True),
                         train_dataset=[], data_collator=lambda f: collate(f, tok.pad_token_id))
    with torch.no_grad():
        loss = trainer.compute_loss(model, dict(batch)).item()
    scores = score_continuations(model, [(e.prompt_ids, e.response_ids) for e in encs], pad_id=tok.pad_token_id)
    assert loss == pytest.approx(-scores.logprob.sum() / scores.n_tokens.sum(), rel=1e-5)
    # and the prompt tokens carry no loss: changing the prompt's labels changes nothing, marking them changes it
    marked = dict(batch)
    marked["labels"] = torch.where(batch["attention_mask"].bool(), batch["input_ids"], -100)
    with torch.no_grad():
        assert trainer.compute_loss(model, marked).item() != pytest.approx(loss, rel=1e-3)


def _record_order(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Record the sample indices of every training batch, in order."""
    batches: list[list[int]] = []
    real = sft_module.collate

    def recording(features, pad_id):
        batches.append([f["idx"] for f in features])
        return real(features, pad_id)

    monkeypatch.setattr(sft_module, "collate", recording)
    return batches


def test_sequential_ordered_keeps_the_data_order(smoke: Smoke, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    stage_of = [r["stage"] for r in read_jsonl(data)]
    batches = _record_order(monkeypatch)
    out = run_sft(tmp_path / "run", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                  sft={"ordered": True, "batch_size": 4, "epochs": 2}, checkpoints="none", track_options="ends")
    flat = [i for b in batches for i in b]
    stage0 = [i for i, s in enumerate(stage_of) if s == 0]
    stage1 = [i for i, s in enumerate(stage_of) if s == 1]
    assert flat == stage0 * 2 + stage1 * 2  # stage 0 then stage 1, each in file order, every epoch
    dyn = load_dynamics(out)
    assert dyn.groupby("point")["stage"].first().tolist() == [0, 0, 0, 1, 1]
    # track_options="ends": the multiple-choice criterion at step 0, at each stage end and at the end only
    has_mc = dyn.groupby("point")["mc_p_gold"].apply(lambda c: c.notna().all()).to_dict()
    assert has_mc == {0: True, 1: False, 2: True, 3: False, 4: True}
    # the training schedule: every trained example with the optimizer step it went into
    ids = [r["id"] for r in read_jsonl(data)]
    sched = pd.read_parquet(out / "schedule.parquet")
    assert sched["id"].tolist() == [ids[i] for i in flat]
    assert sched["step"].tolist() == [1] * 4 + [2] * 4 + [s for s in (3, 4, 5, 6) for _ in range(4)]
    assert sched["point"].tolist() == [1] * 4 + [2] * 4 + [3] * 8 + [4] * 8


def test_track_none_is_plain_sft(smoke: Smoke, tmp_path) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 4})
    out = run_sft(tmp_path / "run", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                  sft={"batch_size": 4, "epochs": 1}, checkpoints="none", track="none")
    assert not (out / "dynamics.parquet").exists() and not (out / "dynamics").exists()
    assert (out / "checkpoints" / "stage-1-end" / "ilpnb_checkpoint.json").exists()


def test_shuffled_sequential_still_trains_stages_in_order(smoke: Smoke, tmp_path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    stage_of = [r["stage"] for r in read_jsonl(data)]
    batches = _record_order(monkeypatch)
    run_sft(tmp_path / "run", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
            sft={"batch_size": 4, "epochs": 2}, checkpoints="none", track_options="ends")
    stages = [stage_of[i] for b in batches for i in b]
    assert stages == [0] * 8 + [1] * 16
    stage1 = [i for i, s in enumerate(stage_of) if s == 1]
    epochs = [[i for b in batches[k:k + 2] for i in b] for k in (2, 4)]  # stage 1: 2 batches per epoch
    for order in epochs:
        assert sorted(order) == stage1
    assert epochs[0] != stage1 and epochs[0] != epochs[1]  # shuffled, differently each epoch


def test_mixed_stages_train_together(smoke: Smoke, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    stage_of = [r["stage"] for r in read_jsonl(data)]
    batches = _record_order(monkeypatch)
    out = run_sft(tmp_path / "run", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                  stages="mixed", sft={"batch_size": 4, "epochs": 2}, checkpoints="none", track_options="ends")
    assert len(batches) == 6  # one stage of 12 samples, 3 batches an epoch
    epoch1 = [i for b in batches[:3] for i in b]
    assert sorted(epoch1) == list(range(12))
    seen = [stage_of[i] for i in epoch1]
    assert seen != sorted(seen)  # stage-1 samples come before some stage-0 ones: trained together
    dyn = load_dynamics(out)
    assert sorted(dyn["point"].unique()) == [0, 1, 2]
    assert (dyn["stage"] == 0).all()  # one training stage; each sample keeps its own in sample_stage
    assert sorted(dyn["sample_stage"].unique()) == [0, 1]
