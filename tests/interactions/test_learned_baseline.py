"""Learned baseline: it lowers the disjoint-subset interaction objective."""

from __future__ import annotations

import numpy as np
import torch
from interactions_helpers import PROMPT

from ilpnb.interactions import (
    BaselineConfig,
    ValueFunction,
    encode_prompt,
    fit_baseline,
    mean_embedding,
    sample_triples,
    word_players,
)


def test_sample_triples_are_disjoint_unions() -> None:
    masks = sample_triples(6, 50, np.random.default_rng(0))
    full, s13, s23, s3 = masks[:, 0], masks[:, 1], masks[:, 2], masks[:, 3]
    s1, s2 = s13 & ~s3, s23 & ~s3
    assert s1.any(axis=1).all() and s2.any(axis=1).all()
    assert not (s1 & s2).any()
    assert np.array_equal(full, s1 | s2 | s3)


def test_learned_baseline_reduces_objective(llama, chat_tokenizer) -> None:
    enc = encode_prompt(chat_tokenizer, PROMPT)
    vf = ValueFunction(llama, enc, word_players(enc), baseline="learned", batch_size=64)
    assert torch.equal(vf.baseline[0], mean_embedding(llama))
    before = [p.detach().clone() for p in llama.parameters()]
    flags = [p.requires_grad for p in llama.parameters()]
    fit = fit_baseline(vf, BaselineConfig(steps=40, triples=8, eval_triples=32, seed=0))
    assert fit.final < 0.8 * fit.initial, (fit.initial, fit.final)
    assert fit.baseline.shape == vf.baseline.shape and len(fit.history) == 40
    assert all(torch.equal(a, b) for a, b in zip(before, llama.parameters()))
    assert [p.requires_grad for p in llama.parameters()] == flags
    radius = llama.get_input_embeddings().weight.norm(dim=1).mean()
    assert ((fit.baseline - mean_embedding(llama)).norm(dim=1) <= radius * 1.0001).all()


def test_shared_baseline(llama, chat_tokenizer) -> None:
    enc = encode_prompt(chat_tokenizer, PROMPT)
    vf = ValueFunction(llama, enc, word_players(enc), baseline="mean", batch_size=64)
    fit = fit_baseline(vf, steps=3, shared=True, eval_triples=4)
    assert torch.equal(fit.baseline[0], fit.baseline[-1])
    assert fit.config["shared"] is True
