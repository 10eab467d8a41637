"""Interaction dynamics end to end on a smoke world run: files, statuses, resume, CLI, bad input."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from ilpnb.cli import main  # noqa: E402
from ilpnb.config import get_preset  # noqa: E402
from ilpnb.data.records import RecordError, read_records, write_records  # noqa: E402
from ilpnb.data.world import generate_world  # noqa: E402
from ilpnb.interactions import (  # noqa: E402
    dynamics_config,
    heldout_prompts,
    list_checkpoints,
    select_checkpoints,
    track_sets,
)
from ilpnb.pipeline import DynamicsTables, interaction_dynamics, sweep  # noqa: E402
from ilpnb.plots import interactions as plots  # noqa: E402

FAST = {"max_players": 4, "and_or_iterations": 50}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A smoke world, its base model, and a 4-step SFT run with checkpoints at steps 2 and 4."""
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.train.sft import run_sft

    root = tmp_path_factory.mktemp("dyn")
    before = os.environ.get("ILPNB_CACHE")
    os.environ["ILPNB_CACHE"] = str(root / "cache")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        p = get_preset("smoke")
        world = generate_world(p.world, root / "world")
        base = pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=False)
        data = root / "sft16.jsonl"
        write_records([replace(r, stage=0) for r in read_records(world / "sft.jsonl")[:16]], data)
        run = run_sft(root / "run", world=world, data=str(data), preset="smoke", progress=False,
                      sft={"epochs": 2, "eval_every": 2}, track_options="ends")
        prompts = root / "prompts.jsonl"
        write_records(heldout_prompts(world, 2), prompts)
        yield {"root": root, "world": world, "base": base, "run": run, "prompts": prompts}
    finally:
        torch.set_num_threads(threads)
        if before is None:
            os.environ.pop("ILPNB_CACHE", None)
        else:
            os.environ["ILPNB_CACHE"] = before


@pytest.fixture(scope="module")
def tables(smoke: dict[str, Path]) -> DynamicsTables:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:  # the base model as its own reference: γ of the base's salient set must be 1
        return interaction_dynamics(smoke["run"], prompts=smoke["prompts"], reference=str(smoke["base"]),
                                    progress=False, **FAST)
    finally:
        torch.set_num_threads(threads)


def test_checkpoints_are_base_then_points_in_step_order(smoke: dict[str, Path]) -> None:
    cks = list_checkpoints(smoke["run"])
    assert [c.step for c in cks] == [0, 2, 4]
    assert cks[0].name == "base" and cks[0].path == str(smoke["base"].resolve())
    assert [c.name for c in cks[1:]] == ["point-0001-step-000002", "point-0002-step-000004"]
    assert [c.step for c in select_checkpoints(cks, "4")] == [0, 4]
    with pytest.raises(ValueError, match="available steps: \\[0, 2, 4\\]"):
        select_checkpoints(cks, [3])


def test_heldout_prompts_avoid_what_sft_asks(smoke: dict[str, Path]) -> None:
    world = smoke["world"]
    info = json.loads((world / "world.json").read_text())
    asked = {(s["subject"], s["relation"]) for s in info["samples"]}
    asked |= {(s, r) for s, rel in list(asked) if rel in ("lives_in", "country") for r in ("lives_in", "country")}
    profiled = {s["subject"] for s in info["samples"] if s["relation"] == "profile"}
    stated = {(f["subject"], f["relation"]): f["stated"] for f in info["facts"]}
    recs = heldout_prompts(world, 8)
    assert len(recs) == 8 and len({r.id for r in recs}) == 8
    for r in recs:
        key = (r.meta["subject"], r.meta["relation"])
        assert key not in asked and r.meta["subject"] not in profiled and stated[key]
        assert not r.prompt.startswith("Q:") and not r.prompt.endswith("A:") and r.response
    assert len({r.meta["relation"] for r in recs}) >= 3  # balanced over relations
    assert [r.id for r in heldout_prompts(world, 8)] == [r.id for r in recs]  # seeded


