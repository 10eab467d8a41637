"""Knowledge retention through SFT: does the fine-tuned model still know what its base model knew?

The diagnosis reads the *base* model's knowledge (sampling, automatic probes) to tell missing
knowledge from a conflict, and a world's planting is verified on the base model
(:mod:`.fidelity`). Both assume that fine-tuning leaves that knowledge in place. Whether it does
is measured here: the knowledge probes (``probes.jsonl``: a question in the corpus's wording and
its answer, see :mod:`.knowledge`) are run on the base model and on every saved checkpoint of an
SFT run, and recall is reported per group of subjects:

* ``stage S`` — subjects first named in an SFT prompt of stage ``S`` (what SFT trained on);
* ``not in SFT`` — subjects no SFT prompt names (what SFT never touched).

A drop on the trained subjects with the untouched ones steady means SFT overwrote what it
trained on (e.g. answer styles or conflicting samples erasing stated facts); a drop everywhere
means it eroded knowledge in general. Either way a verdict such as "clean sample, fact known"
taken on the base model no longer describes the fine-tuned one — the figure says by how much.

Greedy recall needs the probe's answer exactly (a fine-tuned model that now answers in a
sentence misses it); ``mc_p_gold`` (the answer's probability among the probe's options) does
not depend on the answer's style, so both are given.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ilpnb.probe.knowledge import probe_report, read_probes, run_probes
from ilpnb.runs import Run

__all__ = ["NOT_IN_SFT", "subject_groups", "knowledge_retention", "retention_summary"]

NOT_IN_SFT = "not in SFT"


def subject_groups(subjects: Sequence[str], records: Sequence[Any]) -> dict[str, str]:
    """Each subject's group: ``stage S`` for the first stage whose prompts name it (whole-word
    match), :data:`NOT_IN_SFT` when no prompt does."""
    first: dict[str, int] = {}
    names = sorted(set(subjects), key=len, reverse=True)
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in names) + r")\b") if names else None
    for r in records:
        if pattern is None:
            break
        stage = int(getattr(r, "stage", 0) or 0)
        for hit in set(pattern.findall(r.prompt)):
            first[hit] = min(stage, first.get(hit, stage))
    return {s: f"stage {first[s]}" if s in first else NOT_IN_SFT for s in subjects}


def knowledge_retention(run: str | Path, probes: str | Path | None = None, stated_only: bool = True,
                        batch_size: int = 64) -> pd.DataFrame:
    """Probe recall of the base model and of every saved checkpoint of an SFT run.

    Args:
        run: an SFT run folder with saved checkpoints (``checkpoints="stages"`` or ``"points"``).
        probes: a probe file; default: the run's world's ``probes.jsonl``.
        stated_only: keep only facts the world's corpus states (needs ``world.json``; all
            probes otherwise) — the facts the base model is meant to know.
        batch_size: probes per forward pass.

    Returns:
        One row per checkpoint and subject group: ``checkpoint``, ``step``, ``stage`` (of the
        checkpoint; None for the base), ``group``, ``facts``, ``recall`` (greedy exact),
        ``mc_p_gold`` (mean), ``mc_correct`` (share).

    Raises:
        FileNotFoundError: No probe file, or the run has no saved checkpoint.
    """
    from ilpnb.interactions.checkpoints import load_checkpoint

    reader = Run(run)
    world = reader.world
    path = Path(probes) if probes is not None else (world / "probes.jsonl" if world is not None else None)
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{path or reader.path}: no probe file (probes.jsonl) to measure retention with")
    table = read_probes(path)
    checkpoints = reader.checkpoints(include_base=True)
    if len(checkpoints) < 2:
        raise FileNotFoundError(f"{reader.path}: no saved checkpoint to compare with the base model "
                                "(fine-tune with checkpoints='stages' or 'points')")
    groups = subject_groups([p["subject"] for p in table], reader.records())
    rows = []
    for ck in checkpoints:
        model, tok = load_checkpoint(ck)
        result = run_probes(model, tok, table, batch_size=batch_size)
        if world is not None and (world / "world.json").is_file():
            result = probe_report(result, world)
            if stated_only:
                result = result[result["stated"]]
        result = result.assign(group=result["subject"].map(groups))
        for group, g in result.groupby("group", sort=True):
            rows.append({"checkpoint": ck.name, "step": ck.step, "stage": ck.stage, "group": group,
                         "facts": len(g), "recall": float(g["recall"].mean()),
                         "mc_p_gold": float(g["mc_p_gold"].mean()), "mc_correct": float(g["mc_correct"].mean())})
        del model
    return pd.DataFrame(rows)


def retention_summary(table: pd.DataFrame, value: str = "recall") -> pd.DataFrame:
    """``value`` by checkpoint (rows, in step order) and subject group (columns)."""
    wide = table.pivot_table(index=["step", "checkpoint"], columns="group", values=value, aggfunc="first")
    return wide.sort_index()
