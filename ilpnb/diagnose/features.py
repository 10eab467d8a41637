"""Per-sample signals shared by the detectors, computed once from a diagnosis context.

Every signal is one a user of a real model has, computed from the model, the data and the
run — never from how a world was written:

* **knowledge** — the base model's own answers to the prompt (greedy and sampled: the share
  right, its known / maybe / weakly / unknown category), and, where the records carry
  multiple-choice options, how far above chance it prefers the gold answer at step 0;
* **belief** — the base model's preferred *other* answer and how consistently it gives it
  (a belief is consistent and not a default; a guess spreads), confirmed by the automatic
  probes in other framings; whether the fine-tuned model ends up giving it;
* **siblings** — near-duplicate prompts by meaning with a different answer (conflicting) or
  the same one (consistent), and whether the final output is a sibling's answer;
* **forgetting** — reproduced at an evaluation after its last training step and lost by the
  end (:mod:`ilpnb.diagnose.schedule`), with the steps lost and the likely interferers,
  whether the final answer took the form of a later-trained one, and whether most samples
  trained after it that ask in its prompt form answer in another form (``restyled``: the same
  kind of question retrained with another kind of answer; :mod:`ilpnb.diagnose.forms`);
* **optimisation** — the loss still falling at the end (relative slope), the final token
  accuracy, and how many samples share the example's pattern (rare patterns get little of
  each epoch's gradient).

Knowledge probes the user supplies (a world's ``probes.jsonl``, or ``--probes``) add
``probe_blind`` / ``probe_known``.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ilpnb.diagnose.base import DiagnosisContext
from ilpnb.diagnose.evidence import consistent_answers
from ilpnb.diagnose.forms import form_rarity, later_restyled, takes_later_form
from ilpnb.diagnose.similarity import normalize_text
from ilpnb.diagnose.thresholds import (
    BELIEF_SHARE,
    RARE_MIN_COUNT,
    RARE_SHARE,
    RESTYLED_SHARE,
    SAMPLED_KNOWN,
    SIBLING_SIM,
)

__all__ = ["signals", "same_answer"]


def same_answer(output: object, answer: object) -> bool:
    """Whether an output gives an answer: equal after normalisation, or the answer is said in
    its first sentence (a model that says "It is red." for "red")."""
    if not isinstance(output, str) or not isinstance(answer, str):
        return False
    a, o = normalize_text(answer), normalize_text(output)
    if not a:
        return False
    head = normalize_text(re.split(r"(?<=[.!?])\s|\n", output.strip(), maxsplit=1)[0])
    return o == a or head == a or re.search(rf"\b{re.escape(a)}\b", head) is not None


def _knowledge(ctx: DiagnosisContext, out: pd.DataFrame) -> None:
    ids = ctx.ids
    base = ctx.base.reindex(ids)
    n_opt = ctx.records["options"].map(lambda o: len(o) if isinstance(o, (list, tuple, np.ndarray)) else 0)
    chance = 1.0 / (1.0 + n_opt.to_numpy(dtype=float))
    p = base["mc_p_gold"].to_numpy(dtype=float) if "mc_p_gold" in base else np.full(len(ids), np.nan)
    p = np.where(n_opt.to_numpy() > 0, p, np.nan)
    out["base_mc_gold"] = p
    out["mc_knowledge"] = np.clip((p - chance) / (1.0 - chance), 0.0, 1.0)
    know = ctx.info.get("knowledge")
    if know is not None:
        k = know.reindex(ids)
        out["gold_share"] = k["gold_share"].astype(float).to_numpy()
        out["category"] = k["category"].astype(object).to_numpy()
        other = k["other_answer"].astype(object).where(k["other_answer"].notna(), None)
        out["base_alt"] = other.to_numpy()
        out["base_alt_share"] = k["other_share"].fillna(0.0).astype(float).to_numpy()
        default = k["other_is_default"].fillna(False).astype(bool).to_numpy()
        greedy_wrong = ~k["greedy_correct"].fillna(False).astype(bool).to_numpy()
        # an "other" answer that the gold answer contains is part of the gold said another way
        # ("Tousom" for "Treklim lives in the country of Tousom."): no belief against it
        partial = np.array([isinstance(a, str) and consistent_answers(a, g) for a, g in
                            zip(out["base_alt"], ctx.records["response"].reindex(ids))])
        out["alt_in_gold"] = partial
        out["belief"] = (out["base_alt_share"] >= BELIEF_SHARE) & ~default & greedy_wrong & ~partial
        out["ap_belief"] = k["ap_belief"].fillna(False).astype(bool).to_numpy() if "ap_belief" in k else False
        out["ap_knows"] = k["ap_knows_gold"].fillna(False).astype(bool).to_numpy() if "ap_knows_gold" in k else False
    else:  # no model evidence (a table-only diagnosis): the step-0 measures alone
        out["gold_share"] = base["exact"].astype(float).to_numpy()
        out["category"] = np.where(base["exact"].astype(bool), "known", "unknown")
        out["base_alt"], out["base_alt_share"] = None, 0.0
        out["belief"] = out["ap_belief"] = out["ap_knows"] = False
    sampled = out["gold_share"].to_numpy(dtype=float)
    if "alt_in_gold" in out:  # its usual answer is part of the gold: that part, at least, is known
        sampled = np.where(out["alt_in_gold"].to_numpy(dtype=bool),
                           np.maximum(sampled, out["base_alt_share"].to_numpy(dtype=float)), sampled)
    mc = out["mc_knowledge"].to_numpy(dtype=float)
    # knowledge in [0, 1]: the better of "it says the answer" and "it prefers the answer"
    out["knowledge"] = np.fmax(sampled, mc)
    out["sampled_known"] = sampled >= SAMPLED_KNOWN


def _siblings(ctx: DiagnosisContext, out: pd.DataFrame) -> None:
    ids = ctx.ids
    neigh = ctx.info.get("neighbours") or {}
    conflicting, consistent = {}, {}
    for i in ids:
        near = [(s, sim, same) for s, sim, same in neigh.get(i, []) if sim >= SIBLING_SIM]
        conflicting[i] = [(s, sim) for s, sim, same in near if not same]
        consistent[i] = [(s, sim) for s, sim, same in near if same]
    if not neigh:  # no model: the lexical near-duplicates of the context
        conflicting = {i: list(ctx.siblings.get(i, [])) for i in ids}
    ctx.siblings = conflicting
    ctx.info["consistent"] = consistent
    out["sibling_sim"] = [max((s for _, s in conflicting[i]), default=0.0) for i in ids]
    out["n_conflicting"] = [len(conflicting[i]) for i in ids]
    out["n_consistent"] = [len(consistent[i]) for i in ids]
    resp = ctx.records["response"]
    out["output_is_sibling"] = [any(same_answer(o, resp.get(s)) for s, _ in conflicting[i])
                                for i, o in zip(ids, out["final_output"])]


def _forgetting(ctx: DiagnosisContext, out: pd.DataFrame) -> None:
    table = ctx.info.get("forgetting")
    if table is None:
        out["forgotten"], out["steps_lost"], out["last_trained_step"], out["last_learned_step"] = False, 0, 0, -1
        out["takes_later_form"] = False
        out["later_same_prompt"], out["later_restyled"], out["restyled"] = 0, 0, False
        return
    t = table.reindex(ctx.ids)
    out["forgotten"] = t["forgotten"].fillna(False).astype(bool).to_numpy()
    out["steps_lost"] = t["steps_lost"].fillna(0).astype(int).to_numpy()
    out["last_trained_step"] = t["last_trained_step"].fillna(0).astype(int).to_numpy()
    out["last_learned_step"] = t["last_learned_step"].fillna(-1).astype(int).to_numpy()
    rs = later_restyled(ctx.records.reindex(ctx.ids), t["last_trained_step"].fillna(0))
    out["later_same_prompt"] = rs["later_same_prompt"].to_numpy()
    out["later_restyled"] = rs["later_restyled"].to_numpy()
    out["restyled"] = (out["later_restyled"] > 0) & (out["later_restyled"] > RESTYLED_SHARE * out["later_same_prompt"])
    forgotten = [i for i, f in zip(ctx.ids, out["forgotten"]) if f]
    interf = ctx.info.get("interferers")
    if interf is not None:  # the most similar samples trained later
        later = {i: [j for j, _ in interf.get(i, [])] for i in forgotten}
    else:  # without the model's similarities: every sample trained later
        steps = table["last_trained_step"]
        later = {i: steps.index[steps > steps[i]].tolist() for i in forgotten}
    taken = takes_later_form(forgotten, dict(zip(ctx.ids, out["final_output"])), ctx.records["response"], later)
    out["takes_later_form"] = taken.reindex(ctx.ids, fill_value=False).to_numpy(dtype=bool)


def _optimisation(ctx: DiagnosisContext, out: pd.DataFrame) -> None:
    samples = ctx.samples.reindex(ctx.ids)
    final_loss = samples["final_loss"].astype(float).clip(lower=1e-3)
    out["slope"] = samples["loss_slope"].astype(float).to_numpy()
    out["rel_slope"] = (samples["loss_slope"].astype(float) / final_loss).to_numpy()
    out["final_token_acc"] = ctx.final.reindex(ctx.ids)["token_acc"].astype(float).to_numpy()
    patterns = ctx.info.get("patterns")
    n = len(ctx.ids)
    # the pattern's frequency: how many samples share the answer's form or the prompt's
    # (ilpnb.diagnose.forms); the embedding cluster size is reported beside it
    forms = form_rarity(ctx.records.reindex(ctx.ids), max(RARE_MIN_COUNT, RARE_SHARE * n))
    out["answer_form_count"] = forms["answer_form_count"].to_numpy()
    out["prompt_form_count"] = forms["prompt_form_count"].to_numpy()
    out["form_count"] = forms["form_count"].to_numpy()
    out["rare"] = forms["rare_form"].to_numpy(dtype=bool)
    if patterns is not None:
        out["pattern_count"] = patterns.reindex(ctx.ids)["pattern_count"].fillna(0).astype(int).to_numpy()
    else:
        out["pattern_count"] = -1


def _probes(ctx: DiagnosisContext, out: pd.DataFrame) -> None:
    blind, known = [], []
    for i, g in zip(ctx.ids, ctx.records["response"]):
        ps = ctx.probes.get(i, [])
        match = [p for p in ps if same_answer(g, p["answer"])]
        blind.append(any(p["blind"] for p in match))
        known.append(any(not p["blind"] for p in match))
    out["probe_blind"], out["probe_known"] = blind, known


def signals(ctx: DiagnosisContext) -> pd.DataFrame:
    """The signals table, indexed by sample id (cached in ``ctx.info['signals']``).

    Columns: ``base_mc_gold``, ``mc_knowledge`` (0 = chance, 1 = certain; NaN without
    options), ``gold_share``, ``category``, ``knowledge``, ``sampled_known``, ``base_alt``,
    ``base_alt_share``, ``belief``, ``ap_belief``, ``ap_knows``, ``final_output``,
    ``output_is_base_alt``, ``sibling_sim``, ``n_conflicting``, ``n_consistent``,
    ``output_is_sibling``, ``forgotten``, ``takes_later_form``, ``later_same_prompt``,
    ``later_restyled``, ``restyled``, ``steps_lost``, ``last_trained_step``, ``slope``,
    ``rel_slope``, ``final_token_acc``, ``answer_form_count``, ``prompt_form_count``, ``form_count``,
    ``pattern_count``, ``rare``, ``probe_blind``,
    ``probe_known``, ``js_final``.
    """
    if "signals" in ctx.info:
        return ctx.info["signals"]
    ids = ctx.ids
    out = pd.DataFrame(index=ids)
    final = ctx.final.reindex(ids)
    out["final_output"] = final["output"].to_numpy() if "output" in final else None
    _knowledge(ctx, out)
    out["output_is_base_alt"] = [same_answer(o, a) for o, a in zip(out["final_output"], out["base_alt"])]
    _siblings(ctx, out)
    _forgetting(ctx, out)
    _optimisation(ctx, out)
    _probes(ctx, out)
    out["js_final"] = final["js_base"].astype(float).to_numpy() if "js_base" in final else np.nan
    ctx.info["signals"] = out
    return out
