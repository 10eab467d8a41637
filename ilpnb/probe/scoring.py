"""Teacher-forced scoring of continuations: one forward pass per batch, no generation.

Given pairs of token ids (context, continuation), :func:`score_continuations` returns per
pair the continuation's log-probability, token accuracy and whether greedy decoding would
reproduce it exactly (every teacher-forced argmax equals the target token), optionally with
the full predictive distribution at the first continuation token. This is the measuring
instrument of the knowledge probes and of per-sample SFT tracking.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Scores", "score_continuations", "option_probabilities"]


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


def option_probabilities(option_logprobs: np.ndarray) -> np.ndarray:
    """Softmax over options of their sequence log-probabilities (rows = questions).

    Column 0 is conventionally the gold answer; rows may hold ``-inf`` for absent options.
    """
    lp = np.asarray(option_logprobs, dtype=np.float64)
    lp = lp - lp.max(axis=1, keepdims=True)
    p = np.exp(lp)
    return p / p.sum(axis=1, keepdims=True)
