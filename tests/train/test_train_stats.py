"""In-training statistics (``RUN/train_dynamics.parquet``): read off the training forward pass,
equal to an evaluation pass at the same weights, one row per sample and visit under
shuffling and gradient accumulation; forgetting events and the cartography map from them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sft_helpers import Smoke, read_jsonl, subset
from transformers import PrinterCallback, TrainerCallback, TrainingArguments

from ilpnb.data.records import read_records
from ilpnb.models.registry import load_model_and_tokenizer
from ilpnb.probe.scoring import score_continuations
from ilpnb.train.format import encode_pair
from ilpnb.train.sft import run_sft
from ilpnb.train.train_stats import batch_stats, cartography, forgetting_events, summarize_training
from ilpnb.train.trainer import SFTTrainer, collate


class _EvalAtEachStep(TrainerCallback):
    """Before every optimizer step, an evaluation pass (dropout off) over every sample at the
    weights that step's forward passes see."""

    def __init__(self, pairs: list[tuple[list[int], list[int]]], pad: int) -> None:
        self.pairs, self.pad = pairs, pad
        self.at: dict[int, object] = {}

    def on_step_begin(self, args, state, control, model=None, **kw):  # type: ignore[override]
        self.at[state.global_step + 1] = score_continuations(model, self.pairs, 64, self.pad)


def _encoded(smoke: Smoke, data, tok):
    return [encode_pair(tok, r.prompt, r.response, 128) for r in read_records(data)]


def test_training_stats_equal_an_eval_pass_at_the_same_weights(smoke: Smoke, tmp_path) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 6, 1: 4})
    model, tok = load_model_and_tokenizer(str(smoke.model))
    encoded = _encoded(smoke, data, tok)
    examples = [{"input_ids": e.input_ids, "labels": e.labels, "idx": i} for i, e in enumerate(encoded)]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    probe = _EvalAtEachStep([(e.prompt_ids, e.response_ids) for e in encoded], pad)
    args = TrainingArguments(output_dir=str(tmp_path / "trainer"), num_train_epochs=3, per_device_train_batch_size=2,
                             gradient_accumulation_steps=2, learning_rate=5e-3, report_to=[], seed=1,
                             save_strategy="no", disable_tqdm=True, remove_unused_columns=False, use_cpu=True,
                             dataloader_num_workers=0, logging_steps=100)
    trainer = SFTTrainer(model=model, args=args, train_dataset=examples, data_collator=lambda f: collate(f, pad),
                         callbacks=[probe])  # shuffled (not ordered), 2 micro-batches per optimizer step
    trainer.remove_callback(PrinterCallback)
    trainer.train()
    rows = pd.DataFrame(trainer.pop_stats())
    assert trainer.pop_stats() == []  # popped once
    steps = sorted(probe.at)
    assert sorted(rows["step"].unique()) == steps and len(steps) == 3 * 3  # 10 samples, 4 per step, 3 epochs
    # every sample once per epoch, whatever the shuffled order
    rows["ep"] = np.floor(rows["epoch"] + 1e-9).astype(int)
    assert (rows.groupby(["ep", "idx"]).size() == 1).all() and rows.groupby("ep")["idx"].nunique().eq(10).all()
    assert rows.groupby("ep")["idx"].apply(list).map(tuple).nunique() == 3  # shuffled differently each epoch
    # the weights changed between steps, so equality below is step-specific
    first, last = probe.at[steps[0]], probe.at[steps[-1]]
    assert np.abs(first.loss - last.loss).max() > 1e-2
    for row in rows.itertuples():
        ref = probe.at[row.step]
        i = row.idx
        np.testing.assert_allclose(row.loss, ref.loss[i], atol=1e-5, rtol=1e-5, err_msg=f"step {row.step} idx {i}")
        np.testing.assert_allclose(row.token_acc, ref.token_acc[i], atol=1e-6)
        assert bool(row.exact) == bool(ref.exact[i]) and row.n_tokens == ref.n_tokens[i]
        assert 0.0 < row.p_gold <= 1.0 and row.p_gold >= np.exp(-row.loss) - 1e-6  # arithmetic >= geometric mean


def test_batch_stats_checks_shapes_and_ignores_unlabelled_positions() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 7)
    labels = torch.tensor([[-100, -100, 3, 4, -100], [-100, 1, 2, 6, 0]])
    s = batch_stats(logits, labels)
    lp = torch.log_softmax(logits[0, 1:3], -1)
    np.testing.assert_allclose(s["loss"][0].item(), -(lp[0, 3] + lp[1, 4]).item() / 2, rtol=1e-6)
    assert s["n_tokens"].tolist() == [2, 4]
    changed = logits.clone()
    changed[0, 3:] += 100.0  # positions that predict no labelled token
    np.testing.assert_allclose(batch_stats(changed, labels)["loss"][0], s["loss"][0])
    with pytest.raises(ValueError, match="batch_stats"):
        batch_stats(logits[0], labels[0])


