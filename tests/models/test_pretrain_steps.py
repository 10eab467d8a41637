"""The pretraining budget: epochs, raised for a corpus too small to give the fewest steps."""

from __future__ import annotations

import dataclasses
import math

from ilpnb.config import PretrainConfig, get_preset
from ilpnb.models.pretrain import base_model_key, pretrain_epochs


def test_a_small_corpus_gets_more_epochs_a_large_one_keeps_its_own() -> None:
    p = PretrainConfig(epochs=16, min_steps=2000, batch_size=8)
    assert pretrain_epochs(1257, p) == 16  # 158 steps an epoch: 2,528 steps, above the floor
    small = pretrain_epochs(205, p)  # 26 steps an epoch
    assert small == math.ceil(2000 / 26) and small * 26 >= 2000 > (small - 1) * 26
    assert pretrain_epochs(205, PretrainConfig(epochs=16, min_steps=0, batch_size=8)) == 16  # no floor


def test_the_floor_leaves_the_default_world_as_it_is_and_is_in_the_cache_key(tmp_path) -> None:
    from ilpnb.data.world import generate_world
    from ilpnb.models.pretrain import pack_documents, read_corpus
    from ilpnb.models.tokenizer import train_tokenizer

    p = get_preset("default")
    floor = dataclasses.replace(p.pretrain, min_steps=2000)
    world = generate_world(p.world, tmp_path / "world")
    docs = read_corpus(world / "pretrain.txt")
    blocks = len(pack_documents(train_tokenizer(docs, vocab_size=p.model.vocab_size), docs, p.model.max_length))
    assert pretrain_epochs(blocks, floor) == p.pretrain.epochs  # the default world trains as before
    assert pretrain_epochs(blocks // 3, floor) > p.pretrain.epochs  # a third of it is lifted
    # the floor is part of the budget the cached model's key hashes
    assert base_model_key(docs, p.model, floor) != base_model_key(docs, p.model, p.pretrain)
