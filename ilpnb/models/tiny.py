"""The world's tiny base model: a small model of a real Hugging Face architecture.

:func:`build_tiny_model` makes a randomly initialised causal LM (Llama by default, Qwen2 or
GPT-NeoX for a second architecture) sized by :class:`ilpnb.config.ModelConfig`, so that the
Auto classes load it back like any model once saved with ``save_pretrained``.
"""

from __future__ import annotations

import torch
from transformers import (
    GPTNeoXConfig,
    LlamaConfig,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    Qwen2Config,
    AutoModelForCausalLM,
)

from ilpnb.config import ModelConfig

__all__ = ["ARCHS", "build_tiny_model", "tiny_model_config"]

ARCHS = ("llama", "qwen2", "gpt_neox")


def tiny_model_config(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PretrainedConfig:
    """The Hugging Face config of a tiny model for ``tokenizer``.

    Raises:
        ValueError: unknown architecture (the message lists :data:`ARCHS`).
    """
    ids = dict(
        vocab_size=len(tokenizer),
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if cfg.arch == "llama":
        return LlamaConfig(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                           num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
                           intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_length * 2,
                           tie_word_embeddings=True, **ids)
    if cfg.arch == "qwen2":
        return Qwen2Config(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                           num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_heads,
                           intermediate_size=cfg.intermediate_size, max_position_embeddings=cfg.max_length * 2,
                           tie_word_embeddings=True, **ids)
    if cfg.arch == "gpt_neox":
        return GPTNeoXConfig(hidden_size=cfg.hidden_size, num_hidden_layers=cfg.num_layers,
                             num_attention_heads=cfg.num_heads, intermediate_size=cfg.intermediate_size,
                             max_position_embeddings=cfg.max_length * 2, tie_word_embeddings=True, **ids)
    raise ValueError(f"model.arch: unknown architecture '{cfg.arch}' (known: {', '.join(ARCHS)})")


def build_tiny_model(cfg: ModelConfig, tokenizer: PreTrainedTokenizerBase, seed: int = 0) -> PreTrainedModel:
    """A freshly initialised tiny causal LM for ``tokenizer`` (float32, on CPU)."""
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(tiny_model_config(cfg, tokenizer))
