"""Near-duplicate prompts with different responses: the evidence of data conflicts.

Prompts are normalised (case, accents, punctuation, spacing — no list of phrases) and compared with
TF-IDF cosine similarity over word unigrams and bigrams plus character 3–5-grams, which
works on real text as well as on the world's. Rare words (names, entities) weigh most, so
two questions about the same entity in nearly the same words score high, while two
questions of one template about different entities do not. Pairs at or above the threshold
whose normalised responses differ are siblings.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pandas as pd
from scipy.sparse import hstack
from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["normalize_text", "similarity_matrix", "find_siblings"]

def normalize_text(text: str) -> str:
    """Lower-case, strip accents and punctuation, squeeze spaces."""
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    text = re.sub(r"[^\w\s]", " ", text.lower())
    return re.sub(r"\s+", " ", text).strip()


def similarity_matrix(texts: list[str]) -> np.ndarray:
    """Cosine similarity of normalised texts (dense, n x n; fine up to tens of thousands)."""
    norm = [normalize_text(t) or "_" for t in texts]
    words = TfidfVectorizer(analyzer="word", ngram_range=(1, 2), sublinear_tf=True, token_pattern=r"\b\w+\b").fit_transform(norm)
    chars = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(norm)
    both = hstack([words, chars]).tocsr()
    norms = np.sqrt(both.multiply(both).sum(axis=1)).A.ravel()
    norms[norms == 0] = 1.0
    sim = (both @ both.T).toarray() / np.outer(norms, norms)
    np.fill_diagonal(sim, 0.0)
    return sim


def find_siblings(records: pd.DataFrame, threshold: float = 0.8) -> dict[str, list[tuple[str, float]]]:
    """Near-duplicate prompts with a different response, per sample id.

    Args:
        records: rows with ``prompt`` and ``response``, indexed by id.
        threshold: cosine similarity at or above which two prompts are near-duplicates.

    Returns:
        id -> list of (sibling id, similarity), most similar first (empty list if none).
    """
    ids = list(records.index)
    sim = similarity_matrix(records["prompt"].tolist())
    resp = [normalize_text(r) for r in records["response"]]
    out: dict[str, list[tuple[str, float]]] = {i: [] for i in ids}
    rows, cols = np.nonzero(sim >= threshold)
    for a, b in zip(rows, cols):
        if resp[a] != resp[b]:
            out[ids[a]].append((ids[b], float(sim[a, b])))
    for sid in out:
        out[sid].sort(key=lambda x: -x[1])
    return out
