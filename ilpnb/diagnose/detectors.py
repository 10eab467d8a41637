"""The five cause detectors, one small registered class each.

Each turns the shared signals (:func:`ilpnb.diagnose.features.signals`) into a score in
[0, 1] and a one-line evidence string. Scores are built from smooth steps around
interpretable points (a probability of 0.5, a similarity of 0.75, a response twice the
median length), not fitted to any world, so they carry over to other data. Where two causes
could both explain a sample, the more specific evidence scores higher: contradicting
near-duplicates in the data (data conflict) and a confident contrary base answer
(pretraining conflict) outrank the generic "the base model did not know it".
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ilpnb.diagnose.base import Detector, DetectorResult, DiagnosisContext, register, squash
from ilpnb.diagnose.features import signals

__all__ = [
    "MissingKnowledge",
    "PretrainConflict",
    "DataConflict",
    "LeftForgetting",
    "RarePattern",
]


def _fmt(x: float) -> str:
    return f"{x:.2f}"


@register
class MissingKnowledge(Detector):
    """The base model lacks the prerequisite knowledge."""

    name = "missing_knowledge"
    description = ("The base model does not know the answer and has no confident alternative either "
                   "(low gold probability at step 0, failed knowledge probes); SFT must teach a new fact.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        unknown = 1.0 - squash(s["base_gold_p"], 0.5, 0.08)
        # without probes, a base model that prefers another answer this strongly is taken to know it
        no_alt = 1.0 - squash(s["base_alt_p"], 0.9, 0.03)
        short = 1.0 - squash(s["len_ratio"], 1.8, 0.25)
        kept = 1.0 - s["ever_learned"].astype(float) * 0.7
        score = 0.85 * unknown * no_alt * short * kept
        # a failed probe on the fact itself is direct evidence: the base model's preferred answer is a guess
        score = np.where(s["probe_blind"], np.maximum(score, 0.9 * unknown * short * kept), score)
        score = np.where(s["probe_known"] & ~s["probe_blind"], score * 0.4, score)
        ev = [f"base model gives the gold answer p={_fmt(g)}"
              + (f", prefers '{a}' only weakly (p={_fmt(ap)})" if a else "")
              + ("; probe on the fact fails on the base model" if pb else "")
              + ("; probe on the fact succeeds" if pk and not pb else "")
              for g, a, ap, pb, pk in zip(s["base_gold_p"], s["base_alt"], s["base_alt_p"], s["probe_blind"], s["probe_known"])]
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


@register
class PretrainConflict(Detector):
    """The SFT answer contradicts what the base model confidently knows."""

    name = "pretrain_conflict"
    description = ("The base model is confident in a different answer; the fine-tuned model keeps it or "
                   "drifts back to it; high divergence between base and fine-tuned predictions.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        confident_alt = squash(s["base_alt_p"], 0.9, 0.03)
        against = 1.0 - squash(s["base_gold_p"], 0.4, 0.08)
        keeps = 0.8 + 0.2 * s["output_is_base_alt"].astype(float)
        score = 0.95 * confident_alt * against * keeps
        # a probe that recalls the base model's answer confirms it is knowledge; a probe that
        # fails on the gold fact says the preference is a guess, not a conflicting belief
        score = np.where(s["probe_alt"], np.maximum(score, 0.95 * against), score)
        score = np.where(s["probe_blind"] & ~s["probe_alt"], score * 0.3, score)
        ev = [(f"base model prefers '{a}' (p={_fmt(ap)}) over the gold answer (p={_fmt(g)})" if a else
               f"base model does not prefer another answer (gold p={_fmt(g)})")
              + ("; the fine-tuned model still answers it" if k else "")
              + ("; a knowledge probe confirms the base model's answer" if pa else "")
              + f"; JS(base, final)={_fmt(js)}"
              for a, ap, g, k, pa, js in zip(s["base_alt"], s["base_alt_p"], s["base_gold_p"],
                                             s["output_is_base_alt"], s["probe_alt"], s["js_final"])]
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


@register
class DataConflict(Detector):
    """Near-duplicate prompts in the SFT set carry different answers."""

    name = "data_conflict"
    description = ("Near-duplicate prompts in the SFT set (TF-IDF similarity of normalised text) with "
                   "different responses; the model outputs a sibling's answer.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        score = 0.97 * squash(s["sibling_sim"], 0.75, 0.03)
        score = np.where(s["sibling_sim"] > 0, score, 0.0)
        ev = []
        for i, sim, o in zip(ctx.ids, s["sibling_sim"], s["output_is_sibling"]):
            sibs = ctx.siblings.get(i, [])
            if not sibs:
                ev.append("no near-duplicate prompt with a different answer")
                continue
            sid = sibs[0][0]
            ev.append(f"{len(sibs)} near-duplicate prompt(s) with different answers, e.g. {sid} "
                      f"('{ctx.records.at[sid, 'response'][:40]}', similarity {_fmt(sim)})"
                      + ("; the model outputs a sibling's answer" if o else ""))
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


@register
class LeftForgetting(Detector):
    """Learned earlier in fine-tuning, lost later."""

    name = "left_forgetting"
    description = ("Learned at an earlier evaluation point (or at the end of an earlier stage) and lost "
                   "later; trained early in the data order.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        lost = s["ever_learned"].astype(float)
        strong = np.maximum(s["stage_end_learned"].astype(float), 0.75 * s["base_learned"].astype(float))
        early = 0.75 + 0.25 * s["first_stage"].astype(float)
        score = lost * np.maximum(0.7, strong) * early
        flags = ctx.info["learned_flags"]
        steps = ctx.info["steps"]
        ev = []
        for i, was, se in zip(ctx.ids, s["ever_learned"], s["stage_end_learned"]):
            f = flags[i]
            if not was:
                ev.append("never learned before the end")
                continue
            last_ok = int(np.nonzero(f[:-1])[0].max())
            ev.append(f"learned at step {steps[last_ok]}" + (" (end of an earlier stage)" if se else "")
                      + f", lost by step {steps[-1]}; stage {int(ctx.records.at[i, 'stage'])}")
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


@register
class RarePattern(Detector):
    """A rare or long composite pattern that training had not finished optimising."""

    name = "rare_pattern"
    description = ("A long, composite response or rare template: loss still falling when training stopped, "
                   "partly right (high token accuracy) but not reproduced exactly.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        long = squash(s["len_ratio"], 1.8, 0.25)
        improving = squash(-s["slope"], 0.0, 0.02)
        partial = squash(s["final_token_acc"], 0.5, 0.1)
        score = 0.9 * long * (0.6 + 0.2 * improving + 0.2 * partial)
        ev = [f"response {r:.1f}x the median length; loss slope {sl:+.3f} per point at the end; "
              f"final token accuracy {_fmt(ta)}"
              for r, sl, ta in zip(s["len_ratio"], s["slope"], s["final_token_acc"])]
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))
