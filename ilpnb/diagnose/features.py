"""Per-sample signals shared by the detectors, computed once from a diagnosis context.

Each signal is something a user of a real model can observe: how likely the base model
(step 0) finds the gold answer, whether it prefers another answer and how strongly, whether
the sample was learned at some point and lost, how long its response is, whether its loss
was still falling when training stopped, what the model outputs at the end, and what the
knowledge probes about the sample's entities say.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ilpnb.diagnose.base import DiagnosisContext
from ilpnb.diagnose.similarity import normalize_text

__all__ = ["signals"]


def _same(a: object, b: object) -> bool:
    return isinstance(a, str) and isinstance(b, str) and normalize_text(a) == normalize_text(b) != ""


def signals(ctx: DiagnosisContext) -> pd.DataFrame:
    """A table of signals indexed by sample id (cached in ``ctx.info['signals']``).

    Columns: ``base_gold_p`` (base probability of the gold answer: among the options when
    there are some, else of its first token), ``base_alt`` / ``base_alt_p`` (the base's
    preferred other answer and its probability, 0 when it prefers the gold one),
    ``base_learned``, ``ever_learned`` (learned at some point before the last),
    ``stage_end_learned`` (learned at the end of an earlier stage), ``first_stage``
    (trained before the last stage), ``len_ratio`` (response tokens / median), ``slope``
    (loss change per point at the end), ``final_token_acc``, ``final_output``,
    ``output_is_base_alt``, ``output_is_sibling``, ``sibling_sim`` (best near-duplicate
    similarity, 0 if none), ``js_final``, ``probe_blind`` (a probe stating the gold answer
    fails on the base), ``probe_known`` (it succeeds), ``probe_alt`` (a probe about the
    sample's entity confidently gives a different answer that the base also prefers here).
    """
    if "signals" in ctx.info:
        return ctx.info["signals"]
    ids = ctx.ids
    base, final, samples = ctx.base.reindex(ids), ctx.final.reindex(ids), ctx.samples.reindex(ids)
    gold = ctx.records["response"]
    if "mc_p_gold" in base and base["mc_p_gold"].notna().any():
        base_gold_p = base["mc_p_gold"].fillna(base["gold_first_p"])
    else:
        base_gold_p = base["gold_first_p"]
    alt = base.get("base_top_answer", pd.Series(index=ids, dtype=object))
    alt_p = base.get("base_top_p", pd.Series(0.0, index=ids)).astype(float)
    is_gold = pd.Series([_same(a, g) for a, g in zip(alt, gold)], index=ids)
    out = pd.DataFrame(index=ids)
    out["base_gold_p"] = base_gold_p.astype(float).to_numpy()
    out["base_alt"] = [a if isinstance(a, str) and not g else None for a, g in zip(alt, is_gold)]
    out["base_alt_p"] = np.where(is_gold, 0.0, alt_p.fillna(0.0))
    out["base_learned"] = samples["learned_base"].astype(bool)
    flags = ctx.info["learned_flags"]  # id -> bool array over points
    out["ever_learned"] = [bool(flags[i][:-1].any()) for i in ids]
    out["stage_end_learned"] = samples["max_stage_learned"].astype(bool)
    last_stage = ctx.records["stage"].max()
    out["first_stage"] = (ctx.records["stage"] < last_stage).to_numpy()
    n_tok = base["n_tokens"].astype(float)
    out["len_ratio"] = (n_tok / max(float(np.median(n_tok)), 1.0)).to_numpy()
    out["slope"] = samples["loss_slope"].astype(float).to_numpy()
    out["final_token_acc"] = final["token_acc"].astype(float).to_numpy()
    out["final_output"] = final.get("output", pd.Series(index=ids, dtype=object)).to_numpy()
    out["output_is_base_alt"] = [_same(o, a) for o, a in zip(out["final_output"], out["base_alt"])]
    sib_resp = {i: [ctx.records.at[s, "response"] for s, _ in ctx.siblings.get(i, [])] for i in ids}
    out["output_is_sibling"] = [any(_same(o, r) for r in sib_resp[i]) for i, o in zip(ids, out["final_output"])]
    out["sibling_sim"] = [max((s for _, s in ctx.siblings.get(i, [])), default=0.0) for i in ids]
    out["js_final"] = final["js_base"].astype(float).to_numpy()
    blind, known, palt = [], [], []
    for i, g, a in zip(ids, gold, out["base_alt"]):
        ps = ctx.probes.get(i, [])
        match = [p for p in ps if _same(p["answer"], g) or _contains(g, p["answer"])]
        blind.append(any(p["blind"] for p in match))
        known.append(any(not p["blind"] for p in match))
        palt.append(any((not p["blind"]) and _same(p["answer"], a) for p in ps) if a else False)
    out["probe_blind"], out["probe_known"], out["probe_alt"] = blind, known, palt
    ctx.info["signals"] = out
    return out


def _contains(text: str, word: str) -> bool:
    """Whether ``word`` occurs in ``text`` as a whole word (case-insensitive)."""
    return bool(word) and re.search(rf"\b{re.escape(word.lower())}\b", text.lower()) is not None
