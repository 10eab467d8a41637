"""The interaction study on the real LLM: SmolLM2 fine-tuned on the planted real world, followed
across dense-early checkpoints on held-out questions (notebooks 10 and 11, real side).

* :func:`real_heldout_prompts` — known capitals (measured on the base model; partly known ones
  only where too few known are left, as at ``smoke``) that no SFT sample asks about, each asked in a phrasing of the SFT set in the answer style the SFT set uses for
  that phrasing (inferred from the samples whose answer matches a style), so the held-out
  questions are what SFT should generalise to; phrasings answered with the bare capital are
  preferred, so the game's target (the gold answer's first token) is the capital's;
* :func:`ensure_real_interaction_run` — ``RUN/real/sft-interactions``: the study's setup, LoRA
  (rank ``sft.lora_r``), peak learning rate ``real.dyn_lr`` (1e-4) with a cosine schedule, all
  stages mixed, a fixed number of epochs (the study follows SFT past convergence), a checkpoint
  every ``real.dyn_eval_every`` steps, no per-sample evaluation passes (the in-training
  statistics give the SFT samples' fit);
* :func:`ensure_real_interaction_dynamics` — the interaction sweep
  (:func:`ilpnb.pipeline.sweep.interaction_dynamics`) over :func:`dense_then_sparse` of those
  checkpoints: every one of the first ``real.dyn_dense``, then evenly spread ones up to
  ``real.dyn_checkpoints``. The zero masking baseline: the learned one (the study's) takes
  minutes per model on a CPU (``benchmarks/bench_interactions.py`` measures it); no second real
  model of another architecture ships offline, so ``γ`` is not computed (pass ``reference=`` a
  model folder or name to compute it).
"""

from __future__ import annotations

import json
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.config import get_preset
from ilpnb.data.records import SFTRecord, read_records, write_records
from ilpnb.pipeline.sweep import DynamicsTables

__all__ = ["dense_then_sparse", "ensure_real_interaction_dynamics", "ensure_real_interaction_run",
           "real_heldout_prompts"]

RUN_DIR = ("real", "sft-interactions")


def _phrasing_styles(records: list[SFTRecord], value: dict[str, str]) -> dict[str, int]:
    """The answer style (index into STYLES) the SFT set uses for each question phrasing."""
    from ilpnb.data.realworld import QUESTIONS, STYLES

    out = {}
    for q in QUESTIONS:
        pat = re.compile("^" + re.escape(q).replace(re.escape("{c}"), "(.+)") + "$")
        seen: Counter[int] = Counter()
        for r in records:
            m = pat.match(r.prompt)
            v = value.get(m.group(1)) if m else None
            for k, style in enumerate(STYLES):
                if v is not None and style.format(v=v, c=m.group(1)) == r.response:
                    seen[k] += 1
        if seen:
            out[q] = seen.most_common(1)[0][0]
    return out


def real_heldout_prompts(world: str | Path, n: int, seed: int = 0) -> list[SFTRecord]:
    """Held-out questions of a planted real world (see the module docstring).

    Raises:
        ValueError: No phrasing's style can be inferred, or fewer than 2 known capitals are left
            out of the SFT set.
    """
    from ilpnb.data.realworld import STYLES, country_facts

    world = Path(world)
    value = {f.subject: f.value for f in country_facts()}
    records = read_records(world / "sft.jsonl")
    styles = _phrasing_styles(records, value)
    if not styles:
        raise ValueError(f"{world}: no question phrasing of the SFT set matches an answer style")
    bare = {q: k for q, k in styles.items() if STYLES[k] == "{v}"} or styles
    knowledge = pd.read_parquet(world / "knowledge.parquet")
    asked = " ".join(r.prompt for r in records)
    free = []
    for level in ("known", "partial"):  # known first; partly known ones only where too few known are left
        pool = sorted(str(c) for c in knowledge.index[knowledge["knowledge"] == level]
                      if str(c) in value and not re.search(rf"\b{re.escape(str(c))}\b", asked))
        random.Random(seed).shuffle(pool)
        free += [(c, level) for c in pool]
        if len(free) >= n:
            break
    if len(free) < 2:
        raise ValueError(f"{world}: only {len(free)} known or partly known capitals are left out of the SFT set; "
                         "need 2 or more (measure more countries: real.world.countries)")
    phrasings = sorted(bare)
    out = []
    for i, (c, level) in enumerate(free[:n]):
        q = phrasings[i % len(phrasings)]
        out.append(SFTRecord(id=f"h{i + 1:03d}", prompt=q.format(c=c),
                             response=STYLES[bare[q]].format(v=value[c], c=c),
                             meta={"subject": c, "relation": "capital", "phrasing": q, "knowledge": level}))
    return out


