"""The shared-prefix key/value cache of the value function gives the bare forward's values."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from interactions_helpers import PROMPT

from ilpnb.interactions import Player, ValueFunction, encode_prompt, keep_matrix, word_players

RESPONSE = "paris is the answer"


def _pair(model, tok, players=None, **kw) -> tuple[ValueFunction, ValueFunction]:
    """The same value function with and without the prefix cache."""
    enc = encode_prompt(tok, PROMPT)
    players = word_players(enc) if players is None else players
    cached = ValueFunction(model, enc, players, tokenizer=tok, **kw)
    bare = ValueFunction(model, enc, players, tokenizer=tok, prefix_cache=False, **kw)
    return cached, bare


def _first_player_token(vf: ValueFunction) -> int:
    return min(t for p in vf.players for t in p.tokens)


def _capture(model):
    seen: list[torch.Tensor] = []

    def hook(_mod, _args, kwargs):
        seen.append(kwargs["inputs_embeds"].detach().clone())

    return seen, model.register_forward_pre_hook(hook, with_kwargs=True)


@pytest.mark.parametrize("target", [None, RESPONSE], ids=["greedy", "response"])
@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_cached_values_equal_bare(arch, target, request, chat_tokenizer) -> None:
    model = request.getfixturevalue(arch)
    cached, bare = _pair(model, chat_tokenizer, target=target, baseline="mean", batch_size=7)
    assert cached.prefix_len == _first_player_token(cached) > 0
    assert bare.prefix_len == 0
    assert cached.target == bare.target
    v_cached, v_bare = cached.all_subsets(), bare.all_subsets()
    assert np.ptp(v_bare) > 0.1  # the masks matter, so equal values are not trivially equal
    np.testing.assert_allclose(v_cached, v_bare, rtol=0, atol=1e-5)


@pytest.mark.parametrize("target", [None, RESPONSE], ids=["greedy", "response"])
def test_cached_values_equal_bare_in_float64(llama, chat_tokenizer, target) -> None:
    model = copy.deepcopy(llama).double()
    cached, bare = _pair(model, chat_tokenizer, target=target, batch_size=100)
    np.testing.assert_allclose(cached.all_subsets(), bare.all_subsets(), rtol=0, atol=1e-10)


@pytest.mark.parametrize("batch_size", [1, 3, 100, 300])
def test_batch_sizes_not_dividing_2n(qwen2, chat_tokenizer, batch_size: int) -> None:
    cached, bare = _pair(qwen2, chat_tokenizer, target=RESPONSE, batch_size=batch_size)
    assert (1 << cached.n_players) % 3 and (1 << cached.n_players) % 100
    np.testing.assert_allclose(cached.all_subsets(), bare.all_subsets(), rtol=0, atol=1e-5)
    rows = keep_matrix(cached.n_players, 5, 16)  # __call__ on any rows, not only all subsets
    np.testing.assert_allclose(cached(rows), bare(rows), rtol=0, atol=1e-5)


def test_only_the_rest_is_fed_per_batch(llama, chat_tokenizer) -> None:
    cached, bare = _pair(llama, chat_tokenizer, target=RESPONSE, batch_size=50)
    p, n, total = cached.prefix_len, cached.n_players, 1 << cached.n_players
    seen, handle = _capture(llama)
    try:
        cached.all_subsets()
    finally:
        handle.remove()
    assert [e.shape[0] for e in seen] == [min(50, total - a) for a in range(0, total, 50)]
    assert {e.shape[1] for e in seen} == {cached.embeds.shape[0] - p}
    fed = torch.cat(seen)
    for m in (0, 1, total // 3, total - 1):
        for t in range(p, cached.embeds.shape[0]):
            owner = int(cached.owner[t])
            masked = owner >= 0 and not (m >> owner) & 1
            expected = cached.baseline[owner] if masked else cached.embeds[t]
            assert torch.equal(fed[m, t - p], expected), (m, t)
    assert n == bare.n_players


def test_no_prefix_takes_the_bare_path(llama, tokenizer) -> None:
    enc = encode_prompt(tokenizer, PROMPT)
    players = [Player("<bos>", (), (0, 0), (0,))] + word_players(enc)[:6]
    cached, bare = _pair(llama, tokenizer, players=players, batch_size=23)
    assert cached.prefix_len == 0 and cached.prefix_cache
    seen, handle = _capture(llama)
    try:
        v_cached = cached.all_subsets()
    finally:
        handle.remove()
    assert {e.shape[1] for e in seen} == {enc.seq_len}
    np.testing.assert_allclose(v_cached, bare.all_subsets(), rtol=0, atol=1e-6)


def test_gradient_through_the_baseline_matches(llama, chat_tokenizer) -> None:
    """The baseline fit differentiates ``evaluate``; the cached prefix is a constant there."""
    model = copy.deepcopy(llama).double()  # float64: the gradients reach ~10, float32 rounding ~1e-3
    cached, bare = _pair(model, chat_tokenizer, batch_size=16)
    keep = torch.from_numpy(keep_matrix(cached.n_players, 0, 16))
    grads = []
    for vf in (cached, bare):
        base = vf.baseline.clone().requires_grad_(True)
        vf.evaluate(keep, base).sum().backward()
        grads.append(base.grad)
    assert grads[0].abs().max() > 0
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-9, atol=1e-9)


class _NoCacheLM(torch.nn.Module):
    """A causal LM whose forward takes no cache argument."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def get_input_embeddings(self) -> torch.nn.Module:
        return self.inner.get_input_embeddings()

    def forward(self, inputs_embeds: torch.Tensor, use_cache: bool = False):
        return self.inner(inputs_embeds=inputs_embeds, use_cache=False)


def test_model_without_cache_falls_back(qwen2, chat_tokenizer) -> None:
    wrapped = _NoCacheLM(qwen2)
    cached, _ = _pair(wrapped, chat_tokenizer, batch_size=40)
    assert cached.prefix_len == 0
    _, reference = _pair(qwen2, chat_tokenizer, batch_size=40)
    np.testing.assert_allclose(cached.all_subsets(), reference.all_subsets(), rtol=0, atol=1e-5)
