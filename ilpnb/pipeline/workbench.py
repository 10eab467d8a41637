"""The steps notebooks and commands share: world -> base model -> probe report, in a run folder.

Each ``ensure_*`` function does its step once and records the result in the run folder,
so a notebook (or a resumed run) calling it again reads what is there instead of redoing
it. Notebooks share state only through these files:

* ``RUN/world/`` — the world folder of DESIGN.md;
* ``RUN/base_model.json`` — where the (cached) pretrained base model lives, and its key;
* ``RUN/probes.parquet`` — the knowledge-probe table of the base model.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pandas as pd

from ilpnb.config import Preset, get_preset, to_dict
from ilpnb.data.world import generate_world
from ilpnb.pipeline.steps import record, reuse, settings_hash
from ilpnb.probe.fidelity import planting_fidelity
from ilpnb.quiet import quiet
from ilpnb.runs import RunFolder, read_truth_file

__all__ = ["open_or_create_run", "ensure_world", "ensure_base_model", "ensure_probe_report", "load_base_model", "world_fidelity"]


def _preset(preset: str | Preset) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def open_or_create_run(run: str | Path, preset: str | Preset) -> RunFolder:
    """Open the run folder ``run``, or start it with the preset's configuration (the whole
    settings tree). A folder started without it (``ilpnb run``'s) gets ``settings.json`` once."""
    path = Path(run)
    p = _preset(preset)
    if (path / "config.json").is_file():
        folder = RunFolder.open(path)
        if "settings" not in folder.config and not folder.exists("settings.json"):
            folder.write_json("settings.json", {"preset": p.name, "settings": to_dict(p)})
        return folder
    return RunFolder.create(path, {"kind": "workbench", "preset": p.name, "settings": to_dict(p)})


def ensure_world(run: str | Path, preset: str | Preset, seed: int | None = None) -> Path:
    """Generate the preset's world into ``RUN/world`` (once; reused only for the same settings).

    Args:
        run: the run folder.
        preset: preset name or object.
        seed: override the world seed.

    Raises:
        ilpnb.pipeline.steps.StepSettingsError: ``RUN/world`` was made with other settings.
    """
    p = _preset(preset)
    folder = open_or_create_run(run, p)
    cfg = copy.deepcopy(p.world)  # the seed override must not change the preset object
    if seed is not None:
        cfg.seed = seed
    target = folder.path / "world"
    if reuse(folder.path, "world", to_dict(cfg), (target / "sft.jsonl").is_file()):
        return target
    out = generate_world(cfg, target)
    record(folder.path, "world", to_dict(cfg))
    return out


def _base_settings(p: Preset) -> dict[str, Any]:
    """What decides the base model: the world, the architecture and the pretraining."""
    return {"world": settings_hash(to_dict(p.world)), "model": to_dict(p.model), "pretrain": to_dict(p.pretrain)}


def ensure_base_model(run: str | Path, preset: str | Preset, progress: bool = True) -> Path:
    """Pretrain the preset's tiny base model on ``RUN/world/pretrain.txt`` (cached), once.

    Returns:
        The model folder (inside the model cache, shared by runs with the same settings).
    """
    p = _preset(preset)
    folder = open_or_create_run(run, p)
    world = ensure_world(run, p)
    made = folder.exists("base_model.json") and Path(folder.read_json("base_model.json")["path"]).exists()
    if reuse(folder.path, "base_model", _base_settings(p), made):
        return Path(folder.read_json("base_model.json")["path"])
    from ilpnb.models.pretrain import (  # transformers' Trainer and peft: seconds to import
        pretrain_base_model,
        pretrain_info,
    )

    path = pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=progress)
    info = pretrain_info(path)
    folder.write_json("base_model.json", {
        "path": str(path.resolve()),
        "key": path.name,
        "parameters": info["parameters"],
        "pretrain_seconds": info["seconds"],
        "tokens_per_epoch": info["tokens_per_epoch"],
    })
    record(folder.path, "base_model", _base_settings(p))
    return path