def dense_then_sparse(steps: list[int], dense: int, total: int) -> list[int]:
    """The first ``dense`` steps, then evenly spread later ones (the last included), ``total`` in all."""
    steps = sorted(steps)
    if len(steps) <= total:
        return steps
    head, tail = steps[:dense], steps[dense:]
    k = max(1, total - len(head))
    idx = sorted({int(round(x)) for x in np.linspace(0, len(tail) - 1, k + 1)[1:]})
    return head + [tail[i] for i in idx]


def ensure_real_interaction_run(run: str | Path, preset: str = "default", progress: bool = False,
                                seed: int | None = None) -> Path:
    """The real model's LoRA run of the interaction study, made once (see the module docstring).

    The planted real world is :func:`ilpnb.pipeline.realworld.ensure_planted_world`'s (notebook
    09's, or built now). An interrupted run resumes. ``seed`` (the SFT seed: data order and LoRA
    initialisation; default the preset's) makes ``RUN/real/sft-interactions-seed<S>`` instead.
    """
    from ilpnb.interactions.checkpoints import quiet_loading
    from ilpnb.pipeline.realworld import MODEL, ensure_planted_world
    from ilpnb.pipeline.steps import record, reuse
    from ilpnb.train.sft import run_sft

    run = Path(run)
    p = get_preset(preset)
    r = p.real
    world = ensure_planted_world(run, preset, MODEL)
    name = RUN_DIR[1] if seed is None else f"{RUN_DIR[1]}-seed{seed}"
    out = run / RUN_DIR[0] / name
    sft = {"lora": True, "lora_r": p.sft.lora_r, "lr": r.dyn_lr, "lr_scheduler": "cosine", "epochs": r.dyn_epochs,
           "batch_size": r.dyn_batch_size, "eval_every": r.dyn_eval_every, "converge": False,
           **({} if seed is None else {"seed": seed})}
    step = {"preset": preset, "model": MODEL, "world": json.loads((world / "world.json").read_text())["settings"],
            "sft": sft}
    if reuse(run, f"real:{name}", step, (out / "train_dynamics.parquet").is_file()):
        return out
    with quiet_loading(True):  # no per-sample evaluation passes: the sweep measures what it needs
        made = run_sft(out, model=MODEL, data=str(world / "sft.jsonl"), preset=preset, stages="mixed", sft=sft,
                       max_length=r.max_length, track="none", checkpoints="points", resume=out.exists(),
                       progress=progress)
    record(run, f"real:{name}", step)
    return made


def ensure_real_interaction_dynamics(run: str | Path, preset: str = "default", progress: bool = False,
                                     seed: int | None = None, **changes: Any) -> DynamicsTables:
    """:func:`ensure_real_interaction_run`, then the interactions of its held-out questions
    across :func:`dense_then_sparse` of its checkpoints (computed once, resumed).

    Args:
        changes: :class:`ilpnb.config.DynamicsConfig` fields to change (e.g. ``reference=`` a
            model of another architecture for ``γ``).
    """
    from ilpnb.interactions.checkpoints import list_checkpoints
    from ilpnb.interactions.settings import dynamics_config
    from ilpnb.pipeline.sweep import interaction_dynamics

    run = Path(run)
    r = get_preset(preset).real
    sft = ensure_real_interaction_run(run, preset, progress=progress, seed=seed)
    prompts = sft / "heldout.jsonl"
    if not prompts.is_file():
        write_records(real_heldout_prompts(run / "real" / "world", r.dyn_prompts), prompts)
    steps = dense_then_sparse([c.step for c in list_checkpoints(sft)][1:], r.dyn_dense, r.dyn_checkpoints)
    config = dynamics_config(preset, **{"max_players": r.dyn_players, "reference": "none", "baseline": "zero",
                                        "target": "gold", **changes})
    try:
        tables = DynamicsTables.load(sft)
        stored = json.loads((sft / "interactions" / "settings.json").read_text())
        if tables.stopping.get("steps") == [0, *steps] and \
                stored.get("interactions") == config.interaction_settings() and \
                (tables.stopping.get("salient_frac"), tables.stopping.get("salient_scale"),
                 tables.stopping.get("rule")) == (config.salient_frac, config.salient_scale, config.stop_rule):
            return tables
    except FileNotFoundError:
        pass
    return interaction_dynamics(sft, prompts=prompts, checkpoints=steps, config=config, progress=progress)
