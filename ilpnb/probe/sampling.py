"""What the base model knows about each sample: its own answers to the sample's own prompt.

For every SFT record the prompt is encoded exactly as training encodes it
(:func:`ilpnb.train.format.encode_pair`: the chat template when the tokenizer has one, the
plain ``prompt + "\\n"`` format otherwise) and the model answers it once greedily and
``n_samples`` times at a temperature (Gekhman et al. 2024, "Does fine-tuning LLMs on new
knowledge encourage hallucinations?", sample at T = 0.5). Each answer gets at most
``len(response tokens) + margin`` new tokens.

**One generate call per batch.** Each prompt is repeated ``n_samples + 1`` times (row 0 greedy,
rows 1..N sampled) and decoded with one greedy ``generate``; a logits processor turns the
sampled rows' argmax into an exact draw from ``softmax(logits / T)`` by inverse-CDF sampling
with a counter-based random number keyed by ``(seed, sample key, k, step)``. So a record's
samples depend only on the model, the seed and the record (its id), never on the batch size,
the order of the records or which other records are in the set; the same seed gives the same
samples and ``batch_size=1`` gives the answers of ``batch_size=8``. The random numbers are
common to all models: two checkpoints with the same distribution on a prompt draw the same
samples, so a change in the answers between checkpoints is a change of the model, not noise.

**Comparison.** Answers and gold responses are normalised (:func:`normalize_answer`: Unicode
compatibility form, accents and case folded, punctuation to spaces, whitespace squeezed). An
answer is *exact* when its first sentence/line (:func:`answer_head`), or its whole text,
equals the gold response; it *contains* the gold when the normalised gold appears as whole
words inside it (a model that says "It is Paris." or keeps talking after the answer).
``match="contains"`` (default) counts both as correct; ``match="exact"`` only the first.

**Categories** (Gekhman et al. 2024, with P_correct estimated from one prompt):

* ``known`` (their HighlyKnown): the greedy answer is correct and at least
  :data:`KNOWN_MIN_SAMPLE_SHARE` of the sampled answers are too;
* ``maybe_known`` (MaybeKnown): the greedy answer is correct but fewer samples are;
* ``weakly_known`` (WeaklyKnown): the greedy answer is wrong but some sample is correct;
* ``unknown`` (Unknown): neither the greedy answer nor any sample is correct.

Gekhman et al. take P_correct(greedy) over ten few-shot prompts; with a single greedy decode
it is 0 or 1, so the sampled share splits greedy-correct answers into known / maybe_known.
:mod:`ilpnb.probe.autoprobes` uses several framings of the prompt and gets the original
definition back (greedy over framings).

**Preferred other answer and belief.** Among the greedy answer and the samples that are not
correct, the most frequent normalised answer head — or, when the prompts are known (as in
:func:`sample_answers`), the content word most of them hold (:func:`other_answer_matcher`:
a chat model words one answer as many sentences) — is the model's preferred other answer
(``other_answer``, its surface form as first generated) and ``other_share`` its count over
all ``n_samples + 1`` answers. ``belief`` is true when that answer is also the greedy answer,
``other_share >= BELIEF_MIN_SHARE`` and the answer is not the model's *default* for the kind
of question (:data:`DEFAULT_MIN_COUNT`, :data:`DEFAULT_MIN_OVERPRODUCTION`: the greedy answer
of many records of the set, far more often than the gold responses hold it): a belief is
consistent, confident and about this sample's fact; a guess is spread over many answers, and
a default is the same answer whatever the question is about.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import (
    LogitsProcessor,
    LogitsProcessorList,
    PreTrainedTokenizerBase,
)

from ilpnb.probe.answers import (
    Match,
    answer_head,
    answer_matches,
    normalize_answer,
    other_answer_matcher,
    preferred_other,
)
from ilpnb.probe.decoding import generate_rows
from ilpnb.probe.scoring import cache_keyword
from ilpnb.train.format import encode_pair

__all__ = [
    "CATEGORIES",
    "DEFAULT_N_SAMPLES",
    "DEFAULT_TEMPERATURE",
    "DEFAULT_MARGIN",
    "KNOWN_MIN_SAMPLE_SHARE",
    "BELIEF_MIN_SHARE",
    "DEFAULT_MIN_COUNT",
    "DEFAULT_MIN_OVERPRODUCTION",
    "Match",
    "RecordRow",
    "record_rows",
    "normalize_answer",
    "answer_head",
    "answer_matches",
    "preferred_other",
    "other_answer_matcher",
    "default_answers",
    "generate_answers",
    "summarize_answers",
    "sample_answers",
]

#: The four knowledge categories of Gekhman et al. 2024, best known first.
CATEGORIES = ("known", "maybe_known", "weakly_known", "unknown")

#: Samples per prompt. Gekhman et al. use 16; 8 halves the cost and still separates a
#: guess (answers spread) from a belief (one answer dominating) at BELIEF_MIN_SHARE.
DEFAULT_N_SAMPLES = 8

#: Sampling temperature, as in Gekhman et al. 2024 (T = 0.5): low enough that a model's
#: stable answer comes back, high enough that a near-tie shows up as disagreement.
DEFAULT_TEMPERATURE = 0.5

#: New tokens beyond the gold response's length (the project's greedy decoding uses 8 too):
#: room for a short preamble or punctuation without letting a model ramble for long.
DEFAULT_MARGIN = 8

#: Greedy-correct answers count as ``known`` when at least this share of the samples is
#: correct too: the gold answer is then the clear mode of the model's distribution, not a
#: near-tie that greedy decoding happened to win (that is ``maybe_known``).
KNOWN_MIN_SAMPLE_SHARE = 0.5

#: A preferred other answer is a ``belief`` when it is the greedy answer and at least this
#: share of all answers (greedy + samples) is that answer. A guess spreads its samples over
#: several answers; a belief comes back nearly every time. A bare majority is not enough: small
#: models are confident at T = 0.5 even about facts they never saw (on the default world's
#: base model, 67% of the samples whose fact the corpus never states reach a 0.5 share, 44%
#: reach 0.8, while 97% of those whose fact the corpus contradicts reach 0.8). The one
#: threshold for beliefs in ilpnb (the automatic probes use it too).
BELIEF_MIN_SHARE = 0.8

#: A wrong answer that the model gives greedily to at least this many records of the set ...
DEFAULT_MIN_COUNT = 5

#: ... and at least this many times as often as the gold responses hold it (count / (gold
#: count + 1)) is the model's *default* for a kind of question (its prior: "farmer" for any
#: job question), not a belief about the sample's own fact; such an answer is no belief.
DEFAULT_MIN_OVERPRODUCTION = 3.0



@dataclass(frozen=True)
class RecordRow:
    """The three fields of an SFT record that probing needs."""

    id: str
    prompt: str
    response: str


def record_rows(records: Sequence[Any] | pd.DataFrame) -> list[RecordRow]:
    """SFT records as :class:`RecordRow` s.

    Args:
        records: objects with ``id``, ``prompt`` and ``response`` attributes (e.g.
            :class:`ilpnb.data.records.SFTRecord`), or a DataFrame with ``prompt`` and
            ``response`` columns and either an ``id`` column or the ids as its index.

    Raises:
        ValueError: duplicate ids (results are indexed by id).
    """
    if isinstance(records, pd.DataFrame):
        ids = records["id"] if "id" in records.columns else records.index
        rows = [RecordRow(str(i), str(p), str(r)) for i, p, r in zip(ids, records["prompt"], records["response"])]
    else:
        rows = [RecordRow(str(r.id), r.prompt, r.response) for r in records]
    seen = Counter(r.id for r in rows)
    dup = [i for i, c in seen.items() if c > 1]
    if dup:
        raise ValueError(f"duplicate record id(s): {', '.join(dup[:5])}")
    return rows


# --------------------------------------------------------------------------- generation

_M64 = np.uint64(0xFFFFFFFFFFFFFFFF)


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping arithmetic): a counter-based RNG."""
    with np.errstate(over="ignore"):
        x = (x + np.uint64(0x9E3779B97F4A7C15)) & _M64
        x = ((x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _M64
        x = ((x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _M64
        return x ^ (x >> np.uint64(31))


def _row_key(seed: int, key: str, k: int) -> int:
    digest = hashlib.blake2b(f"{seed}\x1f{key}\x1f{k}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class _SeededSampler(LogitsProcessor):
    """Turns the sampled rows' argmax into an exact draw from ``softmax(scores / T)``.

    Row ``r`` at generation step ``t`` draws ``u = U(key_r, t)`` from a counter-based RNG and
    keeps only the token where the cumulative distribution first exceeds ``u``; greedy rows
    are left as they are. The draw depends on the row's own key and logits only.
    """

    def __init__(self, keys: np.ndarray, sampled: np.ndarray, temperature: float, width: int) -> None:
        self.keys = keys.astype(np.uint64)
        self.rows = torch.from_numpy(np.nonzero(sampled)[0])
        self.temperature = temperature
        self.width = width

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not len(self.rows):
            return scores
        step = np.uint64(input_ids.shape[1] - self.width)
        bits = _mix64(self.keys[self.rows.numpy()] ^ _mix64(np.full(len(self.rows), step, dtype=np.uint64)))
        u = torch.from_numpy((bits >> np.uint64(11)).astype(np.float64) * 2.0 ** -53).float().to(scores.device)
        rows = self.rows.to(scores.device)
        probs = torch.softmax(scores[rows].float() / self.temperature, dim=-1)
        cdf = probs.cumsum(dim=-1)
        target = (u * cdf[:, -1]).unsqueeze(-1)
        tok = torch.searchsorted(cdf, target, right=True).clamp_(max=scores.shape[-1] - 1)
        out = scores.clone()
        out[rows] = torch.finfo(scores.dtype).min
        out[rows, tok.squeeze(-1)] = 0.0
        return out


def _eos_ids(model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    ids: list[int] = []
    for src in (tokenizer.eos_token_id, getattr(getattr(model, "generation_config", None), "eos_token_id", None)):
        for i in src if isinstance(src, (list, tuple)) else [src]:
            if i is not None and int(i) not in ids:
                ids.append(int(i))
    return ids


#: encode each prompt once for its greedy and sampled rows (:func:`_shared_prefill`); False
#: encodes every row on its own (the reference the tests compare against)
SHARE_PREFILL = True


def _shared_prefill(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, reps: int,
                    cache_kw: str | None) -> Any | None:
    """The key/value cache of each left-padded prompt but its last token, encoded once and
    repeated for its ``reps`` rows, for ``generate`` to continue from; None where the model
    takes no cache or position ids, or a prompt is one token.

    A prompt's greedy and sampled rows share everything up to their first new token, and the
    prompt is most of the cost of a short answer: ``n_samples + 1`` encodings become one.
    Position ids are those ``generate`` gives a left-padded row (the attention mask's running
    count), so the continuation sees the same cache as an unshared prompt would make.
    """
    if cache_kw is None or ids.shape[1] < 2:
        return None
    pos = mask.long().cumsum(-1) - 1
    pos.masked_fill_(mask == 0, 1)
    out = model(input_ids=ids[:, :-1], attention_mask=mask[:, :-1], position_ids=pos[:, :-1], use_cache=True,
                logits_to_keep=1)
    cache = getattr(out, cache_kw)
    cache.batch_repeat_interleave(reps)
    return cache


@torch.inference_mode()
def generate_answers(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int | Sequence[int],
    *,
    n_samples: int = DEFAULT_N_SAMPLES,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    keys: Sequence[str] | None = None,
    batch_size: int = 16,
) -> list[list[str]]:
    """The greedy answer and ``n_samples`` sampled answers of each prompt.

    One ``generate`` call per batch of ``batch_size`` prompts (each repeated ``n_samples + 1``
    times, left-padded, its prompt encoded once: :func:`_shared_prefill`); see the module
    docstring for how sampling is seeded.

    Args:
        model: a causal LM with ``generate``.
        tokenizer: its tokenizer (pad and end-of-sequence ids, decoding).
        prompts: token ids of each prompt (non-empty).
        max_new_tokens: new tokens per prompt (one number for all, or one per prompt).
        n_samples: sampled answers per prompt (0: greedy only).
        temperature: sampling temperature (> 0).
        seed: seed of the samples.
        keys: one string per prompt keying its samples (default: the prompt's token ids),
            e.g. the record id, so a record's samples never depend on the others.
        batch_size: prompts per generate call.

    Returns:
        Per prompt, ``[greedy, sample_1, ..., sample_N]``: decoded text up to the first
        end-of-sequence token, special tokens dropped, stripped.

    Raises:
        ValueError: an empty prompt, a bad temperature, or lengths that do not match.
    """
    n = len(prompts)
    if isinstance(max_new_tokens, (int, np.integer)):
        budgets = [int(max_new_tokens)] * n
    else:
        budgets = [int(b) for b in max_new_tokens]
    if len(budgets) != n or (keys is not None and len(keys) != n):
        raise ValueError("max_new_tokens and keys must have one entry per prompt")
    if n_samples and not temperature > 0:
        raise ValueError(f"temperature must be > 0, got {temperature}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("an empty prompt cannot be continued")
    keys = [",".join(map(str, p)) for p in prompts] if keys is None else [str(k) for k in keys]
    reps = n_samples + 1
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos = _eos_ids(model, tokenizer)
    pad = pad if pad is not None else 0
    device = next(model.parameters()).device
    out: list[list[str]] = [[] for _ in range(n)]
    order = sorted(range(n), key=lambda i: (len(prompts[i]), budgets[i]))
    was_training = model.training
    model.eval()
    cache_kw = cache_keyword(model) if reps > 1 and SHARE_PREFILL else None
    try:
        for start in range(0, n, batch_size):
            idx = order[start : start + batch_size]
            width = max(len(prompts[i]) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(idx):  # left padding, as generation needs
                p = list(prompts[i])
                ids[row, width - len(p):] = torch.tensor(p, dtype=torch.long)
                mask[row, width - len(p):] = 1
            shared = _shared_prefill(model, ids.to(device), mask.to(device), reps, cache_kw)
            ids, mask = ids.repeat_interleave(reps, dim=0), mask.repeat_interleave(reps, dim=0)
            row_budget = [budgets[i] for i in idx for _ in range(reps)]
            row_keys = np.array([_row_key(seed, keys[i], k) for i in idx for k in range(reps)], dtype=np.uint64)
            sampled = np.array([k > 0 for _ in idx for k in range(reps)])

            def processors(rows: torch.Tensor, keys_: np.ndarray = row_keys, sampled_: np.ndarray = sampled,
                           width_: int = width) -> LogitsProcessorList:
                pick = rows.cpu().numpy()
                return LogitsProcessorList([_SeededSampler(keys_[pick], sampled_[pick], temperature, width_)])

            new = generate_rows(model, ids.to(device), mask.to(device), row_budget, eos, pad, processors,
                                cache=shared, cache_kw=cache_kw)
            for row, toks in enumerate(new):
                cut = next((j for j, t in enumerate(toks) if t in eos), len(toks))
                out[idx[row // reps]].append(tokenizer.decode(toks[:cut], skip_special_tokens=True).strip())
    finally:
        if was_training:
            model.train()
    return out


# ---------------------------------------------------------------------------- summaries


def _category(greedy_ok: bool, share: float, n_samples: int) -> str:
    if greedy_ok:
        return "known" if n_samples == 0 or share >= KNOWN_MIN_SAMPLE_SHARE else "maybe_known"
    return "weakly_known" if n_samples and share > 0 else "unknown"


def default_answers(
    answers: Sequence[Sequence[str]], golds: Sequence[str], match: Match = "contains",
) -> dict[str, int]:
    """The model's default answers in a set: normalised wrong greedy answers given to at least
    :data:`DEFAULT_MIN_COUNT` records and :data:`DEFAULT_MIN_OVERPRODUCTION` times as often
    as the gold responses hold them (count / (gold count + 1)), with their greedy counts.

    Args:
        answers: per record, the greedy answer first (the samples are not used).
        golds: the gold response of each record.
        match: what counts as correct (a correct greedy answer is no default).
    """
    wrong: Counter[str] = Counter()
    for ans, gold in zip(answers, golds, strict=True):
        exact, contains = answer_matches(ans[0], gold)
        key = normalize_answer(answer_head(ans[0]))
        if key and not (exact or (match == "contains" and contains)):
            wrong[key] += 1
    gold_counts = Counter(normalize_answer(g) for g in golds)
    return {k: c for k, c in wrong.items()
            if c >= DEFAULT_MIN_COUNT and c / (gold_counts[k] + 1) >= DEFAULT_MIN_OVERPRODUCTION}


_SUMMARY_COLUMNS = ["greedy", "greedy_exact", "greedy_correct", "sample_share", "sample_share_exact", "gold_share",
                    "category", "other_answer", "other_share", "other_is_default", "belief", "n_samples"]


def summarize_answers(
    answers: Sequence[Sequence[str]], golds: Sequence[str], index: Sequence[str] | None = None,
    match: Match = "contains", keep_samples: bool = True, prompts: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Per-prompt knowledge columns from generated answers (``[greedy, samples...]`` each).

    Args:
        answers: per prompt, the greedy answer then the sampled ones.
        golds: the gold response of each prompt.
        index: ids for the rows (default 0..n-1).
        match: ``"contains"`` (gold as whole words inside the answer counts) or ``"exact"``.
        keep_samples: keep the sampled texts in a ``samples`` column.
        prompts: the questions; when given, wrong answers are compared by content
            (:func:`other_answer_matcher`), not by their exact head.

    Returns:
        A DataFrame (one row per prompt; columns as in :func:`sample_answers`).
    """
    if match not in ("contains", "exact"):
        raise ValueError(f"match must be 'contains' or 'exact', got {match!r}")
    greedy_counts = default_answers(answers, golds, match)
    rows = []
    if prompts is not None and len(prompts) != len(golds):
        raise ValueError("prompts must have one entry per answer list")
    for k, (ans, gold) in enumerate(zip(answers, golds, strict=True)):
        if not ans:
            raise ValueError("each prompt needs at least its greedy answer")
        flags = [answer_matches(a, gold) for a in ans]
        ok = [c if match == "contains" else e for e, c in flags]
        n_s = len(ans) - 1
        share = float(np.mean(ok[1:])) if n_s else float("nan")
        if prompts is not None:
            other, count, gives = other_answer_matcher(ans, gold, prompts[k], match)
            greedy_is_other = other is not None and not ok[0] and gives(ans[0])
        else:
            other, count = preferred_other(ans, gold, match)
        other_share = count / len(ans)
        other_key = normalize_answer(other) if other is not None else None
        if prompts is None:
            greedy_is_other = other_key is not None and normalize_answer(answer_head(ans[0])) == other_key
        is_default = other_key in greedy_counts
        row: dict[str, Any] = {
            "greedy": ans[0],
            "greedy_exact": flags[0][0],
            "greedy_correct": ok[0],
            "sample_share": share,
            "sample_share_exact": float(np.mean([e for e, _ in flags[1:]])) if n_s else float("nan"),
            "gold_share": float(np.mean(ok)),
            "category": _category(ok[0], share, n_s),
            "other_answer": other,
            "other_share": other_share,
            "other_is_default": is_default,
            "belief": bool(n_s > 0 and greedy_is_other and other_share >= BELIEF_MIN_SHARE and not is_default),
            "n_samples": n_s,
        }
        if keep_samples:
            row["samples"] = list(ans[1:])
        rows.append(row)
    table = pd.DataFrame(rows, index=pd.Index(list(index) if index is not None else range(len(rows)), name="id"))
    if table.empty:
        table = pd.DataFrame(columns=_SUMMARY_COLUMNS + (["samples"] if keep_samples else []), index=table.index)
    return table


def sample_answers(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    records: Sequence[Any] | pd.DataFrame,
    *,
    n_samples: int = DEFAULT_N_SAMPLES,
    temperature: float = DEFAULT_TEMPERATURE,
    seed: int = 0,
    batch_size: int = 16,
    margin: int = DEFAULT_MARGIN,
    max_length: int | None = None,
    match: Match = "contains",
    keep_samples: bool = True,
) -> pd.DataFrame:
    """What the model answers to each record's own prompt, in the training format.

    Args:
        model: the (base) model.
        tokenizer: its tokenizer.
        records: SFT records (see :func:`record_rows`).
        n_samples: sampled answers per record besides the greedy one.
        temperature: sampling temperature.
        seed: seed of the samples (a record's samples depend on the seed and its id only).
        batch_size: records per generate call.
        margin: new tokens allowed beyond the gold response's token count.
        max_length: longest sequence, as in training (prompts lose tokens on the left).
        match: what counts as correct (see the module docstring).
        keep_samples: keep the sampled texts in a ``samples`` column.

    Returns:
        A DataFrame indexed by ``id`` with: ``greedy`` (greedy answer text), ``greedy_exact``
        (it equals the gold), ``greedy_correct`` (it is correct by ``match``),
        ``sample_share`` (share of the samples correct by ``match``), ``sample_share_exact``
        (share exactly equal), ``gold_share`` (share of all answers, greedy included, correct),
        ``category`` (one of :data:`CATEGORIES`), ``other_answer`` (most frequent wrong answer
        head; missing, i.e. NA, if none), ``other_share`` (its share of all ``n_samples + 1`` answers),
        ``other_is_default`` (it is one of the set's :func:`default_answers`), ``belief``
        (see the module docstring and :data:`BELIEF_MIN_SHARE`), ``n_samples``, ``max_new_tokens`` (budget)
        and, with ``keep_samples``, ``samples`` (the sampled texts).
    """
    rows = record_rows(records)
    prompts, budgets = [], []
    for r in rows:
        enc = encode_pair(tokenizer, r.prompt, r.response, max_length)
        prompts.append(enc.prompt_ids)
        budgets.append(len(enc.response_ids) + margin)
    answers = generate_answers(model, tokenizer, prompts, budgets, n_samples=n_samples, temperature=temperature,
                               seed=seed, keys=[r.id for r in rows], batch_size=batch_size)
    table = summarize_answers(answers, [r.response for r in rows], [r.id for r in rows], match, keep_samples,
                              prompts=[r.prompt for r in rows])
    table.insert(table.columns.get_loc("n_samples") + 1, "max_new_tokens", budgets)
    return table
