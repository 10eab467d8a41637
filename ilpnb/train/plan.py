"""Applying a mitigation plan to the training data of one stage.

A plan (see :class:`ilpnb.mitigate.interventions.Plan`, stored as a JSON object in the
run's ``config.json``) changes what a stage trains on — never what is measured: every
sample is still tracked at every point. :func:`relabelled` swaps responses before encoding;
:func:`stage_examples` builds the examples and the sampler of one stage; and
:class:`ResampleOnDrop` raises the multiplicity of samples whose exactness drops between
evaluation points (dynamic resampling).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable

import pandas as pd

from ilpnb.train.trainer import PlanSampler

__all__ = ["relabelled", "stage_examples", "ResampleOnDrop"]


def relabelled(records: list[Any], plan: dict[str, Any] | None) -> list[Any]:
    """Records with the plan's new responses (and options without the new answer)."""
    new = (plan or {}).get("relabel") or {}
    if not new:
        return records
    out = []
    for r in records:
        if str(r.id) in new:
            answer = new[str(r.id)]
            opts = tuple(o for o in (r.options or ()) if o != answer) + ((r.response,) if r.options else ())
            r = replace(r, response=answer, options=opts or None)
        out.append(r)
    return out


def stage_examples(plan: dict[str, Any] | None, ids: list[str], stages: list[int], idx: list[int],
                   stage: int | str, example: Callable[[int], dict[str, Any]], batch_size: int,
                   seed: int, ordered: bool) -> tuple[list[dict[str, Any]], PlanSampler | None]:
    """The examples of one stage under a plan, and a sampler when the plan needs one.

    Args:
        plan: the plan (None: plain training).
        ids: sample id per record index.
        stages: stage per record index.
        idx: record indices of this stage.
        stage: this stage (an int; ``mixed`` runs have a single stage 0).
        example: record index -> training example dict.
        batch_size: per-device batch size.
        seed: data-order seed.
        ordered: keep the data order.
    """
    plan = plan or {}
    exclude = set(plan.get("exclude") or [])
    chosen = [i for i in idx if ids[i] not in exclude]
    replay = set(plan.get("replay") or [])
    if replay and isinstance(stage, int):
        chosen += [i for i, sid in enumerate(ids) if sid in replay and stages[i] < stage and i not in chosen]
    repeats = plan.get("repeats") or {}
    weights = plan.get("weights") or {}
    data = []
    for i in chosen:
        ex = dict(example(i))
        if weights:
            ex["weight"] = float(weights.get(ids[i], 1.0))
        data += [ex] * int(repeats.get(ids[i], 1))
    groups_of: dict[str, int] = {}
    for g, members in enumerate(plan.get("bucket_groups") or []):
        for sid in members:
            groups_of[sid] = g
    needs_sampler = bool(groups_of) or int(plan.get("resample") or 0) > 0
    if not needs_sampler:
        return data, None
    sampler = PlanSampler(len(data), batch_size, seed=seed, ordered=ordered,
                          groups=[groups_of.get(ids[ex["idx"]]) for ex in data] if groups_of else None)
    sampler.resample_only = set(plan.get("resample_ids") or [])  # empty: any sample may be resampled
    sampler.resample_drop = float(plan.get("resample_drop") or 0.0)
    return data, sampler


class ResampleOnDrop:
    """Dynamic resampling: after each evaluation point, samples whose exact reproduction
    dropped since the previous point (or, with the sampler's ``resample_drop`` r > 0, whose token
    accuracy fell by a relative r) get multiplicity ``factor`` in the stage's sampler; with the
    sampler's ``resample_only`` ids, only those may be raised."""

    def __init__(self, factor: int) -> None:
        self.factor = factor
        self.previous: dict[str, bool] = {}
        self.previous_acc: dict[str, float] = {}

    def update(self, table: pd.DataFrame, data: list[dict[str, Any]], ids: list[str], sampler: PlanSampler) -> int:
        """Update ``sampler`` from this point's ``table``; returns how many samples dropped."""
        now = dict(zip(table["id"].astype(str), table["exact"].astype(bool)))
        acc = dict(zip(table["id"].astype(str), table["token_acc"].astype(float))) if "token_acc" in table else {}
        rel = float(getattr(sampler, "resample_drop", 0.0) or 0.0)
        dropped = {i for i, ok in now.items() if self.previous.get(i) and not ok}
        if rel > 0:
            dropped |= {i for i, a in acc.items() if self.previous_acc.get(i, 0.0) > 0
                        and a < (1.0 - rel) * self.previous_acc[i]}
        only = getattr(sampler, "resample_only", None)
        if only:
            dropped &= only
        self.previous, self.previous_acc = now, acc
        sampler.multiplicity = [self.factor if ids[ex["idx"]] in dropped else 1 for ex in data]
        return len(dropped)
