"""How a generated answer compares with the gold one, and which wrong answer a model prefers.

Answers and gold responses are normalised (:func:`normalize_answer`: Unicode compatibility
form, accents and case folded, punctuation to spaces, whitespace squeezed). An answer is
*exact* when its first sentence/line (:func:`answer_head`), or its whole text, equals the gold
response; it *contains* the gold when the normalised gold appears as whole words inside it.
:func:`preferred_other` finds the most frequent wrong answer of a set of answers, by head or,
given the prompt, by content (:func:`other_answer_matcher`: a chat model words one answer as
many sentences). Model-free: :mod:`ilpnb.probe.sampling` generates the answers.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, Literal

__all__ = ["Match", "normalize_answer", "answer_head", "answer_matches", "other_answer_matcher", "preferred_other"]

#: ``"contains"``: a correct answer may say more than the gold; ``"exact"``: it must be the gold.
Match = Literal["contains", "exact"]

_SENTENCE_END = re.compile(r"(?<=[.!?])\s")
_PUNCT = re.compile(r"[^\w\s]|_")
_SPACES = re.compile(r"\s+")


def normalize_answer(text: str) -> str:
    """Normalise an answer for comparison: NFKC, accents and case folded, punctuation to
    spaces, whitespace squeezed (letters of any script are kept)."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return _SPACES.sub(" ", _PUNCT.sub(" ", text)).strip()


def answer_head(text: str) -> str:
    """The answer part of a generated text: up to the first line break, then up to the end
    of the first sentence (``.``, ``!`` or ``?`` followed by a space), stripped."""
    text = text.strip()
    line = text.split("\n", 1)[0]
    return _SENTENCE_END.split(line, 1)[0].strip()


def answer_matches(output: str, gold: str) -> tuple[bool, bool]:
    """Whether a generated answer matches the gold one: ``(exact, contains)``.

    ``exact``: the normalised answer head (or the whole normalised output) equals the
    normalised gold. ``contains``: exact, or the normalised gold occurs as whole words in the
    normalised output. An empty gold matches nothing.
    """
    g = normalize_answer(gold)
    if not g:
        return False, False
    full = normalize_answer(output)
    exact = g in (normalize_answer(answer_head(output)), full)
    return exact, exact or f" {g} " in f" {full} "


def _wrong_answers(answers: Sequence[str], gold: str, match: Match) -> Iterator[str]:
    """The answers that do not match the gold (by ``match``), in order."""
    for text in answers:
        exact, contains = answer_matches(text, gold)
        if not (exact or (match == "contains" and contains)):
            yield text


def _content_words(text: str, frame: frozenset[str]) -> list[str]:
    """The words of an answer head that are not the question's, the gold's or function words."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    return [w for w in normalize_answer(answer_head(text)).split()
            if len(w) > 1 and w not in frame and w not in ENGLISH_STOP_WORDS]


def other_answer_matcher(answers: Sequence[str], gold: str, prompt: str, match: Match = "contains"
                         ) -> tuple[str | None, int, Any]:
    """The wrong answer the answers agree on *by content*, for models that answer in sentences.

    A chat model says "The capital city of Chile is Santiago." once and "Santiago is the
    capital of Chile." the next time: two different heads, one answer. Each wrong answer is
    reduced to its content words — the words of its head that are neither in the question,
    nor in the gold response, nor function words — and the preferred other answer is the
    content word most wrong answers hold (ties: the first seen; answers[0] is the greedy one).

    Returns:
        ``(surface, count, gives)``: the head of the first answer holding that word, how many
        answers hold it, and a function telling whether a text gives that answer; ``(None, 0,
        never)`` when no wrong answer has a content word.
    """
    frame = frozenset(normalize_answer(prompt).split()) | frozenset(normalize_answer(gold).split())
    df: Counter[str] = Counter()
    first: dict[str, str] = {}
    for text in _wrong_answers(answers, gold, match):
        words = _content_words(text, frame)
        for w in dict.fromkeys(words):
            df[w] += 1
            first.setdefault(w, answer_head(text))
    if not df:
        return None, 0, lambda text: False
    best = max(df.values())
    word = next(w for w in first if df[w] == best)
    return first[word], best, lambda text: word in _content_words(text, frame)


def preferred_other(answers: Sequence[str], gold: str, match: Match = "contains",
                    prompt: str | None = None) -> tuple[str | None, int]:
    """The most frequent wrong answer among ``answers`` and how many answers give it.

    Answers are compared by normalised head; those matching the gold (by ``match``) and
    empty ones are not candidates. Ties go to the answer seen first (answers[0] is the
    greedy one). Returns the surface form of its first occurrence, or ``(None, 0)``. With
    the ``prompt``, answers are compared by content instead (:func:`other_answer_matcher`).
    """
    if prompt is not None:
        surface, count, _ = other_answer_matcher(answers, gold, prompt, match)
        return surface, count
    counts: Counter[str] = Counter()
    surface: dict[str, str] = {}
    for text in _wrong_answers(answers, gold, match):
        head = answer_head(text)
        key = normalize_answer(head)
        if not key:
            continue
        counts[key] += 1
        surface.setdefault(key, head)
    if not counts:
        return None, 0
    best = max(counts.values())
    key = next(k for k in surface if counts[k] == best)  # dicts keep first-seen order
    return surface[key], best
