"""Masking through inputs_embeds and the value function v(S)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from interactions_helpers import PROMPT

from ilpnb.interactions import (
    InteractionInputError,
    ValueFunction,
    auto_batch_size,
    encode_prompt,
    keep_matrix,
    log_odds,
    mean_embedding,
    resolve_baseline,
    word_players,
)

MULTI = "tell me about paris, france!"  # words of 1 or 2 tokens


def _vf(model, tok, prompt=PROMPT, **kw) -> ValueFunction:
    enc = encode_prompt(tok, prompt)
    return ValueFunction(model, enc, word_players(enc), tokenizer=tok, **kw)


def _capture(model):
    seen: list[torch.Tensor] = []

    def hook(_mod, _args, kwargs):
        seen.append(kwargs["inputs_embeds"].detach().clone())

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("baseline", ["zero", "mean"])
def test_masking_changes_only_masked_spans(llama, chat_tokenizer, baseline: str) -> None:
    # the bare path feeds whole sequences (test_prefix_cache.py checks the cached one)
    vf = _vf(llama, chat_tokenizer, MULTI, baseline=baseline, batch_size=64, prefix_cache=False)
    n = vf.n_players
    full = vf.embeds
    base = torch.zeros(full.shape[1]) if baseline == "zero" else mean_embedding(llama)
    seen, handle = _capture(llama)
    try:
        vf(keep_matrix(n))
    finally:
        handle.remove()
    embeds = torch.cat(seen)
    assert embeds.shape == (1 << n, full.shape[0], full.shape[1])
    for m in range(1 << n):
        for t in range(full.shape[0]):
            owner = next((i for i, p in enumerate(vf.players) if t in p.tokens), -1)
            masked = owner >= 0 and not (m >> owner) & 1
            expected = base if masked else full[t]
            assert torch.equal(embeds[m, t], expected), (m, t)
    assert sum(len(p.tokens) for p in vf.players) == 7  # 5 words, two of 2 tokens


def test_resolve_baseline_shapes(llama) -> None:
    d = llama.config.hidden_size
    assert resolve_baseline(llama, "zero", 3).shape == (3, d)
    vec = torch.randn(d)
    assert torch.equal(resolve_baseline(llama, vec, 2)[1], vec)
    per = np.random.default_rng(0).normal(size=(2, d)).astype(np.float32)
    assert torch.allclose(resolve_baseline(llama, per, 2), torch.from_numpy(per))
    with pytest.raises(InteractionInputError, match="shape"):
        resolve_baseline(llama, torch.zeros(d + 1), 2)
    with pytest.raises(InteractionInputError, match="unknown baseline"):
        resolve_baseline(llama, "ones", 2)


def test_log_odds_is_stable_and_exact() -> None:
    logits = torch.tensor([[2.0, -1.0, 0.5], [40.0, -40.0, 0.0]], dtype=torch.float64)
    target = torch.tensor([0, 0])
    p = torch.softmax(logits, -1)[:, 0]
    naive = torch.log(p) - torch.log1p(-p)
    out = log_odds(logits, target)
    assert torch.allclose(out[0], naive[0], atol=1e-12)
    assert torch.isfinite(out).all() and abs(float(out[1]) - 40.0) < 1e-9  # p ~ 1 - 4e-18


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_full_coalition_matches_plain_forward(arch, request, tokenizer) -> None:
    model = request.getfixturevalue(arch)
    vf = _vf(model, tokenizer)
    ids = torch.tensor([vf.encoding.input_ids])
    with torch.no_grad():
        logits = model(input_ids=ids).logits[0, -1].double()
    tid = int(logits.argmax())
    assert vf.target.token_ids == (tid,) and vf.target.kind == "greedy"
    lp = torch.log_softmax(logits, -1)[tid]
    expected = float(lp - torch.log1p(-lp.exp()))
    v = vf(np.ones((1, vf.n_players), dtype=bool))
    assert abs(v[0] - expected) < 1e-4


def test_batch_size_does_not_change_v(llama, chat_tokenizer) -> None:
    ref = _vf(llama, chat_tokenizer, MULTI, batch_size=32).all_subsets()
    for bs in (1, 3, 20):
        out = _vf(llama, chat_tokenizer, MULTI, batch_size=bs).all_subsets()
        np.testing.assert_allclose(out, ref, atol=1e-5)
    auto = _vf(llama, chat_tokenizer, MULTI, memory_budget=2 * 10**5)
    assert 1 < auto.batch_size < 32
    np.testing.assert_allclose(auto.all_subsets(), ref, atol=1e-5)


def test_batches_are_bounded(llama, chat_tokenizer) -> None:
    vf = _vf(llama, chat_tokenizer, batch_size=24)
    seen, handle = _capture(llama)
    try:
        vf.all_subsets()
    finally:
        handle.remove()
    assert max(e.shape[0] for e in seen) == 24
    assert sum(e.shape[0] for e in seen) == 1 << vf.n_players


def test_response_target_is_teacher_forced(qwen2, chat_tokenizer) -> None:
    vf = _vf(qwen2, chat_tokenizer, target="paris .")
    assert vf.target.kind == "response" and len(vf.target.token_ids) == 2
    ids = list(vf.encoding.input_ids) + list(vf.target.token_ids)
    with torch.no_grad():
        logits = qwen2(input_ids=torch.tensor([ids])).logits[0].double()
    total = 0.0
    for k, tid in enumerate(vf.target.token_ids):
        lp = torch.log_softmax(logits[len(vf.encoding.input_ids) - 1 + k], -1)[tid]
        total += float(lp - torch.log1p(-lp.exp()))
    assert abs(vf(np.ones((1, vf.n_players), dtype=bool))[0] - total) < 1e-4
    tid = _vf(qwen2, chat_tokenizer, target=17)
    assert tid.target.kind == "token" and tid.target.token_ids == (17,)
    with pytest.raises(InteractionInputError, match="no tokens"):
        _vf(qwen2, chat_tokenizer, target="")


def test_training_mode_is_restored_and_dropout_off(gpt2, tokenizer) -> None:
    gpt2.eval()
    ref = _vf(gpt2, tokenizer).all_subsets()
    gpt2.train()
    try:
        again = _vf(gpt2, tokenizer).all_subsets()
        assert gpt2.training
    finally:
        gpt2.eval()
    np.testing.assert_allclose(again, ref, atol=1e-5)


def test_auto_batch_size(llama) -> None:
    small = auto_batch_size(llama, 20, memory_budget=10**6)
    big = auto_batch_size(llama, 20, memory_budget=10**9)
    assert 1 <= small < big
    assert auto_batch_size(llama, 20, memory_budget=1) == 1
    assert auto_batch_size(llama, 200, memory_budget=10**9) < big


def test_embedding_stats_match_weights(gpt2) -> None:
    from ilpnb.interactions import embedding_stats

    mean, rms, norm = embedding_stats(gpt2, chunk=7)
    weight = gpt2.get_input_embeddings().weight.detach().double()
    assert torch.allclose(mean.double(), weight.mean(0), atol=1e-6)
    assert abs(rms - float(weight.pow(2).mean().sqrt())) < 1e-6
    assert abs(norm - float(weight.norm(dim=1).mean())) < 1e-6
