"""LoRA fine-tuning (peft): the run works and changes only the adapter weights."""

from __future__ import annotations

import pandas as pd
import torch
from safetensors.torch import load_file
from sft_helpers import Smoke, run_cli, subset

from ilpnb.models.registry import load_model_and_tokenizer
from ilpnb.train import sft as sft_module


def test_lora_changes_only_adapter_weights(smoke: Smoke, tmp_path, monkeypatch) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    kept: dict[str, torch.nn.Module] = {}
    real = sft_module._load

    def keep(job, records):
        model, tok, recs = real(job, records)
        kept["model"] = model
        return model, tok, recs

    monkeypatch.setattr(sft_module, "_load", keep)
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(["sft", "--model", str(smoke.model), "--data", str(data), "--out", str(out),
                                    "--preset", "smoke", "--lora", "--lr", "3e-3", "--no-progress"])
    assert code == 0, stderr
    base, _ = load_model_and_tokenizer(str(smoke.model))
    base_state = base.state_dict()
    tuned = kept["model"]
    assert type(tuned).__name__.startswith("Peft")
    changed_adapters = 0
    for name, param in tuned.named_parameters():
        if "lora_" in name:
            assert param.requires_grad
            changed_adapters += int("lora_B" in name and param.detach().abs().sum().item() > 0)  # B starts at 0
        else:
            assert not param.requires_grad, name
            key = name.replace("base_model.model.", "").replace(".base_layer", "")
            assert torch.equal(param.detach(), base_state[key]), f"{name} changed"
    assert changed_adapters > 0
    # checkpoints hold the adapter only, with the settings it was made with
    ckpt = out / "checkpoints" / "stage-1-end"
    keys = load_file(ckpt / "adapter_model.safetensors").keys()
    assert keys and all("lora_" in k for k in keys)
    assert (ckpt / "ilpnb_checkpoint.json").exists()
    dyn = pd.read_parquet(out / "dynamics.parquet")
    assert dyn.loc[dyn.point == dyn.point.max(), "loss"].mean() < dyn.loc[dyn.point == 0, "loss"].mean()
