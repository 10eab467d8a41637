"""Targeted interventions, one family per cause, each with two controls.

An intervention turns the diagnosis of a run into a *training plan* (what
:func:`ilpnb.train.sft.run_sft` changes: per-sample loss weights, repeats, deletions,
relabelling, replay into later stages, conflict buckets, dynamic resampling, global
shuffling) and possibly a new base model (continued pretraining). Every experiment has three
arms on the **same targets** (the samples diagnosed with the cause), judged on the same ids
against their original labels:

* ``treated`` — the intervention (:func:`build_plan`);
* ``generic`` — the same extra optimisation spent on the same targets *without* the
  cause-specific idea: the targets upsampled to as many extra trained examples (tokens) as the
  treated arm spent on them (:func:`generic_plan`; a method that adds nothing — relabelling,
  deletion, bucketing, shuffling — has the unmodified run as its generic control);
* ``placebo`` — the same plan on as many random samples of *other* causes
  (:func:`build_plan` with ``control=True``), so targeting itself is tested. A global method
  (``shuffle``) trains the same data whichever ids are picked: its placebo would be the treated
  run itself, so it has none (:func:`has_placebo`).

A fix is called cause-specific only when it beats its generic control.

Methods (``cause``: ``method``):

* ``missing_knowledge``: ``cpt`` — continued pretraining on knowledge-augmented text (on a
  world: the missing facts stated in paraphrased declarative sentences, about 20 documents
  per fact), mixed 0.8 general / 0.2 knowledge, then SFT again;
* ``pretrain_conflict``: ``cpt`` (continued pretraining on the SFT answer stated as text: the
  belief is edited where it lives, in the pretrained knowledge, as ``cpt`` adds a missing fact),
  ``upweight`` (loss weight ×k), ``bucketing`` (each target kept out of shared batches),
  ``relabel`` (answer replaced by the base model's answer);
* ``data_conflict``: ``relabel`` (losing siblings take the winner's answer: the sibling the run
  reproduced best), ``bucketing`` (siblings never in one batch), ``delete`` (drop the losing
  side of each near-duplicate group; judged on the kept sample);
* ``left_forgetting``: ``replay`` (targeted earlier-stage samples replayed in every later
  stage), ``shuffle`` (all stages trained as one shuffled stage), ``resample`` (targets whose
  reproduction drops between evaluation points — exactness lost, or token accuracy down by a
  relative ``resample_drop`` — are sampled k× more often);
* ``rare_pattern``: ``progressive`` (the published progressive epoch increase: the whole SFT
  set trained e more epochs per stage, e = 1, 2, ... k raised by the experiment until the
  targets' loss stops improving — more optimisation of the model, not more copies of the
  targets), ``upsample`` (k copies per epoch), ``weight`` (loss weight ×k).

``upweight``, ``weight`` and ``upsample`` *are* "more gradient on the targets": they have no
cause-specific idea (:data:`GENERIC_METHODS`), so they cannot be cause-specific by definition.
``progressive`` spends its extra compute on every sample: its generic control spends as many
extra trained examples in all on the targets alone.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from ilpnb.causes import ALL_CAUSES, NONE

__all__ = ["Plan", "Preregistered", "INTERVENTIONS", "DEFAULT_METHOD", "DEFAULT_FACTOR", "PREREGISTERED",
           "GENERIC_METHODS", "build_plan", "generic_plan", "has_placebo", "same_training", "targets_of"]


@dataclass
class Plan:
    """What one arm's run changes (all JSON-able).

    Attributes:
        weights: id -> loss weight (others 1.0).
        repeats: id -> copies per epoch (others 1).
        exclude: ids not trained on (still measured, on their original label).
        relabel: id -> new response to train on (measurement stays on the original label).
        replay: ids of earlier stages replayed in every later stage.
        bucket_groups: groups of ids never put in one batch.
        resample: multiplicity for samples whose reproduction drops between points (0 = off).
        resample_ids: the only ids dynamic resampling may raise (empty: every sample).
        resample_drop: relative drop of token accuracy that also counts as a drop (0 = exactness only).
        stages: ``sequential`` or ``mixed``.
        cpt_ids: ids whose knowledge is added by continued pretraining (``cpt``).
        extra_epochs: epochs added to every stage, for every sample (``progressive``).
        targets: the ids the plan acts on (treated/generic: diagnosed; placebo: random others).
    """

    weights: dict[str, float] = field(default_factory=dict)
    repeats: dict[str, int] = field(default_factory=dict)
    exclude: list[str] = field(default_factory=list)
    relabel: dict[str, str] = field(default_factory=dict)
    replay: list[str] = field(default_factory=list)
    bucket_groups: list[list[str]] = field(default_factory=list)
    resample: int = 0
    resample_ids: list[str] = field(default_factory=list)
    resample_drop: float = 0.0
    stages: str = "sequential"
    cpt_ids: list[str] = field(default_factory=list)
    extra_epochs: int = 0
    targets: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return dict(self.__dict__)


@dataclass(frozen=True)
class Preregistered:
    """The method and factor of a cause fixed before any evaluation, and why."""

    method: str
    factor: int
    why: str


@dataclass
class _Inputs:
    diagnosis: pd.DataFrame  # indexed by id
    records: pd.DataFrame  # indexed by id: prompt, response, stage
    base_answer: dict[str, str]
    final_score: dict[str, float]  # a per-sample "how well reproduced" of the diagnosed run (token accuracy)
    factor: int
    resample_drop: float = 0.0


def _weights(ids: list[str], k: int) -> dict[str, float]:
    return {i: float(k) for i in ids}


def _siblings(d: pd.DataFrame, i: str) -> list[str]:
    if "siblings" not in d:
        return []
    value = d.at[i, "siblings"]
    return [s for s in (list(value) if value is not None else []) if s in d.index]


def _groups_of(ids: list[str], d: pd.DataFrame) -> list[list[str]]:
    groups, seen = [], set()
    for i in ids:
        if i in seen:
            continue
        g = [i] + _siblings(d, i)
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


def _bucketing(cause: str, ids: list[str], inp: _Inputs, control: bool) -> Plan:
    """Siblings (data conflict) or each target alone (other causes) in groups never sharing a batch;
    the placebo keeps random groups of the same sizes apart."""
    sizes = [len(g) for g in _groups_of(ids, inp.diagnosis)] if cause == "data_conflict" else [1] * len(ids)
    if control or cause != "data_conflict":
        pool, groups = list(ids), []
        for size in sizes:
            groups.append(pool[:size])
            pool = pool[size:]
    else:
        groups = _groups_of(ids, inp.diagnosis)
    return Plan(bucket_groups=[g for g in groups if g], targets=ids)


def _plan(cause: str, method: str, ids: list[str], inp: _Inputs, control: bool) -> Plan:
    k = inp.factor
    if method in ("upweight", "weight"):
        return Plan(weights=_weights(ids, k), targets=ids)
    if method == "upsample":
        return Plan(repeats={i: k for i in ids}, targets=ids)
    if method == "progressive":  # k extra epochs of the whole set (the experiment raises k step by step)
        return Plan(extra_epochs=k, targets=ids)
    if method == "bucketing":
        return _bucketing(cause, ids, inp, control)
    if method == "delete":
        if control:  # as many random deletions as the treated arm makes
            n = len(_losers(_groups_of(ids, inp.diagnosis), inp)[0]) if cause == "data_conflict" else len(ids) // 2
            return Plan(exclude=ids[: max(1, n)], targets=ids)
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
        return Plan(resample=k, resample_ids=list(ids), resample_drop=inp.resample_drop, targets=ids)
    if method == "cpt":
        return Plan(cpt_ids=ids, targets=ids)
    raise ValueError(f"unknown method '{method}' for cause '{cause}' (known: {', '.join(INTERVENTIONS.get(cause, ()))})")


INTERVENTIONS: dict[str, tuple[str, ...]] = {
    "missing_knowledge": ("cpt",),
    "pretrain_conflict": ("cpt", "upweight", "bucketing", "relabel"),
    "data_conflict": ("relabel", "bucketing", "delete"),
    "left_forgetting": ("replay", "shuffle", "resample"),
    "rare_pattern": ("progressive", "upsample", "weight"),
}
#: Methods that are only "more gradient on the targets": their generic control is themselves.
GENERIC_METHODS: frozenset[str] = frozenset({"upweight", "weight", "upsample"})
#: Methods whose training does not depend on which ids are picked: no placebo exists
#: (``progressive`` trains every sample longer; only its choice of e reads the targets).
_GLOBAL_METHODS: frozenset[str] = frozenset({"shuffle", "progressive"})
#: The default method per cause: :attr:`ilpnb.causes.Cause.mitigation` (the first method of each family).
DEFAULT_METHOD = {cause.name: cause.mitigation for cause in ALL_CAUSES}
#: k per method when none is given: rare patterns need more extra passes than a conflict needs weight.
DEFAULT_FACTOR = {"upsample": 8, "weight": 8, "progressive": 4}  # progressive: the most extra epochs tried

#: Pre-registered: the method and factor per cause, fixed here before any evaluation (a change
#: must be a commit of its own, made before the results it is judged on). Every other method is
#: still run and shown (notebook 08, the crossover), including those that lose.
PREREGISTERED: dict[str, Preregistered] = {
    "missing_knowledge": Preregistered("cpt", 4, "the published fix: the model must read the fact as text before "
                                       "SFT can map a question onto it; k is unused by cpt"),
    "pretrain_conflict": Preregistered("cpt", 4, "a belief lives in the pretrained knowledge, so the fix edits it "
                                       "there: the SFT answer stated as text, as the missing-knowledge fix states a "
                                       "missing fact (upweighting, the former choice, is the generic control itself "
                                       "and could not fail against it); k is unused by cpt"),
    "data_conflict": Preregistered("relabel", 4, "one consistent answer per near-duplicate group removes the "
                                   "contradiction itself; k is unused by relabel"),
    "left_forgetting": Preregistered("replay", 4, "the published fix for sequential SFT: earlier samples seen "
                                     "again in later stages; k is unused by replay"),
    "rare_pattern": Preregistered("progressive", 4, "the published fix for under-optimised samples: train longer "
                                  "until the targets stop improving; the idea is more optimisation of the model, "
                                  "not more copies of the targets (which is the generic control: upsampling, the "
                                  "former choice, could not fail against it); at most 4 extra epochs "
                                  "(DEFAULT_FACTOR), fixed before any result"),
}


def targets_of(diagnosis: pd.DataFrame, cause: str) -> list[str]:
    """The ids diagnosed with ``cause`` (sorted)."""
    d = diagnosis.set_index(diagnosis["id"].astype(str)) if "id" in diagnosis else diagnosis
    return sorted(d.index[d["cause"] == cause].tolist())


def _placebo_pool(d: pd.DataFrame, records: pd.DataFrame, cause: str, method: str, n: int) -> list[str]:
    """Candidates of the placebo, best first: unlearned samples of other causes, then learned ones;
    for ``replay`` only earlier-stage samples (a last-stage sample is never replayed)."""
    others = [i for i in sorted(d.index) if d.at[i, "cause"] != cause]
    if method == "replay":
        last = records["stage"].max()
        others = [i for i in others if records.at[i, "stage"] < last]
    unlearned = [i for i in others if d.at[i, "cause"] != NONE]
    return unlearned if len(unlearned) >= n else others


def build_plan(cause: str, method: str, diagnosis: pd.DataFrame, records: pd.DataFrame, base_answer: dict[str, str],
               final_score: dict[str, float], control: bool, seed: int = 0, factor: int | None = None,
               resample_drop: float = 0.0, targets: list[str] | None = None) -> Plan:
    """The treated plan (on the samples diagnosed with ``cause``) or its placebo
    (``control=True``: the same plan on as many random samples of other causes).

    Args:
        cause: the cause whose samples are targeted (the crossover applies any method to any cause).
        method: one of :data:`INTERVENTIONS` (any cause's).
        diagnosis: ``diagnosis.parquet`` of the run.
        records: SFT records indexed by id (prompt, response, stage).
        base_answer: id -> the base model's preferred answer (for relabelling).
        final_score: id -> how well the run reproduced it at the end (token accuracy).
        control: build the placebo.
        seed: seed of the random draw of the placebo.
        factor: the k of weights, copies and resampling (default: :data:`DEFAULT_FACTOR`, else 4).
        resample_drop: relative token-accuracy drop that triggers resampling (``resample``).
        targets: the treated ids (default: every sample diagnosed with ``cause``).

    Raises:
        ValueError: unknown cause/method, no sample is diagnosed with the cause, or too few
            other samples for a placebo of the same size.
    """
    if cause not in INTERVENTIONS:
        raise ValueError(f"unknown cause '{cause}' (known: {', '.join(INTERVENTIONS)})")
    known = {m for ms in INTERVENTIONS.values() for m in ms}
    if method not in known:
        raise ValueError(f"unknown method '{method}' for cause '{cause}' (known: {', '.join(sorted(known))})")
    d = diagnosis.set_index(diagnosis["id"].astype(str)) if "id" in diagnosis else diagnosis
    targets = sorted(targets) if targets is not None else targets_of(d, cause)
    if not targets:
        raise ValueError(f"no sample of this run is diagnosed '{cause}': nothing to mitigate")
    inp = _Inputs(d, records, base_answer, final_score, factor or DEFAULT_FACTOR.get(method, 4), resample_drop)
    if not control:
        return _plan(cause, method, targets, inp, control=False)
    pool = _placebo_pool(d, records, cause, method, len(targets))
    if len(pool) < len(targets):
        raise ValueError(f"placebo of {cause}/{method}: {len(targets)} targets but only {len(pool)} other "
                         f"{'earlier-stage ' if method == 'replay' else ''}samples to draw as many from")
    picks = sorted(random.Random(seed).sample(pool, len(targets)))
    return _plan(cause, method, picks, inp, control=True)


def generic_plan(treated: Plan, extra_examples: dict[str, int], epochs: int) -> Plan:
    """The generic, compute-matched control: the treated targets upsampled (``repeats``) so that
    each gets as many extra trained examples per run as the treated arm gave it.

    Args:
        treated: the treated plan (its ``targets`` are kept).
        extra_examples: id -> extra trained examples over the run the treated arm spent on it
            (from its schedule, or the continued-pretraining documents' equivalent).
        epochs: epochs per stage (copies add ``epochs`` examples each).
    """
    repeats = {}
    for i in treated.targets:
        extra = int(extra_examples.get(i, 0))
        copies = round(extra / max(1, epochs))
        if copies > 0:
            repeats[i] = 1 + copies
    return Plan(repeats=repeats, targets=list(treated.targets))


def has_placebo(method: str) -> bool:
    """Whether a placebo differs from the treated run (a global method trains the same data for any ids)."""
    return method not in _GLOBAL_METHODS


def same_training(a: Plan, b: Plan) -> bool:
    """Whether two plans train exactly the same data (their ``targets`` aside)."""
    da, db = a.to_dict(), b.to_dict()
    da.pop("targets"), db.pop("targets")
    return da == db
