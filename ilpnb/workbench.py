"""The steps notebooks and commands share: world -> base model -> probe report, in a run folder.

Each ``ensure_*`` function does its step once and records the result in the run folder,
so a notebook (or a resumed run) calling it again reads what is there instead of redoing
it. Notebooks share state only through these files:

* ``RUN/world/`` — the world folder of DESIGN.md;
* ``RUN/base_model.json`` — where the (cached) pretrained base model lives, and its key;
* ``RUN/probes.parquet`` — the knowledge-probe table of the base model.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ilpnb.config import Preset, get_preset, to_dict
from ilpnb.data.world import generate_world
from ilpnb.models.pretrain import pretrain_base_model, pretrain_info
from ilpnb.runs import RunFolder

__all__ = ["open_or_create_run", "ensure_world", "ensure_base_model", "ensure_probe_report", "load_base_model"]


def _preset(preset: str | Preset) -> Preset:
    return preset if isinstance(preset, Preset) else get_preset(preset)


def open_or_create_run(run: str | Path, preset: str | Preset) -> RunFolder:
    """Open the run folder ``run``, or start it with the preset's configuration."""
    path = Path(run)
    if (path / "config.json").exists():
        return RunFolder.open(path)
    p = _preset(preset)
    return RunFolder.create(path, {"kind": "workbench", "preset": p.name, "settings": to_dict(p)})


def ensure_world(run: str | Path, preset: str | Preset, seed: int | None = None) -> Path:
    """Generate the preset's world into ``RUN/world`` (once).

    Args:
        run: the run folder.
        preset: preset name or object.
        seed: override the world seed.
    """
    p = _preset(preset)
    folder = open_or_create_run(run, p)
    cfg = p.world
    if seed is not None:
        cfg.seed = seed
    return generate_world(cfg, folder.path / "world")


def ensure_base_model(run: str | Path, preset: str | Preset, progress: bool = True) -> Path:
    """Pretrain the preset's tiny base model on ``RUN/world/pretrain.txt`` (cached), once.

    Returns:
        The model folder (inside the model cache, shared by runs with the same settings).
    """
    p = _preset(preset)
    folder = open_or_create_run(run, p)
    world = ensure_world(run, p)
    if folder.exists("base_model.json"):
        path = Path(folder.read_json("base_model.json")["path"])
        if path.exists():
            return path
    path = pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=progress)
    info = pretrain_info(path)
    folder.write_json("base_model.json", {
        "path": str(path.resolve()),
        "key": path.name,
        "parameters": info["parameters"],
        "pretrain_seconds": info["seconds"],
        "tokens_per_epoch": info["tokens_per_epoch"],
    })
    return path


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
    if target.exists():
        return pd.read_parquet(target)
    world = ensure_world(run, p)
    model, tok = load_base_model(ensure_base_model(run, p))
    table = probe_report(run_probes(model, tok, read_probes(world / "probes.jsonl")), world)
    table.to_parquet(target, index=False)
    return table
