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

import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Scores", "score_continuations", "score_shared_context", "option_probabilities"]


@dataclass
class Scores:
    """Per-pair results of :func:`score_continuations` (arrays in input order).

    Attributes:
        logprob: summed log-probability of the continuation tokens.
        n_tokens: continuation length in tokens.
        n_correct: continuation tokens whose teacher-forced argmax is the target.
        first_logprobs: ``(n, vocab)`` log-probabilities at the first continuation token,
            or None when not asked for.
    """

    logprob: np.ndarray
    n_tokens: np.ndarray
    n_correct: np.ndarray
    first_logprobs: np.ndarray | None = None

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


def _logits_from(model: torch.nn.Module, ids: torch.Tensor, mask: torch.Tensor, start: int) -> torch.Tensor:
    """Logits at positions ``start ..`` only: the output layer (a vocabulary-wide matmul) is
    applied to the positions that predict a continuation token, not to the context (models
    that do not take ``logits_to_keep`` compute them all and are sliced)."""
    keep = ids.shape[1] - start
    if start > 0:
        try:
            return model(input_ids=ids, attention_mask=mask, logits_to_keep=keep).logits[:, -keep:]
        except TypeError:  # a model without ``logits_to_keep``
            pass
    return model(input_ids=ids, attention_mask=mask).logits[:, start:]


@torch.inference_mode()
def score_continuations(
    model: torch.nn.Module,
    pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
    batch_size: int = 32,
    pad_id: int = 0,
    first_logprobs: bool = False,
) -> Scores:
    """Score continuations with one teacher-forced forward pass per batch.

    Args:
        model: a causal LM returning ``.logits``.
        pairs: ``(context_ids, continuation_ids)``; the context must be non-empty.
        batch_size: pairs per forward pass (pairs are sorted by length to pad little).
        pad_id: id used for right padding (masked out by the attention mask).
        first_logprobs: also return the log-distribution at the first continuation token.

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
    order = sorted(range(n), key=lambda i: len(pairs[i][0]) + len(pairs[i][1]))
    for start in range(0, n, batch_size):
        idx = order[start : start + batch_size]
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
        logits = _logits_from(model, ids, mask, lo)[:, :-1].float()  # positions lo .. width-2
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
    if was_training:
        model.train()
    return Scores(logprob=logprob, n_tokens=n_tok, n_correct=n_ok, first_logprobs=first)


def _context_groups(pairs: Sequence[tuple[Sequence[int], Sequence[int]]]) -> list[list[int]]:
    """Indices of the pairs grouped by identical context, groups sorted by context length."""
    by: dict[tuple[int, ...], list[int]] = {}
    for i, (ctx, cont) in enumerate(pairs):
        if len(ctx) == 0:
            raise ValueError(f"pair {i}: empty context; a continuation needs at least one token before it")
        if len(cont) == 0:
            raise ValueError(f"pair {i}: empty continuation; there is nothing to score")
        by.setdefault(tuple(ctx), []).append(i)
    return sorted(by.values(), key=lambda g: (len(pairs[g[0]][0]), max(len(pairs[i][1]) for i in g)))


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


def _cache_keyword(model: torch.nn.Module) -> str | None:
    """The forward's name for the key/value cache (``cache`` in transformers 5,
    ``past_key_values`` before), or None when it takes no cache or no ``position_ids``."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a peft model: its base's forward
    params = inspect.signature(inner.forward).parameters
    if "position_ids" not in params:
        return None
    return next((k for k in ("cache", "past_key_values") if k in params), None)


def _shared_batch(model: torch.nn.Module, pairs: Sequence[tuple[Sequence[int], Sequence[int]]],
                  groups: list[list[int]], pad_id: int, device: torch.device, cache_kw: str
                  ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One batch: the contexts left-padded and encoded once, then every continuation scored on
    the cache expanded over its group's rows. Returns per continuation row the log-probability
    sum, the token count and the correct-argmax count (rows in the order of ``groups``)."""
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
    last, cache = out.logits[:, -1].float(), getattr(out, cache_kw)
    owner = torch.tensor([k for k, g in enumerate(groups) for _ in g], device=device)
    conts = [list(pairs[i][1]) for g in groups for i in g]
    cwidth = max(len(c) for c in conts)
    cids = torch.full((len(conts), cwidth), pad_id, dtype=torch.long)
    cmask = torch.zeros((len(conts), cwidth), dtype=torch.long)
    for row, c in enumerate(conts):
        cids[row, : len(c)] = torch.tensor(c)
        cmask[row, : len(c)] = 1
    cids, cmask = cids.to(device), cmask.to(device)
    cache.reorder_cache(owner)  # one copy of its context's keys and values per continuation
    lengths = mask.sum(-1)[owner]
    cpos = lengths[:, None] + torch.arange(cwidth, device=device)[None, :]
    logits = model(input_ids=cids, attention_mask=torch.cat([mask[owner], cmask], dim=1), position_ids=cpos,
                   use_cache=True, **{cache_kw: cache}).logits.float()
    # token 0 is predicted by the context's last position, token j by continuation position j-1
    logits = torch.cat([last[owner].unsqueeze(1), logits[:, :-1]], dim=1)
    sel = cmask.bool()
    tok_lp = logits.gather(-1, cids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)
    ok = (logits.argmax(-1) == cids) & sel
    return (tok_lp * sel).sum(-1).double(), sel.sum(-1), ok.sum(-1)


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
    cache_kw = _cache_keyword(model)
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