@quiet()  # no `Loading weights` bar
def load_base_model(path: str | Path) -> tuple[Any, Any]:
    """Load a saved model folder with the Auto classes (model in eval mode, tokenizer)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(path)
    model.eval()
    return model, AutoTokenizer.from_pretrained(path)


def ensure_probe_report(run: str | Path, preset: str | Preset) -> pd.DataFrame:
    """Probe the base model on ``RUN/world/probes.jsonl``; saved as ``RUN/probes.parquet``.

    Returns:
        One row per probe with ``recall``, ``mc_p_gold``, ``stated`` and ``chance`` (see
        :func:`ilpnb.probe.knowledge.probe_report`).
    """
    from ilpnb.probe.knowledge import probe_report, read_probes, run_probes

    p = _preset(preset)
    folder = open_or_create_run(run, p)
    target = folder.path / "probes.parquet"
    if reuse(folder.path, "probe_report", _base_settings(p), target.exists()):
        return pd.read_parquet(target)
    world = ensure_world(run, p)
    model, tok = load_base_model(ensure_base_model(run, p))
    table = probe_report(run_probes(model, tok, read_probes(world / "probes.jsonl")), world)
    table.to_parquet(target, index=False)
    record(folder.path, "probe_report", _base_settings(p))
    return table


def ensure_sft(run: str | Path, preset: str | Preset, seed: int = 0, name: str | None = None,
               progress: bool = True, **job: Any) -> Path:
    """Fine-tune the world's base model on the world's SFT set into ``RUN/<name>`` (once).

    Args:
        run: the notebook run folder.
        preset: preset name or object.
        seed: SFT seed (data order); the default folder name is ``sft`` for seed 0 and
            ``sft_seed<N>`` otherwise.
        name: folder name inside the run.
        progress: tqdm progress bars.
        **job: passed to :func:`ilpnb.train.sft.run_sft` (e.g. ``sft={...}`` overrides).

    Returns:
        The SFT run folder (with ``dynamics.parquet``).

    Raises:
        ilpnb.pipeline.steps.StepSettingsError: ``RUN/<name>`` was made with other settings.
    """
    from ilpnb.train.sft import run_sft

    p = _preset(preset)
    world = ensure_world(run, p)
    ensure_base_model(run, p, progress=progress)
    target = Path(run) / (name or ("sft" if seed == 0 else f"sft_seed{seed}"))
    overrides = dict(job.pop("sft", {}) or {})
    overrides.setdefault("seed", seed)
    step, settings = f"sft:{target.name}", {**_base_settings(p), "sft": to_dict(p.sft), "overrides": overrides,
                                            "job": job}
    if reuse(run, step, settings, (target / "dynamics.parquet").exists()):
        return target
    out = run_sft(target, world=world, preset=p.name, sft=overrides, resume=target.exists(), progress=progress, **job)
    record(run, step, settings)
    return out


def read_truth(world_dir: str | Path) -> pd.Series:
    """Planted cause per sample id, from ``WORLD/truth.jsonl`` (for reports and scoring only).

    Raises:
        FileNotFoundError: The world has no ``truth.jsonl``.
        ValueError: A bad line (file and line named).
    """
    return read_truth_file(Path(world_dir) / "truth.jsonl")


def world_overview(world_dir: str | Path) -> pd.DataFrame:
    """Samples per planted cause and stage, with the corpus size, for a world folder."""
    import json

    world_dir = Path(world_dir)
    records = pd.read_json(world_dir / "sft.jsonl", lines=True, dtype={"id": str})
    records["planted_cause"] = records["id"].map(read_truth(world_dir))
    table = records.pivot_table(index="planted_cause", columns="stage", values="id", aggfunc="count", fill_value=0)
    table.columns = [f"stage {c}" for c in table.columns]
    table["total"] = table.sum(axis=1)
    meta = json.loads((world_dir / "world.json").read_text())
    table.attrs["corpus_documents"] = sum(1 for _ in open(world_dir / "pretrain.txt", encoding="utf-8"))
    table.attrs["facts_stated"] = sum(f["stated"] for f in meta["facts"])
    table.attrs["facts_unstated"] = sum(not f["stated"] for f in meta["facts"])
    return table


__all__ += ["ensure_sft", "read_truth", "world_overview"]


def ensure_diagnosis(run: str | Path, preset: str | Preset, name: str = "sft") -> pd.DataFrame:
    """Diagnose ``RUN/<name>`` (after :func:`ensure_sft`) once, questioning the base model as the
    preset's ``diagnose`` settings say; returns ``diagnosis.parquet``."""
    from ilpnb.diagnose.attribution import write_diagnosis
    from ilpnb.diagnose.evidence import EvidenceSettings

    sft = ensure_sft(run, preset) if name == "sft" else Path(run) / name
    path = sft / "diagnosis.parquet"
    if path.exists():
        return pd.read_parquet(path)
    return write_diagnosis(sft, evidence=EvidenceSettings(**to_dict(_preset(preset).diagnose)))


def diagnosis_signals(run: str | Path, name: str = "sft") -> pd.DataFrame:
    """The per-sample signals the detectors read (see :func:`ilpnb.diagnose.features.signals`)."""
    from ilpnb.diagnose.attribution import build_context
    from ilpnb.diagnose.features import signals

    return signals(build_context(Path(run) / name))


__all__ += ["ensure_diagnosis", "diagnosis_signals"]


def world_fidelity(run: str | Path, preset: Any) -> pd.DataFrame:
    """Planting fidelity of a workbench run's world on its base model (notebook helper).

    Args:
        run: the run folder (``RUN/world``, ``RUN/base_model.json``; made if missing).
        preset: preset name or object.
    """
    world = ensure_world(run, preset)
    model, tok = load_base_model(ensure_base_model(run, preset, progress=False))
    return planting_fidelity(world, model, tok)
