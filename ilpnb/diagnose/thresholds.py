"""Every threshold of the diagnosis, in one place, each with the reason it sits where it does.

None of them was fitted to a world: each is a point with a meaning (chance, a majority, a
share of the gradient), stated once and read by :mod:`ilpnb.diagnose.features` and
:mod:`ilpnb.diagnose.detectors`.
"""

from __future__ import annotations

__all__ = [
    "MC_KNOWN",
    "MC_CHANCE_BAND",
    "SAMPLED_KNOWN",
    "BELIEF_SHARE",
    "SIBLING_SIM",
    "PATTERN_SIM",
    "RARE_SHARE",
    "RARE_MIN_COUNT",
    "FALLING_SLOPE",
    "FORM_WORD_SHARE",
    "FORM_WORD_MIN",
    "RESTYLED_SHARE",
    "ATTRIBUTE",
    "EVIDENCE_FLOOR",
]

#: Knowledge above chance on the multiple-choice test, rescaled so 0 = chance and 1 = certain:
#: half-way between chance and certainty means the base model prefers the gold answer to
#: every distractor more often than not.
MC_KNOWN = 0.5
#: Within this rescaled distance of chance the base model is guessing among the options.
MC_CHANCE_BAND = 0.25
#: Share of the base model's own answers (greedy + samples) that must be right for the sample
#: to count as known from generation: a majority.
SAMPLED_KNOWN = 0.5
#: A belief is an other answer the base model gives in at least this share of its answers:
#: at temperature 1 a guess spreads, a belief (p > 0.8) stays.
BELIEF_SHARE = 0.8
#: Meaning similarity (lexical + the base model's hidden states) at which two prompts ask the
#: same question (the default of :data:`ilpnb.diagnose.embedding.MEANING_THRESHOLD`).
SIBLING_SIM = 0.8
#: Similarity of two whole examples (prompt + response, mean-pooled hidden states) at which
#: they share a pattern (a template, an answer format).
PATTERN_SIM = 0.8
#: A pattern held by at most this share of the set gets at most this share of every epoch's
#: gradient: 2%, i.e. a handful of samples in a few hundred.
RARE_SHARE = 0.02
#: ... and never fewer than this many samples count as "a handful".
RARE_MIN_COUNT = 3
#: Loss change per evaluation point, relative to the loss, below which the loss still falls
#: (-2% per point: the convergence rule's relative tolerance, so a stage may converge overall
#: while single samples still improve).
FALLING_SLOPE = -0.02
#: A word belongs to the *form* of answers (:mod:`ilpnb.diagnose.forms`) when at least this
#: share of the SFT set's answers use it: phrasing recurs across many answers, a value (a
#: name, a colour) across a few ...
FORM_WORD_SHARE = 0.05
#: ... and at least this many answers: in a set of a few dozen answers 5% is two or three,
#: which one value repeated by chance reaches; eight is a pattern, not a coincidence.
FORM_WORD_MIN = 8
#: A forgotten sample was retrained against when more than this share of the samples trained
#: after it that ask in its prompt form answer in another form: a majority of the later
#: training of that kind of question taught another kind of answer.
RESTYLED_SHARE = 0.5
#: A cause is attributed when its detector scores at least this: more likely than not.
ATTRIBUTE = 0.5
#: Detectors below this are not listed in an unattributed sample's evidence.
EVIDENCE_FLOOR = 0.3
