"""The surface of SFT records, read generically: words, entities, normalised prompts and
answers, template keys and nearest-prompt Jaccard similarity.

Shared by the model-free rule baselines (:mod:`ilpnb.diagnose.baselines`) and the surface
classifiers (:mod:`ilpnb.diagnose.classifiers`). No list of any generator's templates or
filler phrases is used: an entity is a word written capitalised other than at a sentence
start, or failing that a prompt's rarest words.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from scipy import sparse
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

__all__ = ["entity_words", "normalise_prompt"]

_WORD = re.compile(r"\w+", re.UNICODE)
_STOP = frozenset(ENGLISH_STOP_WORDS)
_SENTENCE_END = (".", "!", "?", ":", ";", "\n")


def _tokens(text: str) -> list[str]:
    return [t.lower() for t in _WORD.findall(text)]


def _content(text: str) -> set[str]:
    words = set(_tokens(text))
    return (words - _STOP) or words


def _proper_nouns(texts: Iterable[str]) -> set[str]:
    """Lower-cased words written capitalised somewhere other than at a sentence start."""
    out: set[str] = set()
    for text in texts:
        for m in _WORD.finditer(text):
            word = m.group()
            if not word[0].isupper():
                continue
            before = text[: m.start()].rstrip()
            if before and not before.endswith(_SENTENCE_END) and word.lower() not in _STOP:
                out.add(word.lower())
    return out


def entity_words(records: pd.DataFrame) -> pd.Series:
    """The entity of each prompt: its proper nouns, or failing that its rarest content words.

    A proper noun is a word written capitalised somewhere in the file (prompts, responses or
    options) other than at the start of a sentence; so a lower-cased copy of a prompt still
    finds its name. A prompt without one keeps its content words of the lowest document
    frequency among the prompts, when that frequency is at most 3.

    Args:
        records: The ``records`` of a :class:`WorldFolder`.

    Returns:
        ``id`` -> frozenset of lower-cased entity words (possibly empty).
    """
    texts = list(records["prompt"]) + list(records["response"]) + [o for opts in records["options"] for o in opts]
    proper = _proper_nouns(texts)
    prompt_words = [set(_tokens(p)) for p in records["prompt"]]
    df = Counter(w for words in prompt_words for w in words)
    out = []
    for words in prompt_words:
        names = words & proper
        if not names:
            content = [w for w in words - _STOP if not w.isdigit()]
            low = min((df[w] for w in content), default=0)
            names = {w for w in content if df[w] == low} if content and low <= 3 else set()
        out.append(frozenset(names))
    return pd.Series(out, index=records.index, name="entity")


def normalise_prompt(prompt: str) -> str:
    """Generic normalisation: lower case, punctuation and English stop words removed, sorted."""
    return " ".join(sorted(w for w in _tokens(prompt) if w not in _STOP))


def _norm_answer(text: str) -> str:
    return " ".join(_tokens(text))


def _template_keys(records: pd.DataFrame, entities: pd.Series) -> pd.Series:
    keys = [" ".join("<e>" if w in ent else w for w in _tokens(p))
            for p, ent in zip(records["prompt"], entities)]
    return pd.Series(keys, index=records.index, name="template")


def _max_jaccard(records: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """Per prompt: the highest word-set Jaccard similarity to another prompt, overall and among
    prompts with a different (normalised) response."""
    sets = [set(normalise_prompt(p).split()) for p in records["prompt"]]
    vocab: dict[str, int] = {}
    rows, cols = [], []
    for i, words in enumerate(sets):
        for w in words:
            rows.append(i)
            cols.append(vocab.setdefault(w, len(vocab)))
    n = len(sets)
    best_any = np.zeros(n)
    best_diff = np.zeros(n)
    if not vocab or n < 2:
        return best_any, best_diff
    x = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, len(vocab)))
    inter = (x @ x.T).tocoo()
    keep = inter.row != inter.col
    r, c, v = inter.row[keep], inter.col[keep], inter.data[keep]
    size = np.asarray(x.sum(axis=1)).ravel()
    jac = v / (size[r] + size[c] - v)
    resp = pd.factorize(records["response"].map(_norm_answer))[0]
    np.maximum.at(best_any, r, jac)
    diff = resp[r] != resp[c]
    np.maximum.at(best_diff, r[diff], jac[diff])
    return best_any, best_diff