def test_run_writes_train_dynamics_for_every_sample_every_epoch(smoke: Smoke, tmp_path) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    out = run_sft(tmp_path / "run", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                  sft={"batch_size": 4, "epochs": 2}, checkpoints="none", track="none")
    td = pd.read_parquet(out / "train_dynamics.parquet")
    sched = pd.read_parquet(out / "schedule.parquet")
    ids = [r["id"] for r in read_jsonl(data)]
    stage_of = {r["id"]: r["stage"] for r in read_jsonl(data)}
    # the rows are the schedule's (every trained example, with its run-wide step)
    key = ["step", "id"]
    pd.testing.assert_frame_equal(td[key + ["stage", "point"]].sort_values(key).reset_index(drop=True),
                                  sched[key + ["stage", "point"]].sort_values(key).reset_index(drop=True))
    assert td["stage"].astype(int).tolist() == td["id"].map(stage_of).tolist()
    assert (td["sample_stage"] == td["id"].map(stage_of)).all()
    per = td.assign(ep=np.floor(td["epoch"] + 1e-9)).groupby(["stage", "ep"])["id"].apply(sorted)
    assert per.tolist() == [sorted(i for i in ids if stage_of[i] == s) for s in (0, 0, 1, 1)]
    assert td["loss"].gt(0).all() and td["token_acc"].between(0, 1).all() and td["p_gold"].between(0, 1).all()
    assert (td["exact"] == (td["token_acc"] == 1.0)).all()
    cart = cartography(td)
    assert sorted(cart["id"]) == sorted(ids) and cart["epochs"].eq(2).all()
    for sid, g in td.groupby("id"):
        c = cart.set_index("id").loc[sid]
        np.testing.assert_allclose(c["confidence"], g["p_gold"].mean())
        np.testing.assert_allclose(c["variability"], g["p_gold"].std(ddof=0), atol=1e-12)


def test_forgetting_events_and_cartography_on_a_known_table() -> None:
    td = pd.DataFrame({
        "id": ["a"] * 4 + ["b"] * 4 + ["c"] * 4,
        "step": [1, 3, 5, 7, 2, 4, 6, 8, 1, 3, 5, 7],
        "stage": "0",
        "epoch": [0, 1, 2, 3] * 3,
        "exact": [True, False, True, False, False, False, True, True, False, False, False, False],
        "p_gold": [0.9, 0.3, 0.8, 0.2, 0.1, 0.2, 0.7, 0.9, 0.1, 0.1, 0.1, 0.1],
    }).sample(frac=1.0, random_state=0)  # the order of rows does not matter
    f = forgetting_events(td).set_index("id")
    assert f["forgetting_events"].to_dict() == {"a": 2, "b": 0, "c": 0}
    assert f["unforgettable"].to_dict() == {"a": False, "b": True, "c": False}
    assert f["first_learned_step"]["a"] == 1 and f["first_learned_step"]["b"] == 6
    assert np.isnan(f["first_learned_step"]["c"])
    c = cartography(td).set_index("id")
    np.testing.assert_allclose(c.loc["a", ["confidence", "variability", "correctness"]].astype(float),
                               [0.55, np.std([0.9, 0.3, 0.8, 0.2]), 0.5])
    assert c.loc["c", "variability"] == 0.0
    both = summarize_training(td)
    assert set(both.columns) >= {"forgetting_events", "confidence", "variability"} and len(both) == 3
    with pytest.raises(KeyError, match="p_gold"):
        cartography(td.drop(columns="p_gold"))


def test_cartography_plot_draws_every_sample_and_rings_the_highlighted() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ilpnb.plots import plot_cartography

    carto = pd.DataFrame({"id": ["a", "b", "c"], "confidence": [0.9, 0.2, 0.5], "variability": [0.05, 0.02, 0.3],
                          "correctness": [1.0, 0.0, 0.5], "epochs": 3})
    ax = plot_cartography(carto, highlight=["b"])
    xy = ax.collections[0].get_offsets()
    np.testing.assert_allclose(np.asarray(xy), carto[["variability", "confidence"]].to_numpy())
    np.testing.assert_allclose(np.asarray(ax.collections[1].get_offsets()), [[0.02, 0.2]])
    plt.close(ax.figure)
    with pytest.raises(KeyError, match="correctness"):
        plot_cartography(carto.drop(columns="correctness"))
