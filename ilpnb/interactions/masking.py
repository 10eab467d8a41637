"""Masking: replace the token embeddings of absent players by a baseline.

A coalition is a boolean *keep* row over the players (``True`` = the word is present). The
model input for a coalition is the embedded prompt in which every token of an absent player
has its embedding replaced by that player's baseline vector; it is fed to the model through
``inputs_embeds``, so any Hugging Face causal LM works unchanged (positions, attention and
template tokens are untouched).

Baselines (one vector per player, shape ``(n, d)``; a single vector is shared by all):

* ``"zero"``: the zero vector;
* ``"mean"``: the mean of the input-embedding matrix over the vocabulary;
* ``"learned"``: fitted by :func:`ilpnb.interactions.baseline.fit_baseline` so that the
  interactions between random disjoint subsets are small; starts from ``"mean"``;
* an explicit tensor / array of shape ``(d,)`` or ``(n, d)``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from .players import InteractionInputError, Player

__all__ = [
    "BASELINES",
    "embedding_stats",
    "eval_mode",
    "frozen_parameters",
    "mask_embeddings",
    "mean_embedding",
    "resolve_baseline",
    "token_player_index",
]

BASELINES = ("zero", "mean", "learned")


def embedding_stats(model: Any, chunk: int = 4096) -> tuple[torch.Tensor, float, float]:
    """Statistics of the input embeddings over the whole vocabulary.

    The embedding layer is applied to every token id (in chunks), so models whose embedding
    module rescales its weights (e.g. by ``sqrt(d)``) are measured in the space that
    ``inputs_embeds`` lives in.

    Args:
        model: The causal LM.
        chunk: Token ids embedded at once.

    Returns:
        ``(mean vector (d,), RMS of the entries, mean L2 norm of a token embedding)``.
    """
    layer = model.get_input_embeddings()
    weight = layer.weight
    vocab = weight.shape[0]
    total = torch.zeros(weight.shape[1], dtype=torch.float64, device=weight.device)
    sq, norms = 0.0, 0.0
    with torch.no_grad():
        for a in range(0, vocab, chunk):
            ids = torch.arange(a, min(a + chunk, vocab), device=weight.device)
            e = layer(ids[None])[0].double()
            total += e.sum(0)
            sq += float(e.pow(2).sum())
            norms += float(e.norm(dim=1).sum())
    return (total / vocab).to(weight.dtype), (sq / (vocab * weight.shape[1])) ** 0.5, norms / vocab


def mean_embedding(model: Any) -> torch.Tensor:
    """Mean input embedding of a model over its vocabulary, shape ``(d,)``."""
    return embedding_stats(model)[0]


def resolve_baseline(model: Any, baseline: str | torch.Tensor | np.ndarray,
                     n_players: int) -> torch.Tensor:
    """Baseline vectors, one per player.

    Args:
        model: The causal LM (its input embeddings give the size, dtype and device).
        baseline: ``"zero"``, ``"mean"``, ``"learned"`` (its starting point, the mean
            embedding, is returned; fit it with ``fit_baseline``), or a tensor / array of
            shape ``(d,)`` or ``(n_players, d)``.
        n_players: Number of players.

    Returns:
        A tensor of shape ``(n_players, d)`` on the embedding's device and dtype.

    Raises:
        InteractionInputError: Unknown name or wrong shape.
    """
    weight = model.get_input_embeddings().weight
    d = weight.shape[1]
    if isinstance(baseline, str):
        if baseline == "zero":
            vec = torch.zeros(d, dtype=weight.dtype, device=weight.device)
        elif baseline in ("mean", "learned"):
            vec = mean_embedding(model)
        else:
            raise InteractionInputError(
                f"unknown baseline {baseline!r}; use one of {BASELINES} or a tensor")
        return vec.expand(n_players, d).clone()
    if not isinstance(baseline, torch.Tensor):
        baseline = torch.as_tensor(np.asarray(baseline))
    vec = baseline.detach().to(device=weight.device, dtype=weight.dtype)
    if vec.shape == (d,):
        return vec.expand(n_players, d).clone()
    if vec.shape == (n_players, d):
        return vec.clone()
    raise InteractionInputError(
        f"a baseline tensor must have shape ({d},) or ({n_players}, {d}), got {tuple(vec.shape)}")


def token_player_index(players: Sequence[Player], seq_len: int) -> torch.Tensor:
    """Owner of each token position: the player index, or -1 for tokens never masked.

    Args:
        players: The players (disjoint token spans).
        seq_len: Length of the model input.

    Returns:
        A long tensor of shape ``(seq_len,)``.
    """
    owner = torch.full((seq_len,), -1, dtype=torch.long)
    for i, p in enumerate(players):
        for t in p.tokens:
            if owner[t] >= 0:
                raise InteractionInputError(f"token {t} belongs to two players")
            owner[t] = i
    return owner


def mask_embeddings(embeds: torch.Tensor, owner: torch.Tensor, keep: torch.Tensor,
                    baseline: torch.Tensor) -> torch.Tensor:
    """Embeddings of a batch of coalitions.

    Args:
        embeds: Embedded model input, shape ``(L, d)``.
        owner: Output of :func:`token_player_index` (on the same device), shape ``(L,)``.
        keep: Boolean coalition rows, shape ``(B, n)`` (``True`` = player present).
        baseline: Baseline vectors, shape ``(n, d)``; gradients flow into it.

    Returns:
        Shape ``(B, L, d)``: ``embeds`` where the token's player is kept (or the token has
        no player), the player's baseline vector elsewhere.
    """
    is_player = owner >= 0
    idx = owner.clamp(min=0)
    keep_tok = torch.where(is_player[None, :], keep[:, idx], torch.ones_like(keep[:, idx]))
    base_tok = baseline[idx].to(embeds.dtype)  # (L, d)
    return torch.where(keep_tok[..., None], embeds[None], base_tok[None])


@contextmanager
def eval_mode(model: Any) -> Iterator[None]:
    """Put a model in eval mode (no dropout) for the block, then restore its mode."""
    was_training = bool(getattr(model, "training", False))
    model.eval()
    try:
        yield
    finally:
        if was_training:
            model.train()


@contextmanager
def frozen_parameters(model: Any) -> Iterator[None]:
    """Turn off ``requires_grad`` of all model parameters for the block, then restore it."""
    params = list(model.parameters())
    flags = [p.requires_grad for p in params]
    for p in params:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in zip(params, flags):
            p.requires_grad_(f)
