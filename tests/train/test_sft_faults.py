"""Bad SFT files, truncation, a diverging loss and an existing run folder: clear errors,
nothing silently dropped or overwritten."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from sft_helpers import Smoke, read_jsonl, run_cli, subset, write_jsonl

from ilpnb.data.records import RecordError
from ilpnb.models.registry import load_model_and_tokenizer
from ilpnb.runs import RunExistsError
from ilpnb.train.format import encode_pair
from ilpnb.train.sft import run_sft
from ilpnb.train.trainer import NonFiniteLossError

GOOD = {"id": "a", "prompt": "Which colour does Migom like?", "response": "black"}


def _bad_files(tmp: Path) -> dict[str, tuple[Path, int, str]]:
    """name -> (file, bad line, words of the reason)."""
    ok2 = {"id": "b", "prompt": "Where does Migom live?", "response": "Paris"}
    cases = {
        "empty_prompt": ([GOOD, {"id": "b", "prompt": "", "response": "x"}], 2, "'prompt' is empty"),
        "empty_response": ([GOOD, ok2, {"id": "c", "prompt": "p", "response": ""}], 3, "'response' is empty"),
        "duplicate_id": ([GOOD, ok2, {**GOOD, "prompt": "again?"}], 3, "duplicate id 'a'"),
        "missing_fields": ([GOOD, {"id": "b", "prompt": "only a prompt"}], 2, "missing field"),
    }
    out = {name: (write_jsonl(tmp / f"{name}.jsonl", rows), line, why) for name, (rows, line, why) in cases.items()}
    broken = tmp / "not_json.jsonl"
    broken.write_text(json.dumps(GOOD) + "\n" + '{"id": "b", "prompt": "p", "response": \n')
    out["not_json"] = (broken, 2, "not valid JSON")
    return out


@pytest.mark.parametrize("case", ["empty_prompt", "empty_response", "duplicate_id", "missing_fields", "not_json"])
def test_bad_input_is_reported_with_file_line_and_reason(smoke: Smoke, tmp_path: Path, case: str) -> None:
    path, line, why = _bad_files(tmp_path)[case]
    out = tmp_path / "run"
    code, stdout, stderr = run_cli(["sft", "--model", str(smoke.model), "--data", str(path), "--out", str(out),
                                    "--preset", "smoke", "--no-progress"])
    assert code == 2
    assert f"ilpnb sft: error: {path}, line {line}: " in stderr and why in stderr, stderr
    assert not out.exists()  # nothing half-made: fixing the file and running again just works
    with pytest.raises(RecordError) as err:
        run_sft(out, model=str(smoke.model), data=str(path), preset="smoke", progress=False)
    assert (err.value.source, err.value.line) == (str(path), line) and why in err.value.reason


def test_missing_arguments_and_files_exit_2(smoke: Smoke, tmp_path: Path) -> None:
    code, _, stderr = run_cli(["sft", "--out", str(tmp_path / "r")])
    assert code == 2 and "give --model and --data, or --world" in stderr
    code, _, stderr = run_cli(["sft", "--model", str(smoke.model), "--data", str(tmp_path / "nope.jsonl"),
                               "--out", str(tmp_path / "r")])
    assert code == 2 and "nope.jsonl" in stderr


def test_truncation_is_counted_and_reported(smoke: Smoke, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 4})
    limit = 12
    _, tok = load_model_and_tokenizer(str(smoke.model))
    rows = read_jsonl(data)
    lengths = {r["id"]: len(encode_pair(tok, r["prompt"], r["response"]).input_ids) for r in rows}
    long = {i: n - limit for i, n in lengths.items() if n > limit}
    assert 0 < len(long) < len(rows) or len(long) == len(rows)
    out = run_sft(tmp_path / "run", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                  max_length=limit, sft={"epochs": 1}, checkpoints="none", track_options="ends")
    info = json.loads((out / "truncation.json").read_text())
    assert info["max_length"] == limit
    assert info["truncated_samples"] == len(long) and sorted(info["ids"]) == sorted(long)
    assert info["truncated_tokens"] == sum(long.values())
    printed = capsys.readouterr().out
    assert f"warning: {len(long)} of {len(rows)} samples longer than {limit} tokens were truncated" in printed
    dyn = pd.read_parquet(out / "dynamics.parquet")  # truncated samples are still tracked, not dropped
    assert set(dyn["id"]) == {r["id"] for r in rows}
    assert (dyn.groupby("id")["n_tokens"].first() <= limit).all()


def test_no_truncation_writes_zero(world_run) -> None:
    info = json.loads((world_run.out / "truncation.json").read_text())
    assert info["truncated_samples"] == 0 and info["ids"] == []
    assert "truncated" not in world_run.stdout


def test_nan_loss_stops_with_the_last_good_checkpoint(smoke: Smoke, tmp_path: Path) -> None:
    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 8})
    out = tmp_path / "run"
    code, _, stderr = run_cli(["sft", "--model", str(smoke.model), "--data", str(data), "--out", str(out),
                               "--preset", "smoke", "--lr", "1e30", "--batch-size", "4", "--no-progress"])
    assert code == 3, stderr
    assert "ilpnb sft: stopped:" in stderr and "not finite" in stderr or "became nan" in stderr
    assert "try a lower learning rate" in stderr
    assert "the last good checkpoint is" in stderr
    named = stderr.split("the last good checkpoint is ")[1].split()[0]
    assert Path(named).exists()
    # the base model, or a checkpoint of this run whose tracked losses were all finite
    if Path(named) != smoke.model:
        meta = json.loads((Path(named) / "ilpnb_checkpoint.json").read_text())
        part = pd.read_parquet(out / "dynamics" / f"point-{meta['point']:04d}.parquet")
        assert part["loss"].notna().all()


def test_nan_loss_in_a_later_stage_names_a_checkpoint_of_the_first(smoke: Smoke, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A hook makes the loss NaN in stage 1: the message names the end of stage 0, which exists."""
    import torch

    from ilpnb.train import trainer as trainer_module

    data = subset(smoke, tmp_path / "sft.jsonl", {0: 4, 1: 4})
    real = trainer_module.Trainer.compute_loss

    def poisoned(self, model, inputs, *args, **kwargs):
        result = real(self, model, inputs, *args, **kwargs)  # (loss, outputs) when the outputs are asked for
        if not (self.args.output_dir.endswith("stage-1") and self.state.global_step >= 1):
            return result
        return (result[0] * torch.nan, *result[1:]) if isinstance(result, tuple) else result * torch.nan

    monkeypatch.setattr(trainer_module.Trainer, "compute_loss", poisoned)
    with pytest.raises(NonFiniteLossError) as err:
        run_sft(tmp_path / "run", model=str(smoke.model), data=str(data), preset="smoke", progress=False,
                sft={"batch_size": 2, "epochs": 1}, checkpoints="stages", track_options="ends")
    message = str(err.value)
    assert "training loss became nan at step 2" in message
    assert message.endswith(str(tmp_path / "run" / "checkpoints" / "stage-0-end"))


def test_run_folder_is_never_overwritten(world_run, smoke: Smoke) -> None:
    before = {p: p.stat().st_mtime_ns for p in world_run.out.rglob("*") if p.is_file()}
    with pytest.raises(RunExistsError):
        run_sft(world_run.out, world=smoke.world, preset="smoke", progress=False)
    code, _, stderr = run_cli(["sft", "--world", str(smoke.world), "--out", str(world_run.out), "--preset", "smoke"])
    assert code == 2 and "already exists" in stderr and "--resume" in stderr
    after = {p: p.stat().st_mtime_ns for p in world_run.out.rglob("*") if p.is_file()}
    assert after == before


@pytest.mark.parametrize("missing", ["sft.jsonl", "pretrain.txt"])
def test_a_world_folder_without_its_files_is_named(smoke: Smoke, tmp_path: Path, missing: str) -> None:
    import shutil

    world = tmp_path / "world"
    shutil.copytree(smoke.world, world)
    (world / missing).unlink()
    with pytest.raises(FileNotFoundError, match=rf"{missing}: missing; a world folder needs {missing}"):
        run_sft(tmp_path / "run", world=world, preset="smoke", progress=False)
    assert not (tmp_path / "run").exists()
