"""Targeted interventions, one family per cause, each with its matched control.

An intervention turns the diagnosis of a run into a *training plan* (what
:func:`ilpnb.train.sft.run_sft` changes: per-sample loss weights, repeats, deletions,
relabelling, replay into later stages, conflict buckets, dynamic resampling, global
shuffling) and possibly a new base model (continued pretraining). Its matched control
spends the same extra compute or data volume on the same number of randomly chosen
samples, so the comparison treated vs control isolates the targeting.

Methods (``cause``: ``method``):

* ``missing_knowledge``: ``cpt`` — continued pretraining on text stating the targeted
  samples' knowledge, mixed with general corpus text (``mix`` = share of knowledge text,
  0.2 as in the published study), then SFT again;
* ``pretrain_conflict``: ``upweight`` (loss weight ×k), ``bucketing`` (kept out of shared
  batches, plus the same weight), ``relabel`` (answer replaced by the base model's answer);
* ``data_conflict``: ``relabel`` (losing siblings take the winner's answer: the sibling the run
  reproduced best), ``bucketing`` (siblings never in one batch, and upweighted), ``delete``
  (drop the losing side of each near-duplicate group);
* ``left_forgetting``: ``replay`` (targeted earlier-stage samples replayed in every later
  stage), ``shuffle`` (all stages trained as one shuffled stage), ``resample`` (samples
  whose accuracy drops between evaluation points are sampled k× more often);
* ``rare_pattern``: ``upsample`` (k copies per epoch), ``weight`` (loss weight ×k).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Callable

import pandas as pd

from ilpnb.causes import ALL_CAUSES

__all__ = ["Plan", "INTERVENTIONS", "DEFAULT_METHOD", "DEFAULT_FACTOR", "build_plan"]


@dataclass
class Plan:
    """What a treated or control run changes (all JSON-able).

    Attributes:
        weights: id -> loss weight (others 1.0).
        repeats: id -> copies per epoch (others 1).
        exclude: ids not trained on (still measured).
        relabel: id -> new response (measured against it).
        replay: ids of earlier stages replayed in every later stage.
        bucket_groups: groups of ids never put in one batch.
        resample: multiplicity for samples whose exactness drops between points (0 = off).
        stages: ``sequential`` or ``mixed``.
        cpt_ids: ids whose knowledge text is added by continued pretraining (``cpt``).
        targets: the ids the plan acts on (treated: diagnosed; control: random).
    """

    weights: dict[str, float] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    relabel: dict[str, str] = field(default_factory=dict)
    replay: list[str] = field(default_factory=list)
    bucket_groups: list[list[str]] = field(default_factory=list)
    resample: int = 0
    stages: str = "sequential"
    cpt_ids: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


@dataclass
class _Inputs:
    diagnosis: pd.DataFrame  # indexed by id
    records: pd.DataFrame  # indexed by id: prompt, response, stage
    base_answer: dict[str, str]
    final_score: dict[str, float]  # a per-sample "how well reproduced" of the diagnosed run (token accuracy)
    factor: int


def _weights(ids: list[str], k: int) -> dict[str, float]:
    return {i: float(k) for i in ids}


def _groups_of(ids: list[str], d: pd.DataFrame) -> list[list[str]]:
    groups, seen = [], set()
    for i in ids:
        if i in seen:
            continue
        g = [i] + [s for s in d.at[i, "siblings"] if s in d.index]
        seen.update(g)
        groups.append(sorted(set(g)))
    return groups


def _losers(groups: list[list[str]], inp: _Inputs) -> tuple[list[str], dict[str, str]]:
    """Per group, the best-reproduced sample wins; the others lose (and their winner)."""
    losers, winner_of = [], {}
    for g in groups:
        win = max(g, key=lambda i: (inp.final_score.get(i, 0.0), i))
        for i in g:
            if i != win:
                losers.append(i)
                winner_of[i] = inp.records.at[win, "response"]
    return losers, winner_of


def _plan(cause: str, method: str, ids: list[str], inp: _Inputs, control: bool) -> Plan:
    k = inp.factor
    if method in ("upweight", "weight"):
        return Plan(weights=_weights(ids, k), targets=ids)
    if method == "upsample":
        return Plan(repeats={i: k for i in ids}, targets=ids)
    if method == "bucketing":
        groups = _groups_of(ids, inp.diagnosis) if cause == "data_conflict" and not control else [[i] for i in ids]
        if control:  # random groups of the same sizes
            sizes = [len(g) for g in _groups_of(ids, inp.diagnosis)] if cause == "data_conflict" else [1] * len(ids)
            pool, groups = list(ids), []
            for size in sizes:
                groups.append(pool[:size])
                pool = pool[size:]
        return Plan(bucket_groups=groups, weights=_weights([i for g in groups for i in g], k), targets=ids)
    if method == "delete":
        if control:
            return Plan(exclude=ids[: max(1, len(ids) // 2)], targets=ids)
        losers, _ = _losers(_groups_of(ids, inp.diagnosis), inp)
        return Plan(exclude=losers, targets=ids)
    if method == "relabel":
        if cause == "data_conflict" and not control:
            _, winner_of = _losers(_groups_of(ids, inp.diagnosis), inp)
            return Plan(relabel=winner_of, targets=ids)
        return Plan(relabel={i: inp.base_answer[i] for i in ids if inp.base_answer.get(i)}, targets=ids)
    if method == "replay":
        return Plan(replay=ids, targets=ids)
    if method == "shuffle":
        return Plan(stages="mixed", targets=ids)
    if method == "resample":
        return Plan(resample=k, targets=ids)
    if method == "cpt":
        return Plan(cpt_ids=ids, targets=ids)
    raise ValueError(f"unknown method '{method}' for cause '{cause}' (known: {', '.join(INTERVENTIONS.get(cause, ()))})")


INTERVENTIONS: dict[str, tuple[str, ...]] = {
    "missing_knowledge": ("cpt",),
    "pretrain_conflict": ("upweight", "bucketing", "relabel"),
    "data_conflict": ("relabel", "bucketing", "delete"),
    "left_forgetting": ("replay", "shuffle", "resample"),
    "rare_pattern": ("upsample", "weight"),
}
#: The default method per cause: :attr:`ilpnb.causes.Cause.mitigation` (the first method of each family).
DEFAULT_METHOD = {cause.name: cause.mitigation for cause in ALL_CAUSES}
#: k per method when none is given: rare patterns need more extra passes than a conflict needs weight.
DEFAULT_FACTOR = {"upsample": 8, "weight": 8}


def build_plan(cause: str, method: str, diagnosis: pd.DataFrame, records: pd.DataFrame, base_answer: dict[str, str],
               final_score: dict[str, float], control: bool, seed: int = 0, factor: int | None = None) -> Plan:
    """The treated plan (on the samples diagnosed with ``cause``) or its matched control
    (the same plan on as many samples drawn at random from the others).

    Args:
        cause: the cause the intervention targets.
        method: one of :data:`INTERVENTIONS` ``[cause]``.
        diagnosis: ``diagnosis.parquet`` of the run.
        records: SFT records indexed by id (prompt, response, stage).
        base_answer: id -> the base model's preferred answer (for relabelling).
        final_score: id -> how well the run reproduced it at the end (token accuracy).
        control: build the matched control.
        seed: seed of the random draw of the control.
        factor: the k of weights, copies and resampling (default: :data:`DEFAULT_FACTOR`, else 4).

    Raises:
        ValueError: unknown cause/method, or no sample is diagnosed with the cause.
    """
    if cause not in INTERVENTIONS:
        raise ValueError(f"unknown cause '{cause}' (known: {', '.join(INTERVENTIONS)})")
    d = diagnosis.set_index(diagnosis["id"].astype(str)) if "id" in diagnosis else diagnosis
    targets = sorted(d.index[(d["cause"] == cause)].tolist())
    if not targets:
        raise ValueError(f"no sample of this run is diagnosed '{cause}': nothing to mitigate")
    inp = _Inputs(d, records, base_answer, final_score, factor or DEFAULT_FACTOR.get(method, 4))
    if not control:
        return _plan(cause, method, targets, inp, control=False)
    rng = random.Random(seed)
    others = sorted(set(d.index) - set(targets))
    if method == "replay":  # replayable samples come from earlier stages
        last = records["stage"].max()
        early = [i for i in others if records.at[i, "stage"] < last]
        others = early or others
    picks = sorted(rng.sample(others, min(len(targets), len(others))))
    return _plan(cause, method, picks, inp, control=True)


_ = Callable  # typing helper kept for extension signatures
