"""Shared-context option scoring (one encoding of the prompt, its key/value cache reused for
every option) equals scoring each (prompt, option) pair on its own, on the tiny models of
every architecture the world uses."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ilpnb.config import ModelConfig
from ilpnb.models.tiny import build_tiny_model
from ilpnb.probe import scoring
from ilpnb.probe.scoring import score_continuations, score_shared_context


class _Vocab:
    """The few tokenizer attributes a tiny model's config reads."""

    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self) -> int:
        return 97


def _pairs(seed: int) -> list[tuple[list[int], list[int]]]:
    """Questions with prompts of different lengths, each with 1-4 options of different lengths
    (plus one prompt that is a prefix of another: a different context, never merged)."""
    rng = np.random.default_rng(seed)
    pairs = []
    prompts = [rng.integers(3, 97, size=int(n)).tolist() for n in (3, 9, 5, 14, 1)]
    prompts.append(prompts[1][:6])
    for prompt in prompts:
        for _ in range(int(rng.integers(1, 5))):
            pairs.append((prompt, rng.integers(3, 97, size=int(rng.integers(1, 7))).tolist()))
    order = rng.permutation(len(pairs))  # the options of one question need not be adjacent
    return [pairs[i] for i in order]


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt_neox"])
@pytest.mark.parametrize("batch_size", [3, 64])
def test_shared_context_scores_equal_unshared(arch: str, batch_size: int) -> None:
    torch.set_num_threads(1)
    model = build_tiny_model(ModelConfig(arch=arch, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                                         max_length=64), _Vocab(), seed=3)
    with torch.no_grad():  # sharper distributions than the initialisation's, so argmax matches are not all ties
        for param in model.parameters():
            param.mul_(4.0)
    pairs = _pairs(7)
    ref = score_continuations(model, pairs, batch_size=4, pad_id=0)
    got = score_shared_context(model, pairs, batch_size=batch_size, pad_id=0)
    assert np.abs(ref.logprob).min() > 1.0  # the numbers compared are not trivial
    np.testing.assert_allclose(got.logprob, ref.logprob, atol=1e-5, rtol=1e-6)
    assert got.n_tokens.tolist() == ref.n_tokens.tolist() == [len(c) for _, c in pairs]
    assert got.n_correct.tolist() == ref.n_correct.tolist()


def test_shared_context_restores_training_mode_and_rejects_empty_parts() -> None:
    model = build_tiny_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
                                         max_length=32), _Vocab())
    model.train()
    score_shared_context(model, [([5, 6], [7])], pad_id=0)
    assert model.training
    with pytest.raises(ValueError, match="pair 1: empty context"):
        score_shared_context(model, [([5], [6]), ([], [7])])
    with pytest.raises(ValueError, match="pair 0: empty continuation"):
        score_shared_context(model, [([5], [])])


def test_the_cache_is_really_shared() -> None:
    """Each distinct context goes through the model once (not once per option)."""
    model = build_tiny_model(ModelConfig(hidden_size=32, num_layers=1, num_heads=4, intermediate_size=64,
                                         max_length=32), _Vocab())
    seen: list[tuple[int, int]] = []
    model.register_forward_pre_hook(lambda _m, _a, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    pairs = [([5, 6, 7], [8, 9]), ([5, 6, 7], [10]), ([4, 5], [11, 12, 13]), ([5, 6, 7], [14])]
    score_shared_context(model, pairs, batch_size=64, pad_id=0)
    assert seen == [(2, 3), (4, 3)]  # 2 contexts (width 3), then the 4 continuations (width 3)


@pytest.mark.parametrize(("arch", "budget"), [("llama", None), ("qwen2", None), ("gpt_neox", None), ("llama", 1)])
def test_followers_on_the_main_pass_cache_equal_unshared(arch: str, budget: int | None,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """Distractors scored on the cache of the gold answer's own pass (the gold tokens masked
    out) equal each (prompt, distractor) pair scored alone; the main scores are unchanged.
    ``budget`` 1: a pass per batch-sized piece of followers, each on a copy of the cache."""
    if budget is not None:
        monkeypatch.setattr(scoring, "FOLLOWER_TOKENS", budget)
    model = build_tiny_model(ModelConfig(arch=arch, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                                         max_length=64), _Vocab(), seed=5)
    with torch.no_grad():
        for param in model.parameters():
            param.mul_(4.0)
    rng = np.random.default_rng(11)
    gold = [(rng.integers(3, 97, size=int(n)).tolist(), rng.integers(3, 97, size=int(m)).tolist())
            for n, m in ((4, 3), (12, 6), (2, 1), (7, 9), (5, 2))]
    followers = [[rng.integers(3, 97, size=int(rng.integers(1, 8))).tolist() for _ in range(k)]
                 for k in (3, 0, 2, 1, 4)]
    plain = score_continuations(model, gold, batch_size=2, pad_id=0, first_logprobs=True)
    got = score_continuations(model, gold, batch_size=2, pad_id=0, first_logprobs=True, followers=followers)
    np.testing.assert_allclose(got.logprob, plain.logprob, atol=1e-6)
    np.testing.assert_allclose(got.first_logprobs, plain.first_logprobs, atol=1e-6)
    flat = [(ctx, f) for (ctx, _), fs in zip(gold, followers) for f in fs]
    ref = score_continuations(model, flat, batch_size=3, pad_id=0)
    assert got.followers is not None and [len(f.logprob) for f in got.followers] == [3, 0, 2, 1, 4]
    np.testing.assert_allclose(np.concatenate([f.logprob for f in got.followers]), ref.logprob, atol=1e-5, rtol=1e-6)
    assert np.concatenate([f.n_correct for f in got.followers]).tolist() == ref.n_correct.tolist()
    with pytest.raises(ValueError, match="one list per pair"):
        score_continuations(model, gold, followers=followers[:2])
