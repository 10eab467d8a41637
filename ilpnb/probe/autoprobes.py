"""Automatic knowledge probes for any SFT set: missing knowledge vs conflict, no probe file.

Every record is its own probe. Its question is put to the model in several *framings* —
generic wrappings with no world-specific words:

* ``chat``: the training format (:func:`ilpnb.train.format.encode_pair`: the chat template, or
  the plain ``prompt + "\\n"`` format without one);
* ``plain``: the raw prompt as text to continue, ``prompt + "\\n"``, no chat template;
* ``qa``: ``"Q: {prompt} A:"``, answered after a space.

A framing whose prompt tokens equal an earlier framing's for every record (``plain`` when the
tokenizer has no chat template; ``qa`` for a tokenizer whose template is ``Q: … A:``) is the
same question asked twice, so it is dropped.

Per framing, :func:`ilpnb.probe.sampling.generate_answers` gives the greedy answer and
``n_samples`` samples (one generate call per batch), summarised as in
:func:`ilpnb.probe.sampling.summarize_answers`. The model's preferred other answer is then
taken over all framings' answers together, and both the gold answer and that other answer
are scored as teacher-forced continuations of every framing
(:func:`ilpnb.probe.scoring.score_continuations`, summed log-probability, no end-of-sequence
token): a cloze comparison that does not depend on what sampling happened to produce.

**Category over framings** is Gekhman et al. 2024's definition with the framings in place of
their few-shot prompts: ``known`` when the greedy answer is correct in every framing,
``maybe_known`` in some, ``weakly_known`` in none but some sample is correct, ``unknown``
otherwise.

**Belief over framings**: the preferred other answer is a ``belief`` when, in at least one
framing, it is the greedy answer and holds at least
:data:`ilpnb.probe.sampling.BELIEF_MIN_SHARE` of that framing's answers (a belief by
sampling, as in :mod:`ilpnb.probe.sampling`), it beats the gold answer teacher-forced in at
least :data:`BELIEF_MIN_FRAMING_SHARE` of the framings (consistency: the preference does not
depend on the wording), and it is not a default answer of the set in any framing (see
:func:`ilpnb.probe.sampling.default_answers`). A framing in which the model does not answer
at all (a chat model asked to continue raw text may ramble) cannot confirm a belief by
sampling, but its teacher-forced comparison still counts.

**Verdict** (first rule that applies): ``knows`` (category ``known``), ``believes_other``
(belief), ``knows`` (category ``maybe_known``), ``missing`` (anything else: the model neither
produces the gold answer reliably nor holds a consistent alternative — new knowledge).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ilpnb.probe.sampling import (
    BELIEF_MIN_SHARE,
    DEFAULT_MARGIN,
    DEFAULT_N_SAMPLES,
    DEFAULT_TEMPERATURE,
    Match,
    answer_head,
    default_answers,
    generate_answers,
    normalize_answer,
    preferred_other,
    record_rows,
    summarize_answers,
)
from ilpnb.probe.scoring import score_continuations
from ilpnb.train.format import encode_pair

__all__ = [
    "FRAMINGS",
    "VERDICTS",
    "BELIEF_MIN_FRAMING_SHARE",
    "framing_ids",
    "active_framings",
    "auto_probe",
]

#: The framings, in the order they are asked (the training format first).
FRAMINGS = ("chat", "plain", "qa")

#: Verdicts of :func:`auto_probe`.
VERDICTS = ("knows", "believes_other", "missing")

#: Share of the framings in which the other answer must beat the gold one teacher-forced for a
#: belief: all of them. A belief is stated whatever the wording; a preference that flips with
#: the framing is a guess conditioned on the format, not knowledge in conflict with the gold.
BELIEF_MIN_FRAMING_SHARE = 1.0


def _ids(tokenizer: PreTrainedTokenizerBase, text: str, special: bool) -> list[int]:
    return list(tokenizer(text, add_special_tokens=special)["input_ids"])


def framing_ids(
    tokenizer: PreTrainedTokenizerBase, framing: str, prompt: str, answer: str, max_length: int | None = None,
) -> tuple[list[int], list[int]]:
    """Token ids of ``(context, answer continuation)`` for a question in one framing.

    The continuation never ends with the end-of-sequence token. With ``max_length`` the
    context loses tokens on the left (keeping at least one), as in training.

    Raises:
        ValueError: an unknown framing (the message lists :data:`FRAMINGS`).
    """
    if framing == "chat":
        enc = encode_pair(tokenizer, prompt, answer)
        ctx, cont = list(enc.prompt_ids), list(enc.response_ids)
        eos = tokenizer.eos_token_id
        if eos is not None and eos in cont:
            cont = cont[: cont.index(eos)]
    elif framing == "plain":
        ctx, cont = _ids(tokenizer, prompt + "\n", True), _ids(tokenizer, answer, False)
    elif framing == "qa":
        ctx, cont = _ids(tokenizer, f"Q: {prompt} A:", True), _ids(tokenizer, " " + answer, False)
    else:
        raise ValueError(f"unknown framing '{framing}' (known: {', '.join(FRAMINGS)})")
    if max_length is not None and len(ctx) + len(cont) > max_length:
        ctx = ctx[min(len(ctx) - 1, len(ctx) + len(cont) - max_length):]
    return ctx, cont


def active_framings(tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str],
                    framings: Sequence[str] = FRAMINGS) -> list[str]:
    """The framings left after dropping those whose context ids equal an earlier framing's
    for every prompt (the same question asked twice)."""
    kept: list[str] = []
    contexts: dict[str, list[list[int]]] = {}
    for f in framings:
        ctx = [framing_ids(tokenizer, f, p, "x")[0] for p in prompts]
        if not any(contexts[k] == ctx for k in kept):
            kept.append(f)
            contexts[f] = ctx
    return kept


def _verdict(category: str, belief: bool) -> str:
    if category == "known":
        return "knows"
    if belief:
        return "believes_other"
    return "knows" if category == "maybe_known" else "missing"


@torch.inference_mode()
def auto_probe(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Any] | pd.DataFrame,
    *,
    framings: Sequence[str] = FRAMINGS,
    n_samples: int = DEFAULT_N_SAMPLES,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    batch_size: int = 16,
    margin: int = DEFAULT_MARGIN,
    max_length: int | None = None,
    match: Match = "contains",
) -> pd.DataFrame:
    """Probe what the model knows about each record's answer, under several framings.

    Args:
        model: the (base) model.
        tokenizer: its tokenizer.
        records: SFT records (objects with ``id``/``prompt``/``response``, or a DataFrame).
        framings: the framings to ask (a subset of :data:`FRAMINGS`; duplicates dropped).
        n_samples: sampled answers per record and framing besides the greedy one.
        temperature: sampling temperature.
        seed: seed of the samples (keyed by framing and record id).
        batch_size: prompts per generate call and pairs per scoring pass.
        margin: new tokens allowed beyond the gold response's token count.
        max_length: longest sequence (contexts lose tokens on the left).
        match: what counts as correct (see :mod:`ilpnb.probe.sampling`).

    Raises:
        ValueError: no framing, or one not in :data:`FRAMINGS`.

    Returns:
        A DataFrame indexed by ``id``. Per framing ``f``: ``f_greedy`` (greedy answer),
        ``f_correct`` (it is correct), ``f_share`` (share of the samples correct),
        ``f_other_share`` (share of the framing's answers that are the other answer),
        ``f_lp_gold`` / ``f_lp_other`` (teacher-forced log-probability of the gold and of the
        other answer; NaN without an other answer), ``f_p_gold`` (gold vs other:
        ``sigmoid(lp_gold - lp_other)``, NaN without an other answer). Over all framings:
        ``framings`` (those asked, comma-separated), ``greedy_correct_share`` (share of
        framings whose greedy answer is correct), ``sample_share`` (mean sampled share),
        ``category`` (see the module docstring), ``knows_gold`` (category ``known`` or
        ``maybe_known``), ``other_answer`` (most frequent wrong answer over all framings'
        answers; NA if none), ``other_share`` (its share of all those answers), ``other_greedy_share``
        (share of framings whose greedy answer it is), ``belief_framings`` (framings in which
        it is a belief by sampling), ``prefers_other_share`` (share of
        framings where it beats the gold teacher-forced), ``other_is_default``, ``belief``
        and ``verdict`` (one of :data:`VERDICTS`).
    """
    unknown = [f for f in framings if f not in FRAMINGS]
    if not framings or unknown:
        raise ValueError(f"framings must be a non-empty subset of {', '.join(FRAMINGS)}; got {list(framings)}")
    rows = record_rows(records)
    ids = [r.id for r in rows]
    golds = [r.response for r in rows]
    used = active_framings(tokenizer, [r.prompt for r in rows], framings) if rows else list(framings)
    out = pd.DataFrame(index=pd.Index(ids, name="id"))
    pooled: list[list[str]] = [[] for _ in rows]
    by_framing: dict[str, list[list[str]]] = {}
    contexts: dict[str, list[list[int]]] = {}
    for f in used:
        pairs = [framing_ids(tokenizer, f, r.prompt, r.response, max_length) for r in rows]
        contexts[f] = [c for c, _ in pairs]
        budgets = [len(cont) + 1 + margin for _, cont in pairs]  # + 1: the end-of-sequence token
        answers = generate_answers(model, tokenizer, contexts[f], budgets, n_samples=n_samples,
                                   temperature=temperature, seed=seed, keys=[f"{f}\x1f{i}" for i in ids],
                                   batch_size=batch_size)
        s = summarize_answers(answers, golds, ids, match, keep_samples=False)
        out[f"{f}_greedy"] = s["greedy"]
        out[f"{f}_correct"] = s["greedy_correct"]
        out[f"{f}_share"] = s["sample_share"]
        by_framing[f] = answers
        for k, a in enumerate(answers):
            pooled[k].extend(a)
    # the preferred other answer over all framings, and the set's default answers
    others = [preferred_other(p, g, match) for p, g in zip(pooled, golds)]
    defaults: set[str] = set()
    for f in used:
        defaults |= set(default_answers(by_framing[f], golds, match))
    # cloze comparison: gold vs other answer as continuations of each framing
    prefers = np.zeros(len(rows))
    n_scored = np.zeros(len(rows))
    for f in used:
        gold_pairs = [framing_ids(tokenizer, f, r.prompt, r.response, max_length) for r in rows]
        lp_gold = score_continuations(model, gold_pairs, batch_size, _pad(tokenizer)).logprob
        has = [k for k, (o, _) in enumerate(others) if o is not None]
        lp_other = np.full(len(rows), np.nan)
        if has:
            pairs = [framing_ids(tokenizer, f, rows[k].prompt, others[k][0], max_length) for k in has]
            keep = [j for j, (_, cont) in enumerate(pairs) if cont]
            if keep:
                scored = score_continuations(model, [pairs[j] for j in keep], batch_size, _pad(tokenizer)).logprob
                lp_other[[has[j] for j in keep]] = scored
        out[f"{f}_lp_gold"] = lp_gold
        out[f"{f}_lp_other"] = lp_other
        with np.errstate(over="ignore", invalid="ignore"):
            out[f"{f}_p_gold"] = 1.0 / (1.0 + np.exp(lp_other - lp_gold))
        valid = ~np.isnan(lp_other)
        prefers += valid & (lp_other > lp_gold)
        n_scored += valid
    n_f = max(len(used), 1)
    out["framings"] = ",".join(used)
    out["greedy_correct_share"] = sum(out[f"{f}_correct"].astype(float) for f in used) / n_f
    out["sample_share"] = sum(out[f"{f}_share"] for f in used) / n_f
    cats = []
    for g, sh in zip(out["greedy_correct_share"], out["sample_share"]):
        if g >= 1.0:
            cats.append("known")
        elif g > 0:
            cats.append("maybe_known")
        else:
            cats.append("weakly_known" if n_samples and sh > 0 else "unknown")
    out["category"] = cats
    out["knows_gold"] = out["category"].isin(["known", "maybe_known"])
    out["other_answer"] = [o for o, _ in others]
    out["other_share"] = [c / max(len(p), 1) for (_, c), p in zip(others, pooled)]
    keys = [normalize_answer(o) if o is not None else None for o, _ in others]
    framing_beliefs = np.zeros(len(rows), dtype=int)
    greedy_other = np.zeros(len(rows))
    for f in used:
        shares, greedy_is = [], []
        for k, key in enumerate(keys):
            heads = [normalize_answer(answer_head(a)) for a in by_framing[f][k]]
            shares.append(heads.count(key) / len(heads) if key else 0.0)
            greedy_is.append(bool(key) and heads[0] == key)
        out[f"{f}_other_share"] = shares
        greedy_other += np.array(greedy_is, dtype=float)
        framing_beliefs += np.array([g and sh >= BELIEF_MIN_SHARE for g, sh in zip(greedy_is, shares)], dtype=int)
    out["other_greedy_share"] = greedy_other / n_f
    out["belief_framings"] = framing_beliefs
    out["prefers_other_share"] = np.where(n_scored > 0, prefers / np.maximum(n_scored, 1), np.nan)
    out["other_is_default"] = [key in defaults if key else False for key in keys]
    out["belief"] = [bool(n_samples > 0 and key and not dft and nb >= 1 and ps >= BELIEF_MIN_FRAMING_SHARE)
                     for key, dft, nb, ps in zip(keys, out["other_is_default"], framing_beliefs,
                                                 np.nan_to_num(out["prefers_other_share"].to_numpy(float)))]
    out["verdict"] = [_verdict(c, b) for c, b in zip(out["category"], out["belief"])]
    per = [f"{f}_{c}" for f in used
           for c in ("greedy", "correct", "share", "other_share", "lp_gold", "lp_other", "p_gold")]
    return out[per + [c for c in out.columns if c not in per]]


def _pad(tokenizer: PreTrainedTokenizerBase) -> int:
    if tokenizer.pad_token_id is not None:
        return int(tokenizer.pad_token_id)
    return int(tokenizer.eos_token_id or 0)
