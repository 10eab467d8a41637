"""Near-duplicates by meaning: prompt similarity from the base model's own hidden states.

:func:`ilpnb.diagnose.similarity.similarity_matrix` (TF-IDF over words and character
n-grams) finds near-duplicates written in nearly the same words; a paraphrase that reorders
the question or swaps in synonyms scores lower, and two different questions about the same
entity in nearly the same words ("In which city does X live?" / "In which country does X
live?") score high. Here each prompt is also embedded by the model being fine-tuned:

* **Which position.** By default (``pooling="answer"``) the prompt is encoded exactly as
  training encodes it (:func:`ilpnb.train.format.encode_pair`) and the hidden state at its
  last token — the position where the model has to produce the answer — is the embedding.
  A causal LM has gathered there what it needs to answer: the entity *and* what is asked
  about it. ``pooling="mean"`` (the mean over the prompt's own tokens of the plain text,
  special tokens left out) is kept as an option; measured on the default world's base model
  it is dominated by the template words, so template-mates about different entities come out
  near-identical (median 0.92 after standardising) and true paraphrases unrelated (median
  0.0), whereas the answer position gives paraphrases a median of 0.97 and template-mates 0.32.
  (Last-token pooling is also the standard for decoder-LM embedders.)
* **Which layer.** The middle (:data:`EMBEDDING_LAYER_FRACTION` of the depth, rounded down):
  the last layer is specialised to predicting the next token (it encodes the form of the
  answer more than the question), the first layers are close to the token embeddings and add
  little beyond the lexical similarity, and middle layers carry the most general features of
  the input (layer-wise probing studies of LLMs agree; on the default world's 3-layer model,
  layer 1 separates paraphrases best, the last layer worst).
* **Anisotropy.** Hidden states share a large common component (and a few huge dimensions),
  so raw cosines between any two prompts are high. The embeddings are centred on the set's
  mean and divided by each dimension's spread before the cosine
  (:func:`embedding_similarity`): an unrelated pair scores about 0, the same question about 1.
* **Same topic first.** A small model reads two questions of one template about entities it
  does not know alike (its state at the answer position does not depend on the unknown
  name), so the model's similarity only counts for :func:`anchored_pairs`: pairs whose most
  specific words (highest IDF in the set, typically the entity) are shared. Other pairs (other
  entities) score lexical x semantic: a shared long template alone no longer makes them
  near-duplicates.
* **One similarity.** :func:`meaning_similarity` is, for anchored pairs,
  ``LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * semantic``; lexical x semantic for
  the others; and 1 for prompts whose normalised text is identical. For an anchored pair the
  model can also veto: two different questions about one entity in nearly the same words
  score lower than TF-IDF says. On the default world's base model (1,042 distinct questions
  of its corpus, 542k pairs) the threshold :data:`MEANING_THRESHOLD` keeps 75% of the
  paraphrase pairs (same entity and relation, another template) with no false pair (0.75
  keeps 92% with 3), where TF-IDF alone at 0.8 keeps 22% and accepts 255 pairs that ask a
  different question about the same entity. On that world's SFT set every planted data
  conflict has a conflicting sibling and no other sample has one.

:func:`find_meaning_siblings` returns every near-duplicate with a flag saying whether its
answer is the same, so a detector can tell a conflict group (different answers) from a
consistent paraphrase group (same answer); :func:`sibling_answer_matches` says, per sample,
which sibling's answer a given output (e.g. the fine-tuned model's) reproduces.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import torch
from scipy.sparse import coo_matrix
from sklearn.feature_extraction.text import CountVectorizer
from transformers import PreTrainedTokenizerBase

from ilpnb.diagnose.similarity import normalize_text, similarity_matrix
from ilpnb.probe.answers import answer_matches, normalize_answer
from ilpnb.train.format import encode_pair

__all__ = [
    "EMBEDDING_LAYER_FRACTION",
    "LEXICAL_WEIGHT",
    "MEANING_THRESHOLD",
    "MIN_SET_FOR_STANDARDISING",
    "Pooling",
    "embedding_layer",
    "prompt_embeddings",
    "embedding_similarity",
    "anchored_pairs",
    "meaning_similarity",
    "find_meaning_siblings",
    "sibling_answer_matches",
]

#: Where the embedding layer sits, as a fraction of the model's depth (0 = token embeddings,
#: 1 = last layer), rounded down: the middle, where LLM hidden states are most general.
EMBEDDING_LAYER_FRACTION = 0.5

#: Weight of the lexical (TF-IDF) similarity in the combined one; the model's similarity gets
#: the rest. The model decides most (it reads paraphrases as one question and tells apart two
#: questions in nearly the same words); the lexical share keeps pairs that also share their
#: wording ahead of pairs the model merely reads alike (a small model confuses template-mates
#: about entities it does not know). 0.3 separated best on the default world (module docs).
LEXICAL_WEIGHT = 0.3

#: Combined similarity at or above which two prompts are near-duplicates by meaning; the same
#: value as the lexical detector's default, and on the default world the lowest with no false
#: pair among 542k (0.75 keeps 92% of paraphrases but admits 3 different-question pairs).
MEANING_THRESHOLD = 0.8

#: Below this many prompts the per-dimension mean and spread of a set are too noisy to
#: standardise with (two prompts would always come out opposite); the raw cosine is used.
MIN_SET_FOR_STANDARDISING = 8

Pooling = Literal["answer", "mean"]


def embedding_layer(model: torch.nn.Module) -> int:
    """Index into ``hidden_states`` of the embedding layer (0 = embeddings, L = last block):
    ``max(1, floor(EMBEDDING_LAYER_FRACTION * L))``."""
    cfg = getattr(model, "config", None)
    layers = getattr(cfg, "num_hidden_layers", None) or getattr(cfg, "n_layer", None)
    if not layers:
        raise ValueError("cannot tell the model's depth: its config has no num_hidden_layers / n_layer")
    return max(1, int(EMBEDDING_LAYER_FRACTION * layers))


def _token_rows(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], pooling: Pooling,
                max_length: int | None) -> list[tuple[list[int], list[float]]]:
    """Per text: token ids and pooling weights (answer: the last token; mean: own tokens)."""
    rows = []
    for t in texts:
        if pooling == "answer":
            ids = list(encode_pair(tokenizer, t, "x").prompt_ids)
            if max_length is not None:
                ids = ids[-max_length:]  # keep the answer position
            rows.append((ids, [0.0] * (len(ids) - 1) + [1.0]))
        elif pooling == "mean":
            enc = tokenizer(t, add_special_tokens=True, return_special_tokens_mask=True)
            ids = list(enc["input_ids"])[:max_length]
            w = [0.0 if x else 1.0 for x in list(enc["special_tokens_mask"])[:max_length]]
            rows.append((ids, w if sum(w) else [1.0] * len(ids)))  # nothing but specials: pool them all
        else:
            raise ValueError(f"pooling must be 'answer' or 'mean', got {pooling!r}")
    return rows


@torch.inference_mode()
def prompt_embeddings(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], *,
    layer: int | None = None, pooling: Pooling = "answer", batch_size: int = 32, max_length: int | None = None,
) -> np.ndarray:
    """Hidden states of each prompt at one layer, pooled (see the module docstring).

    Args:
        model: a causal LM (any that accepts ``output_hidden_states=True``).
        tokenizer: its tokenizer.
        texts: the prompts.
        layer: index into ``hidden_states`` (default :func:`embedding_layer`).
        pooling: ``"answer"`` (the last token of the prompt in the training format) or
            ``"mean"`` (mean over the plain text's own tokens).
        batch_size: texts per forward pass (sorted by length, right-padded).
        max_length: longest input in tokens (``answer`` keeps the last tokens, ``mean`` the
            first).

    Returns:
        A float32 array ``(len(texts), hidden size)`` in the order of ``texts``.

    Raises:
        ValueError: an unknown pooling, or an empty text under ``mean`` pooling.
    """
    layer = embedding_layer(model) if layer is None else layer
    rows = _token_rows(tokenizer, texts, pooling, max_length)
    if any(not ids for ids, _ in rows):
        raise ValueError("a text has no tokens to embed")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    device = next(model.parameters()).device
    out: np.ndarray | None = None
    order = sorted(range(len(texts)), key=lambda i: len(rows[i][0]))
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(rows[i][0]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            pool = torch.zeros((len(idx), width), dtype=torch.float32)
            for row, i in enumerate(idx):
                seq, w = rows[i]
                ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
                mask[row, : len(seq)] = 1
                pool[row, : len(seq)] = torch.tensor(w)
            hidden = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                           output_hidden_states=True).hidden_states[layer].float()
            w = pool.to(hidden.device).unsqueeze(-1)
            emb = (hidden * w).sum(1) / w.sum(1).clamp(min=1e-6)
            if out is None:
                out = np.zeros((len(texts), emb.shape[-1]), dtype=np.float32)
            out[idx] = emb.cpu().numpy()
    finally:
        if was_training:
            model.train()
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def embedding_similarity(embeddings: np.ndarray) -> np.ndarray:
    """Cosine similarity of embeddings standardised over the set (n x n, clipped to [0, 1],
    zero diagonal); raw cosine below :data:`MIN_SET_FOR_STANDARDISING` rows."""
    x = np.asarray(embeddings, dtype=np.float64)
    if len(x) >= MIN_SET_FOR_STANDARDISING:
        x = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    norms = np.linalg.norm(x, axis=1)
    norms[norms == 0] = 1.0
    x = x / norms[:, None]
    sim = np.clip(x @ x.T, 0.0, 1.0)
    np.fill_diagonal(sim, 0.0)
    return sim


def anchored_pairs(texts: Sequence[str]) -> np.ndarray:
    """Pairs of texts about the same thing by their most specific words (n x n, bool).

    Each text's *anchor* words are its words of the highest IDF in the set (ties kept): in a
    question, the entity it asks about. Two texts are anchored when an anchor word of each
    occurs in the other — the most specific word of the pair is shared, and what differs is
    wording of lesser weight ("Where does X live?" / "In which city does X live?"), not the
    entity ("... of X?" / "... of Y?"). Words come from
    :func:`ilpnb.diagnose.similarity.normalize_text`.
    """
    norm = [normalize_text(t) or "_" for t in texts]
    x = CountVectorizer(binary=True, token_pattern=r"\b\w+\b").fit_transform(norm).tocsr().astype(np.float64)
    n = x.shape[0]
    df = np.asarray(x.sum(axis=0)).ravel()
    idf = np.log((1.0 + n) / (1.0 + df)) + 1.0
    w = x.multiply(idf[None, :]).tocoo()
    top = np.zeros(n)
    np.maximum.at(top, w.row, w.data)
    keep = w.data >= top[w.row] - 1e-9  # each text's highest-IDF words
    anchors = coo_matrix((np.ones(int(keep.sum())), (w.row[keep], w.col[keep])), shape=x.shape).tocsr()
    some = (anchors @ x.T).toarray() > 0  # [a, b]: an anchor word of a occurs in b
    return some & some.T


def meaning_similarity(
    texts: Sequence[str], model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, *,
    layer: int | None = None, pooling: Pooling = "answer", batch_size: int = 32,
) -> np.ndarray:
    """The combined lexical + model similarity of prompts (n x n, zero diagonal):
    ``LEXICAL_WEIGHT * lexical + (1 - LEXICAL_WEIGHT) * semantic`` for :func:`anchored_pairs`,
    the lexical similarity for the other pairs, and 1 where the normalised texts are identical
    (see the module docstring)."""
    texts = [str(t) for t in texts]
    if not texts:
        return np.zeros((0, 0))
    lexical = similarity_matrix(texts)
    semantic = embedding_similarity(prompt_embeddings(model, tokenizer, texts, layer=layer, pooling=pooling,
                                                      batch_size=batch_size))
    # pairs whose most specific words differ (other entities) ask another question however
    # alike their template: both views must agree (the product), so a shared long template
    # alone no longer makes two prompts near-duplicates
    combined = np.where(anchored_pairs(texts), LEXICAL_WEIGHT * lexical + (1.0 - LEXICAL_WEIGHT) * semantic,
                        lexical * semantic)
    norm = np.array([normalize_text(t) for t in texts], dtype=object)
    same = (norm[:, None] == norm[None, :]) & (norm[:, None] != "")  # an empty normal form says nothing
    combined[same] = 1.0
    np.fill_diagonal(combined, 0.0)
    return combined


def find_meaning_siblings(
    records_df: pd.DataFrame, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
    threshold: float = MEANING_THRESHOLD, *, layer: int | None = None, pooling: Pooling = "answer",
    batch_size: int = 32,
) -> dict[str, list[tuple[str, float, bool]]]:
    """Near-duplicate prompts by meaning, with and without the same answer.

    Args:
        records_df: rows with ``prompt`` and ``response``, indexed by id (or with an ``id``
            column).
        model: the base model (its hidden states embed the prompts).
        tokenizer: its tokenizer.
        threshold: combined similarity at or above which two prompts are near-duplicates.
        layer: hidden-states index (default :func:`embedding_layer`).
        pooling: ``"answer"`` or ``"mean"`` (see :func:`prompt_embeddings`).
        batch_size: prompts per forward pass.

    Returns:
        id -> list of ``(sibling id, similarity, same_answer)``, most similar first;
        ``same_answer`` compares the normalised responses
        (:func:`ilpnb.probe.sampling.normalize_answer`). Every id has an entry (possibly
        empty). Siblings with ``same_answer=False`` form conflict groups; those with
        ``True`` are consistent paraphrases.
    """
    df = records_df.set_index("id") if "id" in records_df.columns else records_df
    ids = [str(i) for i in df.index]
    sim = meaning_similarity(df["prompt"].astype(str).tolist(), model, tokenizer, layer=layer, pooling=pooling,
                             batch_size=batch_size)
    resp = [normalize_answer(str(r)) for r in df["response"]]
    out: dict[str, list[tuple[str, float, bool]]] = {i: [] for i in ids}
    rows, cols = np.nonzero(sim >= threshold)
    for a, b in zip(rows, cols):
        out[ids[a]].append((ids[b], float(sim[a, b]), resp[a] == resp[b]))
    for sid in out:
        out[sid].sort(key=lambda x: (-x[1], x[0]))
    return out


def sibling_answer_matches(
    outputs: Mapping[str, str] | pd.Series, records_df: pd.DataFrame,
    siblings: Mapping[str, Sequence[tuple[str, float, bool]]],
) -> pd.DataFrame:
    """Which answer each sample's output reproduces: its own gold or a sibling's.

    Args:
        outputs: id -> an output text (e.g. the fine-tuned model's greedy output).
        records_df: rows with ``response``, indexed by id (or with an ``id`` column).
        siblings: the result of :func:`find_meaning_siblings`.

    Returns:
        A DataFrame indexed by id (the ids of ``outputs``) with ``matches_gold`` (the output
        is the sample's own gold answer), ``sibling`` (id of the most similar sibling whose
        different answer the output matches; missing, i.e. NA, if none), ``sibling_answer`` (that answer),
        ``sibling_sim`` (its similarity, 0 if none), ``n_conflicting`` (siblings with a
        different answer) and ``n_consistent`` (siblings with the same answer). Outputs are
        compared with :func:`ilpnb.probe.sampling.answer_matches` (exact or contains).
    """
    df = records_df.set_index("id") if "id" in records_df.columns else records_df
    resp = {str(i): str(r) for i, r in zip(df.index, df["response"])}
    rows = []
    for sid, text in (outputs.items() if isinstance(outputs, pd.Series) else dict(outputs).items()):
        sid, text = str(sid), "" if text is None or (isinstance(text, float) and np.isnan(text)) else str(text)
        sibs = list(siblings.get(sid, []))
        exact, contains = answer_matches(text, resp.get(sid, ""))
        own = exact or contains
        match: tuple[str, float] | None = None
        if not own:
            for other, sim, same in sibs:  # most similar first
                if not same and any(answer_matches(text, resp.get(other, ""))):
                    match = (other, sim)
                    break
        rows.append({
            "id": sid, "matches_gold": own,
            "sibling": match[0] if match else None,
            "sibling_answer": resp[match[0]] if match else None,
            "sibling_sim": match[1] if match else 0.0,
            "n_conflicting": sum(not s for _, _, s in sibs),
            "n_consistent": sum(bool(s) for _, _, s in sibs),
        })
    cols = ["matches_gold", "sibling", "sibling_answer", "sibling_sim", "n_conflicting", "n_consistent"]
    if not rows:
        return pd.DataFrame(columns=cols, index=pd.Index([], name="id"))
    return pd.DataFrame(rows).set_index("id")[cols]