def test_interactions_parquet_holds_every_row_with_statuses(smoke: dict[str, Path], tables: DynamicsTables) -> None:
    run = smoke["run"]
    for name in ("interactions.parquet", "interaction_summary.parquet", "interaction_orders.parquet",
                 "interaction_stopping.json", "interaction_validation.parquet"):
        assert (run / name).is_file()
    frame = pd.read_parquet(run / "interactions.parquet")
    assert len(frame) == 2 * 3 * 16 * 2  # prompts × checkpoints × 2^4 subsets × {and, or}
    for col in ("prompt_id", "step", "checkpoint", "subset", "words", "order", "kind", "value", "salient",
                "status", "base_value", "ref_value", "generalises"):
        assert col in frame
    assert set(frame["status"]) <= {"preserved", "emerged", "removed", "none"}
    assert set(frame.loc[frame["step"] == 0, "status"]) <= {"preserved", "none"}
    assert (frame.loc[frame["mask"] == 0, "status"] == "none").all()
    # the statuses agree with the set definitions, prompt by prompt
    for pid, rows in frame.groupby("prompt_id"):
        keys = lambda r: set(zip(r["mask"], r["kind"]))  # noqa: E731
        sets = track_sets([keys(rows[(rows["step"] == s) & rows["salient"]]) for s in (0, 2, 4)])
        for t, s in enumerate((0, 2, 4)):
            at = rows[rows["step"] == s]
            for status in ("preserved", "emerged", "removed"):
                assert keys(at[at["status"] == status]) == sets[t][status], (pid, s, status)
    # same players at every checkpoint
    words = frame[frame["order"] == 1].groupby(["prompt_id", "step"])["words"].apply(lambda w: tuple(sorted(set(w))))
    assert words.groupby(level=0).nunique().eq(1).all()


def test_summary_metrics_and_stopping(tables: DynamicsTables) -> None:
    s = tables.summary
    assert s["step"].tolist() == [0, 2, 4]
    assert s.loc[0, "gamma_salient"] == pytest.approx(1.0)  # the reference is the base model itself
    assert s.loc[0, "n_emerged"] == 0 and s.loc[0, "n_removed"] == 0
    assert s["val_loss"].gt(0).all() and s["heldout_acc"].between(0, 1).all()
    assert s["checkpoint"].tolist()[0] == "base"
    stop = tables.stopping
    assert stop["interaction"]["step"] in (0, 2, 4) and stop["loss"]["step"] in (0, 2, 4)
    assert stop["steps"] == [0, 2, 4] and stop["n_prompts"] == 2
    assert set(stop["at"]) == {"base", "interaction", "loss", "final"}
    assert set(tables.orders["group"]) <= {"salient", "preserved", "emerged", "removed"}
    # chosen on validation prompts, reported on disjoint test prompts
    val, test = stop["split"]["validation"], stop["split"]["test"]
    assert len(val) == len(test) == 1 and not set(val) & set(test)
    assert set(tables.frame.loc[tables.frame["split"] == "test", "prompt_id"]) == set(test)
    assert stop["loss"]["score"] == pytest.approx(tables.validation.loc[stop["loss"]["index"], "val_loss"])
    assert tables.validation["val_loss"].tolist() == s["val_loss"].tolist()
    assert not s["val_loss"].equals(s["test_loss"])  # two different prompts
    assert {"test_acc", "test_loss", "test_ce_model", "test_ce_preserved"} <= set(stop["at"]["final"])
    # the model's own cross-entropy equals the whole rebuilt output's (the AND-OR noise term aside)
    assert s["test_ce_all"].to_numpy() == pytest.approx(s["test_ce_model"].to_numpy(), abs=0.05)


def test_rescore_judges_again_without_models_or_writing(smoke: dict[str, Path], tables: DynamicsTables) -> None:
    from ilpnb.pipeline import rescore

    before = (smoke["run"] / "interaction_summary.parquet").read_bytes()
    same = rescore(tables)
    pd.testing.assert_frame_equal(same.summary, tables.summary)
    base = rescore(tables, salient_scale="base", stop_rule="plateau")
    assert base.stopping["salient_scale"] == "base" and base.stopping["rule"] == "plateau"
    at0 = lambda t: t.frame[t.frame["step"] == 0][["prompt_id", "mask", "kind", "salient"]]  # noqa: E731
    pd.testing.assert_frame_equal(at0(base).reset_index(drop=True), at0(tables).reset_index(drop=True))
    assert base.summary["val_loss"].tolist() == tables.summary["val_loss"].tolist()
    assert (smoke["run"] / "interaction_summary.parquet").read_bytes() == before
    with pytest.raises(ValueError, match="salient_scale"):
        rescore(tables, salient_scale="global")


def test_second_call_resumes_without_recomputing(smoke: dict[str, Path], tables: DynamicsTables,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*a: object, **k: object) -> None:
        raise AssertionError("a computed checkpoint was computed again")

    from ilpnb.interactions import tracking

    monkeypatch.setattr(tracking, "game", boom)
    monkeypatch.setattr(sweep, "_compute_reference", boom)
    again = interaction_dynamics(smoke["run"], reference=str(smoke["base"]), progress=False, **FAST)
    pd.testing.assert_frame_equal(again.summary, tables.summary)
    sub = interaction_dynamics(smoke["run"], checkpoints="4", reference=str(smoke["base"]), progress=False, **FAST)
    assert sub.summary["step"].tolist() == [0, 4]
    with pytest.raises(ValueError, match="max_players: 4 there, 3 now"):
        interaction_dynamics(smoke["run"], progress=False, **{**FAST, "max_players": 3})
    # back to the full table for the other tests
    interaction_dynamics(smoke["run"], reference=str(smoke["base"]), progress=False, **FAST)


