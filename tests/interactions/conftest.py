"""Fixtures for the interaction tests: tiny random causal LMs and a word-level tokenizer."""

from __future__ import annotations

import pytest
import torch
from interactions_helpers import SPECIALS, WORDS, make_tokenizer
from transformers import (
    GPT2Config,
    GPT2LMHeadModel,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
    Qwen2Config,
    Qwen2ForCausalLM,
)


@pytest.fixture(scope="session")
def tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer()


@pytest.fixture(scope="session")
def chat_tokenizer() -> PreTrainedTokenizerFast:
    return make_tokenizer(chat=True)


@pytest.fixture(scope="session")
def vocab_size() -> int:
    return len(SPECIALS) + len(WORDS)


@pytest.fixture(scope="session")
def llama(vocab_size: int) -> LlamaForCausalLM:
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=128, vocab_size=vocab_size,
                      max_position_embeddings=128, initializer_range=0.2)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def qwen2(vocab_size: int) -> Qwen2ForCausalLM:
    torch.manual_seed(1)
    cfg = Qwen2Config(hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, intermediate_size=128, vocab_size=vocab_size,
                      max_position_embeddings=128, initializer_range=0.2)
    return Qwen2ForCausalLM(cfg).eval()


@pytest.fixture(scope="session")
def gpt2(vocab_size: int) -> GPT2LMHeadModel:
    torch.manual_seed(2)
    cfg = GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=vocab_size, n_positions=128,
                     initializer_range=0.2)
    return GPT2LMHeadModel(cfg).eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest single-threaded on a shared 2-core machine; restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
