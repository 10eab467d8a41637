"""Cheaper batches of teacher-forced scoring that score as the plain ones do: cut where padding
would cost a big model on a CPU (never where it would not), and a prefix common to a batch
encoded once."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ilpnb.config import ModelConfig
from ilpnb.models.tiny import build_tiny_model
from ilpnb.probe import scoring
from ilpnb.probe.scoring import PAD_SLACK, free_positions, length_batches, score_continuations


class _Vocab:
    bos_token_id, eos_token_id, pad_token_id = 1, 2, 0

    def __len__(self) -> int:
        return 97


def _tiny(arch: str = "llama", seed: int = 5, sharp: bool = False) -> torch.nn.Module:
    """A tiny model; ``sharp``: weights scaled up, so argmax matches are not all ties."""
    model = build_tiny_model(ModelConfig(arch=arch, hidden_size=32, num_layers=2, num_heads=4, intermediate_size=64,
                                         max_length=96), _Vocab(), seed=seed)
    if sharp:
        with torch.no_grad():
            for param in model.parameters():
                param.mul_(4.0)
    return model


def test_batches_cover_every_item_once_in_order_and_respect_the_size() -> None:
    lengths = [10, 11, 12, 30, 31, 90, 91, 92, 93, 200]
    batches = length_batches(lengths, 4, items=list("abcdefghij"), free=0.0)
    assert [x for b in batches for x in b] == list("abcdefghij")
    assert max(len(b) for b in batches) <= 4
    at = 0
    for b in batches:  # every batch padded to its longest stays within the slack (or is one item)
        ls = lengths[at:at + len(b)]
        assert len(b) == 1 or len(b) * max(ls) <= PAD_SLACK * sum(ls)
        at += len(b)
    # the long tail is cut off the short head: 10-12 never share a batch with 90+
    assert any(b[-1] == "c" or b[-1] == "e" for b in batches)
    assert not any("a" in b and "f" in b for b in batches)


def test_no_cut_below_the_free_positions_and_none_on_unbounded() -> None:
    lengths = [5, 50, 51, 52]
    assert length_batches(lengths, 64, free=4 * 52) == [[0, 1, 2, 3]]  # 208 padded positions are free
    # greedy: 5, 50, 51 pad to 153 (free); the 52 would make 208 > 207 and > 1.25 x 158 real tokens
    assert length_batches(lengths, 64, free=4 * 52 - 1) == [[0, 1, 2], [3]]
    assert length_batches(lengths, 64, free=float("inf")) == [[0, 1, 2, 3]]
    assert length_batches([], 8) == []
    with pytest.raises(ValueError, match="3 lengths for 2 items"):
        length_batches([1, 2, 3], 8, items=[0, 1])


def test_the_world_tiny_model_is_never_cut_on_a_cpu() -> None:
    # a 0.1M-parameter model: 64 rows of the world's longest (42 tokens) are far below its free positions
    assert free_positions(_tiny()) > 64 * 96


def test_scores_do_not_depend_on_the_cuts(monkeypatch: pytest.MonkeyPatch) -> None:
    torch.set_num_threads(1)
    model = _tiny(sharp=True)
    rng = np.random.default_rng(0)
    pairs = [(rng.integers(3, 97, size=int(rng.integers(1, 30))).tolist(),
              rng.integers(3, 97, size=int(rng.integers(1, 40))).tolist()) for _ in range(23)]
    followers = [[rng.integers(3, 97, size=int(rng.integers(1, 50))).tolist() for _ in range(int(rng.integers(0, 4)))]
                 for _ in pairs]
    whole = score_continuations(model, pairs, 64, 0, first_logprobs=True, followers=followers)
    cuts: list[int] = []
    real = scoring.length_batches

    def counted(*args, **kwargs):
        out = real(*args, **kwargs)
        cuts.append(len(out))
        return out

    monkeypatch.setattr(scoring, "free_positions", lambda m: 0.0)  # as a big model on a CPU: cut on padding
    monkeypatch.setattr(scoring, "length_batches", counted)
    cut = score_continuations(model, pairs, 64, 0, first_logprobs=True, followers=followers)
    assert cuts[0] > 1  # the pairs were really split into several batches
    np.testing.assert_allclose(cut.logprob, whole.logprob, atol=1e-5, rtol=1e-6)
    assert cut.n_correct.tolist() == whole.n_correct.tolist()
    np.testing.assert_allclose(cut.first_logprobs, whole.first_logprobs, atol=1e-5)
    for a, b in zip(cut.followers, whole.followers):
        np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-5, rtol=1e-6)
        assert a.n_correct.tolist() == b.n_correct.tolist()


@pytest.mark.parametrize("arch", ["llama", "qwen2"])
def test_a_shared_prefix_encoded_once_scores_as_every_row_alone(arch: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sequences that all start with the same tokens (a chat template's system prompt): the
    prefix encoded once and its cache repeated over the batch gives the scores, first-token
    distributions and follower scores of every row encoded whole."""
    torch.set_num_threads(1)
    model = _tiny(arch, seed=2, sharp=True)
    rng = np.random.default_rng(3)
    head = rng.integers(3, 97, size=11).tolist()
    pairs = [(head + rng.integers(3, 97, size=int(rng.integers(1, 9))).tolist(),
              rng.integers(3, 97, size=int(rng.integers(1, 12))).tolist()) for _ in range(9)]
    followers = [[rng.integers(3, 97, size=int(rng.integers(1, 8))).tolist() for _ in range(2)] for _ in pairs]
    monkeypatch.setattr(scoring, "free_positions", lambda m: 0.0)  # as a big model on a CPU
    monkeypatch.setattr(scoring, "SHARE_PREFIX", False)
    whole = score_continuations(model, pairs, 64, 0, first_logprobs=True, followers=followers)
    monkeypatch.setattr(scoring, "SHARE_PREFIX", True)
    seen: list[int] = []
    real = scoring._shared_prefix
    monkeypatch.setattr(scoring, "_shared_prefix", lambda *a: seen.append(real(*a)) or seen[-1])
    shared = score_continuations(model, pairs, 64, 0, first_logprobs=True, followers=followers)
    assert seen and max(seen) >= 11  # the batches of several rows shared at least the common head
    np.testing.assert_allclose(shared.logprob, whole.logprob, atol=1e-5, rtol=1e-6)
    assert shared.n_correct.tolist() == whole.n_correct.tolist()
    np.testing.assert_allclose(shared.first_logprobs, whole.first_logprobs, atol=1e-5)
    for a, b in zip(shared.followers, whole.followers):
        np.testing.assert_allclose(a.logprob, b.logprob, atol=1e-5, rtol=1e-6)
        assert a.n_correct.tolist() == b.n_correct.tolist()


def test_no_prefix_is_shared_where_it_saves_nothing() -> None:
    model = _tiny()
    free, kw = free_positions(model), scoring.cache_keyword(model)
    seqs = [[5, 6, 7, 8, 9, 10, 1], [5, 6, 7, 8, 9, 10, 2]]
    assert scoring._shared_prefix(seqs, 6, free, kw) == 0  # a tiny model: the positions saved are free
    assert scoring._shared_prefix(seqs, 6, 0.0, kw) == 6  # the same rows where positions cost
    assert scoring._shared_prefix(seqs, 6, 0.0, None) == 0  # a model without a cache keyword
    assert scoring._shared_prefix([[5, 6, 7, 8, 9]], 4, 0.0, kw) == 0  # one row