def test_cli_writes_the_tables(smoke: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "copy"
    shutil.copytree(smoke["run"], run, ignore=shutil.ignore_patterns("interaction*"))
    torch.set_num_threads(1)
    code = main(["interactions", str(run), "--prompts", str(smoke["prompts"]), "--checkpoints", "4",
                 "--n-players", "4", "--and-only", "--reference", "none", "--quiet"])
    assert code == 0
    out = capsys.readouterr().out
    assert "interaction-based stop: step" in out and "loss-based stop" in out
    frame = pd.read_parquet(run / "interactions.parquet")
    assert sorted(frame["step"].unique()) == [0, 4] and frame["generalises"].isna().all()
    assert main(["interactions", str(run), "--checkpoints", "4", "--n-players", "5", "--quiet"]) == 2
    assert "--fresh" in capsys.readouterr().err


def test_bad_input(smoke: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text(json.dumps({"model": str(smoke["base"]), "preset": "smoke"}))
    with pytest.raises(FileNotFoundError, match="no saved checkpoints"):
        interaction_dynamics(empty, progress=False)
    assert main(["interactions", str(empty), "--quiet"]) == 2
    assert "no saved checkpoints" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match="not a fine-tuning run"):
        list_checkpoints(tmp_path)
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"id": "a", "prompt": "Where does Kode live?", "response": "Midum"}\n{"id": "b", "prompt": 3}\n')
    with pytest.raises(RecordError, match="bad.jsonl, line 2"):
        interaction_dynamics(smoke["run"], prompts=bad, progress=False, **FAST)
    assert main(["interactions", str(smoke["run"]), "--prompts", str(bad), "--quiet"]) == 2
    assert "line 2" in capsys.readouterr().err
    # a run without a world needs a prompts file
    noworld = tmp_path / "noworld"
    shutil.copytree(smoke["run"], noworld, ignore=shutil.ignore_patterns("interaction*"))
    cfg = json.loads((noworld / "config.json").read_text())
    cfg["world"] = None
    (noworld / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="--prompts FILE"):
        interaction_dynamics(noworld, progress=False, **FAST)
    with pytest.raises(ValueError, match="target"):
        dynamics_config("smoke", target="best")
    with pytest.raises(KeyError, match="unknown dynamics setting"):
        dynamics_config("smoke", colour="red")


def test_lora_checkpoints_load_with_adapters_merged(smoke: dict[str, Path], tmp_path: Path) -> None:
    from peft import PeftModel

    from ilpnb.interactions import load_checkpoint
    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.train.sft import run_sft

    torch.set_num_threads(1)
    run = run_sft(tmp_path / "lora", world=smoke["world"], data=str(smoke["root"] / "sft16.jsonl"), preset="smoke",
                  progress=False, sft={"epochs": 1, "eval_every": 2, "lora": True, "lr": 1e-2}, track_options="ends")
    cks = list_checkpoints(run)
    assert cks[-1].lora and (Path(cks[-1].path) / "adapter_config.json").is_file()
    merged, tok = load_checkpoint(cks[-1])
    base, _ = load_model_and_tokenizer(cks[0].path)
    peft = PeftModel.from_pretrained(base, cks[-1].path).eval()
    ids = tok("Q: Where does Kode live? A:", return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.allclose(merged(ids).logits, peft(ids).logits, atol=1e-4)
    assert not any("lora" in n for n, _ in merged.named_parameters())


def test_plots_return_axes(tables: DynamicsTables) -> None:
    calls = [
        lambda ax: plots.plot_status_counts(tables.summary, stopping=tables.stopping, ax=ax),
        lambda ax: plots.plot_status_by_order(tables.orders, ax=ax),
        lambda ax: plots.plot_order_heatmap(tables.orders, "removed", ax=ax),
        lambda ax: plots.plot_quality(tables.summary, "rho", stopping=tables.stopping, ax=ax),
        lambda ax: plots.plot_quality(tables.summary, "gamma", ax=ax),
        lambda ax: plots.plot_denoising(tables.summary, tables.stopping, ax=ax),
        lambda ax: plots.plot_stopping(tables.summary, tables.stopping, ax=ax),
        lambda ax: plots.plot_interaction_trajectories(tables.frame, ax=ax),
    ]
    for call in calls:
        fig, ax = plt.subplots()
        assert call(ax) is ax
        plt.close(fig)
    assert plots.plot_status_counts(tables.summary) is not None  # makes its own axes
    plt.close("all")
    with pytest.raises(ValueError):
        plots.plot_quality(tables.summary, "beauty")
