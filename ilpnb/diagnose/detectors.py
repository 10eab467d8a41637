"""The five cause detectors, one small class each, listed in :data:`DEFAULT_DETECTORS`.

Each turns the shared signals (:func:`ilpnb.diagnose.features.signals`) into a score in
[0, 1] and a one-line evidence string. Scores are smooth steps around the points of
:mod:`ilpnb.diagnose.thresholds` (chance, a majority, a share of the gradient), not fitted
to any world. Where two causes could explain a sample, the more specific evidence scores
higher: contradicting near-duplicates in the data (data conflict) and an answer lost after
the last training step to the form of later-trained ones (forgetting) outrank a belief of the
base model (pretraining conflict), which outranks the generic "the base model does not know
it" (missing knowledge); a rare form of the prompt or the answer is more specific than that too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ilpnb.diagnose.base import Detector, DetectorResult, DiagnosisContext, squash
from ilpnb.diagnose.features import signals
from ilpnb.diagnose.thresholds import BELIEF_SHARE, FALLING_SLOPE, MC_CHANCE_BAND, MC_KNOWN, SIBLING_SIM

__all__ = [
    "MissingKnowledge",
    "PretrainConflict",
    "DataConflict",
    "LeftForgetting",
    "RarePattern",
    "DEFAULT_DETECTORS",
    "DETECTORS",
]

#: The knowledge level half-way between guessing and knowing (see thresholds.py).
_KNOW_CENTRE = (MC_CHANCE_BAND + MC_KNOWN) / 2


def _fmt(x: float) -> str:
    return "n/a" if x is None or (isinstance(x, float) and np.isnan(x)) else f"{x:.2f}"


def _known(s: pd.DataFrame) -> np.ndarray:
    """Soft "the base model knows the gold answer" in [0, 1]."""
    return squash(s["knowledge"].fillna(0.0), _KNOW_CENTRE, 0.05)


def _believes(s: pd.DataFrame) -> np.ndarray:
    """Soft "the base model holds another answer as a belief" in [0, 1]."""
    soft = squash(s["base_alt_share"], BELIEF_SHARE - 0.1, 0.04) * s["belief"].astype(float)
    return np.maximum(soft, 0.9 * s["ap_belief"].astype(float))


def _knowledge_text(s: pd.DataFrame) -> list[str]:
    return [f"base model: {c} (right in {g:.0%} of its answers"
            + (f", multiple choice {_fmt(m)} above chance" if not np.isnan(m) else "") + ")"
            for c, g, m in zip(s["category"], s["gold_share"], s["mc_knowledge"])]


class MissingKnowledge(Detector):
    """The base model lacks the prerequisite knowledge."""

    name = "missing_knowledge"
    description = ("The base model does not know the answer — its own answers are wrong and it is at chance on "
                   "the options — and has no consistent other answer either (it guesses); SFT must teach a new fact.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        unknown = 1.0 - _known(s)
        guess = 1.0 - _believes(s)
        score = 0.85 * unknown * guess
        score = np.where(s["probe_blind"], np.maximum(score, 0.9 * unknown), score)
        score = np.where(s["probe_known"] & ~s["probe_blind"], score * 0.4, score)
        ev = [k + (f"; its other answers spread (top '{a}' in {sh:.0%})" if a else "")
              + ("; a knowledge probe on the fact fails" if pb else "")
              for k, a, sh, pb in zip(_knowledge_text(s), s["base_alt"], s["base_alt_share"], s["probe_blind"])]
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


class PretrainConflict(Detector):
    """The SFT answer contradicts what the base model consistently believes."""

    name = "pretrain_conflict"
    description = ("The base model consistently gives another answer (a belief, not a guess or a default), "
                   "confirmed in other framings; the fine-tuned model keeps it or drifts back to it.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        against = 1.0 - _known(s)
        keeps = 0.85 + 0.1 * s["output_is_base_alt"].astype(float)
        score = 0.95 * _believes(s) * against * keeps
        score = np.where(s["probe_blind"] & ~s["ap_belief"], score * 0.3, score)
        ev = [(f"base model believes '{a}' ({sh:.0%} of its answers)" if a else "base model has no other answer")
              + ("; confirmed in other framings" if ap else "")
              + ("; the fine-tuned model still answers it" if k else "")
              + f"; gold known {_fmt(kn)}"
              for a, sh, ap, k, kn in zip(s["base_alt"], s["base_alt_share"], s["ap_belief"],
                                          s["output_is_base_alt"], s["knowledge"])]
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


class DataConflict(Detector):
    """Near-duplicate prompts in the SFT set carry different answers."""

    name = "data_conflict"
    description = ("Prompts that ask the same thing (meaning similarity from the base model's hidden states and "
                   "the wording) carry different responses; the model outputs a sibling's answer.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        score = np.where(s["n_conflicting"] > 0, 0.97 * squash(s["sibling_sim"], SIBLING_SIM - 0.02, 0.01), 0.0)
        ev = []
        for i, sim, o, nc in zip(ctx.ids, s["sibling_sim"], s["output_is_sibling"], s["n_consistent"]):
            sibs = ctx.siblings.get(i, [])
            if not sibs:
                ev.append("no near-duplicate prompt with a different answer"
                          + (f" ({nc} with the same answer)" if nc else ""))
                continue
            sid = sibs[0][0]
            ev.append(f"{len(sibs)} near-duplicate prompt(s) with different answers, e.g. {sid} "
                      f"('{str(ctx.records.at[sid, 'response'])[:40]}', similarity {_fmt(sim)})"
                      + ("; the model outputs a sibling's answer" if o else ""))
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


class LeftForgetting(Detector):
    """Reproduced after its last training step, lost later, its answer in a later one's form."""

    name = "left_forgetting"
    description = ("Reproduced at an evaluation after the last step that trained it, and lost by the end: later "
                   "updates on other samples (its likely interferers) overwrote it — its final answer took "
                   "the form of theirs, or most later samples asking its kind of question answer in another form.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        # a belief the model drifted back to is a pretraining conflict, not forgetting
        drift = _believes(s) * s["output_is_base_alt"].astype(float)
        # interference leaves a trace: the answer took the form of a later-trained similar
        # one; a sample that kept its form and lost its content drifted with everything else
        # in later training — forgetting without a cause to name, evidence below attribution.
        # The trace is evidence enough that the model had the sample and lost it to others,
        # whatever the base model knew; without it, only a sample the base model knew counts
        taken = s["takes_later_form"].astype(bool).to_numpy()
        # the data-side trace: most later training of its kind of question (its prompt form)
        # taught another kind of answer — the interference is in the schedule even where the
        # final answer shows no later form (it may have lost both)
        restyled = s["restyled"].astype(bool).to_numpy()
        weight = np.where(taken, 0.93, np.where(restyled, 0.9, 0.45 * _known(s)))
        score = weight * s["forgotten"].astype(float).to_numpy() * (1.0 - drift)
        interf = ctx.info.get("interferers", {})
        ev = []
        for i, f, lt, ll, lost, tk, rn, rm in zip(ctx.ids, s["forgotten"], s["last_trained_step"],
                                                  s["last_learned_step"], s["steps_lost"], taken,
                                                  s["later_restyled"], s["later_same_prompt"]):
            if not f:
                ev.append(f"not reproduced after its last training step (step {lt})")
                continue
            near = ", ".join(f"{j} ({v:.2f})" for j, v in interf.get(i, []))
            ev.append(f"last trained at step {lt}, still reproduced at step {ll}, lost {lost} steps before the end"
                      + (f"; likely interferers: {near}" if near else "")
                      + (f"; {rn} of the {rm} samples trained later that ask in its form answer in another form"
                         if rm else "")
                      + ("; its final answer took the form of a later-trained answer" if tk
                         else "; its final answer kept its own form (content lost, no interferer's form)"))
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


class RarePattern(Detector):
    """A rare or complex pattern that training had not finished optimising."""

    name = "rare_pattern"
    description = ("Few samples share the form of its answer or of its prompt (little of each epoch's "
                   "gradient), or the base model knows the answer and its loss is still falling at the end.")

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:
        s = signals(ctx)
        known = _known(s)
        falling = squash(-s["rel_slope"], -FALLING_SLOPE, 0.01)
        rare = s["rare"].astype(float).to_numpy()
        # a rare form is more specific than "the base model does not know it" (a rare phrasing
        # or answer shape is also one the base model answers badly), so it outranks missing
        # knowledge (0.85) whatever the knowledge; a loss still falling counts where the base
        # model knows the answer
        score = 0.88 * rare + 0.6 * falling * known * (1.0 - rare)
        ev = [f"{a} answer(s) share its answer's form, {p} its prompt's" + (" (rare)" if r else "")
              + f"; {c} close in embedding"
              + f"; loss slope {rs:+.1%} per point at the end; final token accuracy {_fmt(ta)}; gold known {_fmt(k)}"
              for a, p, c, r, rs, ta, k in zip(s["answer_form_count"], s["prompt_form_count"], s["pattern_count"],
                                               s["rare"], s["rel_slope"], s["final_token_acc"], s["knowledge"])]
        return DetectorResult(pd.Series(score, index=ctx.ids), pd.Series(ev, index=ctx.ids))


#: One detector per cause, in the order of :data:`ilpnb.causes.CAUSES`: the explicit list
#: :data:`ilpnb.diagnose.base.REGISTRY` loads (importing this module registers nothing).
DEFAULT_DETECTORS: tuple[type[Detector], ...] = (MissingKnowledge, PretrainConflict, DataConflict, LeftForgetting,
                                                 RarePattern)
#: The former name of :data:`DEFAULT_DETECTORS`.
DETECTORS = DEFAULT_DETECTORS
