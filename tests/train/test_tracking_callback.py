"""``ilpnb.TrackingCallback`` on TRL's ``SFTTrainer``: the run folder fills with the dynamics at
every epoch and the in-training statistics of every trained sample, read off TRL's own
forward passes, and ``ilpnb diagnose`` runs on it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sft_helpers import Smoke, run_cli, subset

from ilpnb.data.records import read_records
from ilpnb.models.registry import load_model_and_tokenizer


def test_tracking_callback_on_trl_sft_trainer(smoke: Smoke, tmp_path) -> None:
    pytest.importorskip("trl")
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    import ilpnb

    records = read_records(subset(smoke, tmp_path / "sft.jsonl", {0: 6, 1: 4}))
    model, tok = load_model_and_tokenizer(str(smoke.model))
    rows = [{"prompt": [{"role": "user", "content": r.prompt}],
             "completion": [{"role": "assistant", "content": r.response}]} for r in records]
    args = SFTConfig(output_dir=str(tmp_path / "trl"), num_train_epochs=2, per_device_train_batch_size=4,
                     learning_rate=5e-3, max_length=128, completion_only_loss=True, gradient_checkpointing=False,
                     bf16=False, save_strategy="no", report_to=[], seed=0, disable_tqdm=True, logging_steps=10**6,
                     dataloader_num_workers=0, use_cpu=True)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    run = tmp_path / "run"
    trainer.add_callback(ilpnb.TrackingCallback(run, records, max_length=128))
    trainer.train()
    ids = sorted(r.id for r in records)
    dyn = pd.read_parquet(run / "dynamics.parquet")
    assert sorted(dyn["point"].unique()) == [0, 1, 2]
    assert all(sorted(g["id"]) == ids for _, g in dyn.groupby("point"))
    assert dyn["mc_p_gold"].between(0, 1).all()
    td = pd.read_parquet(run / "train_dynamics.parquet")
    assert json.loads((run / "tracking.json").read_text()) == {"unmatched_training_rows": 0}
    td["ep"] = np.floor(td["epoch"] + 1e-9)
    assert td.groupby("ep")["id"].apply(sorted).tolist() == [ids, ids]  # every sample once per epoch
    # the first step trains at the base weights: its statistics are point 0's measurement
    first = td[td["step"] == 1].merge(dyn[dyn["point"] == 0], on="id", suffixes=("", "_eval"))
    assert len(first) == 4
    np.testing.assert_allclose(first["loss"], first["loss_eval"], atol=1e-5, rtol=1e-5)
    assert (first["exact"] == first["exact_eval"]).all()
    assert (run / "samples.parquet").exists() and (run / "config.json").exists()
    assert torch.isfinite(torch.tensor(td["loss"].to_numpy())).all()
    # the run folder reads like one of ilpnb's own: its records and base model come back from it
    from ilpnb.runs import Run

    reader = Run(run)
    assert sorted(reader.records_table().index) == ids and reader.config["model"] == str(smoke.model)
    code, stdout, stderr = run_cli(["diagnose", str(run)])
    assert code == 0, stderr
    diagnosis = pd.read_parquet(run / "diagnosis.parquet")
    assert sorted(diagnosis["id"]) == ids and f"{run / 'diagnosis.parquet'}: 10 samples" in stdout
