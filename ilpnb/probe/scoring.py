"""Teacher-forced scoring of continuations: one forward pass per batch, no generation.

Given pairs of token ids (context, continuation), :func:`score_continuations` returns per
pair the continuation's log-probability, token accuracy and whether greedy decoding would
reproduce it exactly (every teacher-forced argmax equals the target token), optionally with
the full predictive distribution at the first continuation token. This is the measuring
instrument of the knowledge probes and of per-sample SFT tracking.

:func:`score_shared_context` gives the same numbers for pairs that share their context (the
multiple-choice options of one question): each distinct context is encoded once, and its
key/value cache (transformers' ``Cache``, expanded over the options with
``reorder_cache``) is reused for every continuation that follows it.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Scores", "score_continuations", "score_shared_context", "option_probabilities", "cache_keyword",
           "length_batches", "free_positions"]


@dataclass
class Scores:
    """Per-pair results of :func:`score_continuations` (arrays in input order).

    Attributes:
        logprob: summed log-probability of the continuation tokens.
        n_tokens: continuation length in tokens.
        n_correct: continuation tokens whose teacher-forced argmax is the target.
        first_logprobs: ``(n, vocab)`` log-probabilities at the first continuation token,
            or None when not asked for.
        followers: per pair, the :class:`Scores` of its followers (see
            :func:`score_continuations`), or None when none were given.
    """

    logprob: np.ndarray
    n_tokens: np.ndarray
    n_correct: np.ndarray
    first_logprobs: np.ndarray | None = None
    followers: list[Scores] | None = None

    @property
    def exact(self) -> np.ndarray:
        """Greedy decoding reproduces the continuation exactly."""
        return self.n_correct == self.n_tokens

    @property
    def token_acc(self) -> np.ndarray:
        """Share of continuation tokens predicted correctly."""
        return self.n_correct / np.maximum(self.n_tokens, 1)

    @property
    def loss(self) -> np.ndarray:
        """Mean negative log-likelihood per continuation token."""
        return -self.logprob / np.maximum(self.n_tokens, 1)


def _logits_from(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, start: int,
                 cache_kw: str | None = None) -> tuple[torch.Tensor, object]:
    """Logits at positions ``start ..`` only: the output layer (a vocabulary-wide matmul) is
    applied to the positions that predict a continuation token, not to the context (models
    that do not take ``logits_to_keep`` compute them all and are sliced); with ``cache_kw``,
    also the key/value cache of the pass (else None)."""
    keep = ids.shape[1] - start
    extra = {"use_cache": True} if cache_kw else {}
    if start > 0:
        try:
            out = model(input_ids=ids, attention_mask=mask, logits_to_keep=keep, **extra)
            return out.logits[:, -keep:], getattr(out, cache_kw) if cache_kw else None
        except TypeError:  # a model without ``logits_to_keep``
            pass
    out = model(input_ids=ids, attention_mask=mask, **extra)
    return out.logits[:, start:], getattr(out, cache_kw) if cache_kw else None


#: encode the tokens every sequence of a batch starts with (a chat template's system prompt and
#: header) once, its key/value cache expanded over the batch, where that saves a real model work
#: (:func:`_shared_prefix`); False: every row encodes its whole sequence (the tests' reference)
SHARE_PREFIX = True
#: the shortest common prefix worth a pass of its own
PREFIX_MIN_TOKENS = 4


def _shared_prefix(seqs: Sequence[Sequence[int]], lo: int, free: float, kw: str | None) -> int:
    """Tokens the batch's sequences all start with, at most ``lo`` (the first position whose
    logits are scored stays in the batch's own pass); 0 where sharing them is not worth it:
    shorter than :data:`PREFIX_MIN_TOKENS`, a model that takes no cache or position ids (no
    ``kw``, see :func:`cache_keyword`), or the positions saved within the ``free`` ones
    (:func:`free_positions`)."""
    if not SHARE_PREFIX or kw is None or len(seqs) < 2 or lo < PREFIX_MIN_TOKENS:
        return 0
    first, k = seqs[0], 0
    limit = min(lo, min(len(s) for s in seqs))
    while k < limit and all(s[k] == first[k] for s in seqs):
        k += 1
    if k < PREFIX_MIN_TOKENS or k * (len(seqs) - 1) <= free:
        return 0
    return k


def _logits_after_prefix(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, start: int, prefix: int,
                         kw: str, want_cache: bool) -> tuple[torch.Tensor, object]:
    """:func:`_logits_from` with the batch's common first ``prefix`` tokens encoded once (one
    row), their cache repeated over the rows, and the rest of every row encoded on it (``kw``:
    the forward's cache keyword)."""
    head = model(input_ids=ids[:1, :prefix], attention_mask=mask[:1, :prefix], use_cache=True, logits_to_keep=1)
    cache = getattr(head, kw)  # type: ignore[arg-type]
    cache.batch_repeat_interleave(len(ids))
    width = ids.shape[1]
    pos = torch.arange(prefix, width, device=ids.device)[None, :].expand(len(ids), -1)
    out = model(input_ids=ids[:, prefix:], attention_mask=mask, position_ids=pos, use_cache=True,
                logits_to_keep=width - start, **{kw: cache})  # type: ignore[arg-type]
    return out.logits[:, -(width - start):], getattr(out, kw) if want_cache else None  # type: ignore[arg-type]


@torch.inference_mode()
def score_continuations(
    model: torch.nn.Module,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_size: int = 32,
    pad_id: int = 0,
    first_logprobs: bool = False,
    followers: Sequence[Sequence[Sequence[int]]] | None = None,
) -> Scores:
    """Score continuations with one teacher-forced forward pass per batch.

    Args:
        model: a causal LM returning ``.logits``.
        pairs: ``(context_ids, continuation_ids)``; the context must be non-empty.
        batch_size: pairs per forward pass at most (pairs are sorted by length and batches cut
            where padding would grow large: :func:`length_batches`).
        pad_id: id used for right padding (masked out by the attention mask).
        first_logprobs: also return the log-distribution at the first continuation token.
        followers: per pair, more continuations of the same context (e.g. a question's
            distractors), scored on the key/value cache of the pair's own pass: the context
            is encoded once for all of them (``Scores.followers``).

    Returns:
        :class:`Scores` in the order of ``pairs``.
    """
    n = len(pairs)
    logprob = np.zeros(n, dtype=np.float64)
    n_tok = np.zeros(n, dtype=np.int64)
    n_ok = np.zeros(n, dtype=np.int64)
    first: np.ndarray | None = None
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    if followers is not None and len(followers) != n:
        raise ValueError(f"followers: {len(followers)} lists for {n} pairs; give one list per pair")
    kw = cache_keyword(model)
    cache_kw = kw if followers is not None and any(followers) else None
    free = free_positions(model) if n else 0.0
    follow: list[Scores | None] = [None] * n
    order = sorted(range(n), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    lengths = [len(pairs[i][0]) + len(pairs[i][1]) for i in order]
    for idx in length_batches(lengths, batch_size, order, free):
        seqs = [list(pairs[i][0]) + list(pairs[i][1]) for i in idx]
        width = max(len(s) for s in seqs)
        ids = torch.full((len(idx), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(idx), width), dtype=torch.long)
        target = torch.zeros((len(idx), width), dtype=torch.bool)
        for row, (i, seq) in enumerate(zip(idx, seqs)):
            ctx = len(pairs[i][0])
            if ctx == 0:
                raise ValueError(f"pair {i}: empty context; a continuation needs at least one token before it")
            ids[row, : len(seq)] = torch.tensor(seq)
            mask[row, : len(seq)] = 1
            target[row, ctx : len(seq)] = True
        ids, mask, target = ids.to(device), mask.to(device), target.to(device)
        lo = min(len(pairs[i][0]) for i in idx) - 1  # the first position that predicts a continuation token
        needs_cache = cache_kw is not None and any(followers[i] for i in idx)  # type: ignore[index]
        prefix = _shared_prefix(seqs, lo, free, kw)
        if prefix:
            logits, cache = _logits_after_prefix(model, ids, mask, lo, prefix, kw, needs_cache)  # type: ignore[arg-type]
        else:
            logits, cache = _logits_from(model, ids, mask, lo, cache_kw if needs_cache else None)
        if needs_cache:
            _follow(model, cache, cache_kw, logits, mask, pairs, followers,  # type: ignore[arg-type]
                    idx, lo, pad_id, follow, free)
        logits = logits[:, :-1].float()  # positions lo .. width-2
        tgt = ids[:, lo + 1 :]
        sel = target[:, lo + 1 :]
        tok_lp = logits.gather(-1, tgt.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
        ok = logits.argmax(-1) == tgt
        logprob[idx] = (tok_lp * sel).sum(-1).double().cpu().numpy()
        n_tok[idx] = sel.sum(-1).cpu().numpy()
        n_ok[idx] = (ok & sel).sum(-1).cpu().numpy()
        if first_logprobs:
            if first is None:
                first = np.zeros((n, logits.shape[-1]), dtype=np.float32)
            pos = torch.tensor([len(pairs[i][0]) - 1 - lo for i in idx], device=device)
            first[idx] = torch.log_softmax(logits[torch.arange(len(idx), device=device), pos], dim=-1).cpu().numpy()
    if followers is not None and cache_kw is None and any(followers):  # a model without a cache: pair by pair
        flat = [(pairs[i][0], f) for i in range(n) for f in followers[i]]
        whole = score_continuations(model, flat, batch_size, pad_id)
        at = 0
        for i in range(n):
            k = len(followers[i])
            follow[i] = Scores(whole.logprob[at:at + k], whole.n_tokens[at:at + k], whole.n_correct[at:at + k])
            at += k
    if was_training:
        model.train()
    empty = Scores(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))
    return Scores(logprob=logprob, n_tokens=n_tok, n_correct=n_ok, first_logprobs=first,
                  followers=None if followers is None else [f if f is not None else empty for f in follow])


#: a batch of :func:`score_continuations` is cut where padding would make it this many times its
#: real tokens, once it holds more padded positions than :func:`free_positions` allows: on a CPU
#: a big model's pass costs about its padded tokens (SmolLM2-135M: 8 FAQ answers 2.5 s in
#: batches of 4, 3.1 s padded to the longest in one), a tiny model's little more for 300 rows
#: than for 3
PAD_SLACK = 1.25
#: on a CPU, padded positions x parameters below which a pass costs about its fixed overhead
#: (no batch is cut for padding below that): the world's tiny models (0.1-0.6M parameters) are
#: never cut, SmolLM2-135M above 74 positions (its pass costs about 2.6 ms a position from about there)
PAD_FREE_WORK = 10**10


def free_positions(model: torch.nn.Module) -> float:
    """Padded positions a batch may hold whatever its padding: unlimited on a GPU (padding
    costs little there), else ``max(64, PAD_FREE_WORK / parameters)``."""
    if next(model.parameters()).device.type != "cpu":
        return float("inf")
    return max(64.0, PAD_FREE_WORK / max(1, sum(p.numel() for p in model.parameters())))


def length_batches(lengths: Sequence[int], batch_size: int, items: Sequence[int] | None = None,
                   free: float = 1024.0) -> list[list[int]]:
    """Consecutive batches (filled greedily) of items sorted by ascending ``lengths``: at most ``batch_size``
    each, and cut where the batch padded to its longest would exceed ``free`` positions and
    :data:`PAD_SLACK` times its real tokens (``items``: the ids to batch, default
    ``range(len(lengths))``)."""
    items = list(range(len(lengths))) if items is None else list(items)
    if len(items) != len(lengths):
        raise ValueError(f"length_batches: {len(lengths)} lengths for {len(items)} items")
    out: list[list[int]] = []
    real = 0
    for item, length in zip(items, lengths):
        if out and len(out[-1]) < max(1, batch_size):
            padded = (len(out[-1]) + 1) * length  # sorted: this item is the batch's longest
            if padded <= free or padded <= PAD_SLACK * (real + length):
                out[-1].append(item)
                real += length
                continue
        out.append([item])
        real = length
    return out


#: the most (cached + new) token positions the followers of one batch are scored in per
#: forward pass, beyond one batch-sized piece (0: pieces of a batch's rows). A larger budget
#: takes fewer passes; the option scores agree with batch-sized pieces to float rounding (the
#: diagnosis of the test worlds comes out the same with 0 and with this budget)
FOLLOWER_TOKENS = 16384


def _follow(model: torch.nn.Module, cache: object, cache_kw: str, logits: torch.Tensor, mask: torch.Tensor,
            pairs: Sequence[tuple[Sequence[int], Sequence[int]]], followers: Sequence[Sequence[Sequence[int]]],
            idx: list[int], lo: int, pad_id: int, out: list[Scores | None], free: float) -> None:
    """Score a batch's followers on its pass's cache: the cached positions after each context
    (its own continuation, padding) are masked out, and position ids continue the context's
    (``free``: :func:`free_positions` of the model)."""
    device = logits.device
    ctx = torch.tensor([len(pairs[i][0]) for i in idx], device=device)
    past = mask * (torch.arange(mask.shape[1], device=device)[None, :] < ctx[:, None])
    last = logits[torch.arange(len(idx), device=device), ctx - 1 - lo]  # the logits after each context
    rows = [(row, list(f)) for row, i in enumerate(idx) for f in followers[i]]
    for f in (f for _, f in rows):
        if not f:
            raise ValueError("followers: an empty continuation; there is nothing to score")
    # followers sorted by length and scored in as few pieces as FOLLOWER_TOKENS allows (one
    # forward pass each, the last on the cache itself, the others on a copy): a tiny model's
    # pass costs about the same for 3 rows as for 300, so fewer passes is most of the saving
    # (pieces also cut where padding the followers would cost a big model on a CPU much more)
    order = sorted(range(len(rows)), key=lambda j: len(rows[j][1]))
    width = mask.shape[1] + max(len(f) for _, f in rows)
    piece = max(len(idx), FOLLOWER_TOKENS // width, 1)
    pieces = length_batches([len(rows[j][1]) for j in order], piece, order, free)
    lp, nt, nc = np.zeros(len(rows)), np.zeros(len(rows), np.int64), np.zeros(len(rows), np.int64)
    for k, part in enumerate(pieces):
        own = cache if k == len(pieces) - 1 else copy.deepcopy(cache)
        got = _score_on_cache(model, own, cache_kw, last, past, ctx,
                              torch.tensor([rows[j][0] for j in part], device=device), [rows[j][1] for j in part], pad_id)
        lp[part], nt[part], nc[part] = (t.cpu().numpy() for t in got)
    at = 0
    for i in idx:
        k = len(followers[i])
        out[i] = Scores(lp[at:at + k], nt[at:at + k], nc[at:at + k])
        at += k


def _context_groups(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[list[int]]:
    """Indices of the pairs grouped by identical context, groups sorted by their padded cost
    (the longest continuation times the group's size, plus the context), so that a batch
    pads its continuations (the many rows) and its contexts (one row a group) little."""
    by: dict[tuple[int, ...], list[int]] = {}
    for i, (ctx, cont) in enumerate(pairs):
        if len(ctx) == 0:
            raise ValueError(f"pair {i}: empty context; a continuation needs at least one token before it")
        if len(cont) == 0:
            raise ValueError(f"pair {i}: empty continuation; there is nothing to score")
        by.setdefault(tuple(ctx), []).append(i)
    return sorted(by.values(), key=lambda g: max(len(pairs[i][1]) for i in g) * len(g) + len(pairs[g[0]][0]))


def _chunks(groups: list[list[int]], rows: int) -> list[list[list[int]]]:
    """Consecutive groups holding at most ``rows`` continuations together (one group at least)."""
    out: list[list[list[int]]] = []
    size = 0
    for g in groups:
        if out and size + len(g) <= rows:
            out[-1].append(g)
            size += len(g)
        else:
            out.append([g])
            size = len(g)
    return out


def cache_keyword(model: torch.nn.Module) -> str | None:
    """The forward's name for the key/value cache (``cache`` in transformers 5,
    ``past_key_values`` before), or None when it takes no cache or no ``position_ids``."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model: its base's forward
    params = inspect.signature(inner.forward).parameters
    if "position_ids" not in params:
        return None
    return next((k for k in ("cache", "past_key_values") if k in params), None)


def _score_on_cache(model: torch.nn.Module, cache: object, cache_kw: str, last: torch.Tensor,
                    past_mask: torch.Tensor, ctx_len: torch.Tensor, owner: torch.Tensor,
                    conts: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Score continuations on an encoded context batch's key/value cache.

    Args:
        cache: the context pass's cache; expanded in place to one row per continuation.
        last: ``(contexts, vocab)`` logits at each context's last token (they predict token 0).
        past_mask: ``(contexts, width)`` attention mask of the cached positions (0 where a
            continuation must not look: padding, or tokens after the context).
        ctx_len: ``(contexts,)`` context lengths: the position id of each continuation's token 0.
        owner: ``(continuations,)`` the context row of each continuation.
        conts: the continuation token ids.

    Returns:
        Per continuation: the log-probability sum, the token count, the correct-argmax count.
    """
    device = last.device
    cwidth = max(len(c) for c in conts)
    cids = torch.full((len(conts), cwidth), pad_id, dtype=torch.long)
    cmask = torch.zeros((len(conts), cwidth), dtype=torch.long)
    for row, c in enumerate(conts):
        cids[row, : len(c)] = torch.tensor(c)
        cmask[row, : len(c)] = 1
    cids, cmask = cids.to(device), cmask.to(device)
    cache.reorder_cache(owner)  # type: ignore[attr-defined]  # one copy of its context per continuation
    cpos = ctx_len[owner][:, None] + torch.arange(cwidth, device=device)[None, :]
    logits = model(input_ids=cids, attention_mask=torch.cat([past_mask[owner], cmask], dim=1), position_ids=cpos,
                   use_cache=True, **{cache_kw: cache}).logits
    # token 0 is predicted by the context's last position, token j by continuation position j-1
    logits = torch.cat([last[owner].unsqueeze(1).float(), logits[:, :-1].float()], dim=1)
    sel = cmask.bool()
    tok_lp = logits.gather(-1, cids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    ok = (logits.argmax(-1) == cids) & sel
    return (tok_lp * sel).sum(-1).double(), sel.sum(-1), ok.sum(-1)


def _shared_batch(model: torch.nn.Module, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                  groups: list[list[int]], pad_id: int, device: torch.device, cache_kw: str
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch: the contexts left-padded and encoded once, then every continuation scored on
    the cache expanded over its group's rows (rows in the order of ``groups``)."""
    ctxs = [list(pairs[g[0]][0]) for g in groups]
    width = max(len(c) for c in ctxs)
    ids = torch.full((len(ctxs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ctxs), width), dtype=torch.long)
    for row, c in enumerate(ctxs):  # left padding: every context ends in the last column
        ids[row, width - len(c):] = torch.tensor(c)
        mask[row, width - len(c):] = 1
    ids, mask = ids.to(device), mask.to(device)
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    out = model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True, logits_to_keep=1)
    owner = torch.tensor([k for k, g in enumerate(groups) for _ in g], device=device)
    return _score_on_cache(model, getattr(out, cache_kw), cache_kw, out.logits[:, -1], mask, mask.sum(-1), owner,
                           [list(pairs[i][1]) for g in groups for i in g], pad_id)


@torch.inference_mode()
def score_shared_context(
    model: torch.nn.Module,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_size: int = 32,
    pad_id: int = 0,
) -> Scores:
    """:func:`score_continuations` for pairs sharing contexts, each context encoded once.

    Pairs with identical context ids (e.g. the options of one multiple-choice question) form
    a group; a batch encodes its groups' contexts (left-padded, position ids from the
    attention mask), expands the key/value cache over the continuations, and scores them all
    in a second pass. Equal to :func:`score_continuations` up to float rounding; for a model
    whose forward takes no ``position_ids`` / ``past_key_values`` it falls back to it.

    Args:
        model: a causal LM returning ``.logits`` and ``.past_key_values``.
        pairs: ``(context_ids, continuation_ids)``, both non-empty.
        batch_size: continuations per forward pass (groups are never split).
        pad_id: id used for padding (masked out by the attention mask).

    Returns:
        :class:`Scores` in the order of ``pairs`` (no first-token distributions).
    """
    n = len(pairs)
    logprob = np.zeros(n, dtype=np.float64)
    n_tok = np.zeros(n, dtype=np.int64)
    n_ok = np.zeros(n, dtype=np.int64)
    groups = _context_groups(pairs)
    cache_kw = cache_keyword(model)
    if cache_kw is None:  # no position ids / no cache in this model's forward
        return score_continuations(model, pairs, batch_size, pad_id)
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    try:
        for chunk in _chunks(groups, max(1, batch_size)):
            lp, nt, nc = _shared_batch(model, pairs, chunk, pad_id, device, cache_kw)
            idx = [i for g in chunk for i in g]
            logprob[idx], n_tok[idx], n_ok[idx] = lp.cpu().numpy(), nt.cpu().numpy(), nc.cpu().numpy()
    finally:
        if was_training:
            model.train()
    return Scores(logprob=logprob, n_tokens=n_tok, n_correct=n_ok)


def option_probabilities(option_logprobs: np.ndarray) -> np.ndarray:
    """Softmax over options of their sequence log-probabilities (rows = questions).

    Column 0 is conventionally the gold answer; rows may hold ``-inf`` for absent options.
    """
    lp = np.asarray(option_logprobs, dtype=np.float64)
    lp = lp - lp.max(axis=1, keepdims=True)
    p = np.exp(lp)
    return p / p.sum(axis=1, keepdims=True)
