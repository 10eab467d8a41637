"""The interaction notebooks' entry points: their fine-tuning run and its dynamics, made once.

Notebooks 10 and 11 share state only through the run folder: both call
:func:`ensure_interaction_dynamics`, which makes ``RUN/sft_interactions`` (a fine-tuning run
with enough checkpoints) and its interaction tables the first time and reads them back after.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ilpnb.interactions.checkpoints import list_checkpoints, quiet_loading
from ilpnb.interactions.settings import dynamics_config
from ilpnb.pipeline.steps import record, reuse
from ilpnb.pipeline.sweep import WORK, DynamicsTables, interaction_dynamics
from ilpnb.pipeline.workbench import ensure_base_model, ensure_world
from ilpnb.train.sft import run_sft

__all__ = ["ensure_interaction_dynamics", "ensure_interaction_run"]


def ensure_interaction_run(run: str | Path, preset: str = "default", seed: int | None = None) -> Path:
    """The fine-tuning run the interaction notebooks study, made once: ``RUN/sft_interactions``.

    It fine-tunes the world's base model (``RUN/world``, made by
    :func:`ilpnb.pipeline.workbench.ensure_world` if missing) on the whole SFT set, all stages mixed
    (``sft_stages="mixed"``), with a checkpoint every ``sft_eval_every`` steps for ``sft_epochs`` epochs (the preset's
    :class:`DynamicsConfig`), so the dynamics have enough checkpoints; everything else is the
    preset's SFT. An interrupted run resumes. ``seed`` (the SFT seed: data order; default the
    preset's) makes ``RUN/sft_interactions-seed<S>`` instead, on the same world and base model.

    Returns:
        The fine-tuning run folder.
    """
    cfg = dynamics_config(preset)
    name = "sft_interactions" if seed is None else f"sft_interactions-seed{seed}"
    out = Path(run) / name
    sft = {"epochs": cfg.sft_epochs, "eval_every": cfg.sft_eval_every,
           # a fixed schedule: the study follows SFT past convergence, into over-fitting
           "converge": False, **({} if seed is None else {"seed": seed})}
    settings = {"preset": preset, "stages": cfg.sft_stages, "sft": sft}
    if reuse(run, name, settings, (out / "dynamics.parquet").is_file()):
        return out
    world = ensure_world(run, preset)
    ensure_base_model(run, preset, progress=False)
    with quiet_loading(True):  # no per-checkpoint "writing shards" bars in the notebook
        made = run_sft(out, world=world, preset=preset, stages=cfg.sft_stages, sft=sft,
                       track_options="ends", resume=True, progress=False)
    record(run, name, settings)
    return made


def ensure_interaction_dynamics(run: str | Path, preset: str = "default", progress: bool = False,
                                seed: int | None = None, **changes: Any) -> DynamicsTables:
    """:func:`ensure_interaction_run` (with ``seed``), then its interaction dynamics (computed once, resumed).

    Returns:
        The tables of ``RUN/sft_interactions`` (or ``-seed<S>``).
    """
    sft = ensure_interaction_run(run, preset, seed)
    try:
        tables = DynamicsTables.load(sft)
        stored = json.loads((sft / WORK / "settings.json").read_text())
        want = dynamics_config(preset, **changes)
        if stored.get("interactions") == want.interaction_settings() and \
                tables.stopping.get("steps") == [c.step for c in list_checkpoints(sft)] and \
                tables.stopping.get("salient_frac") == want.salient_frac and \
                tables.stopping.get("salient_scale", "own") == want.salient_scale and \
                tables.stopping.get("rule") == want.stop_rule:
            return tables
    except FileNotFoundError:
        pass
    return interaction_dynamics(sft, preset=preset, progress=progress, **changes)
