"""Configuration dataclasses and the three presets: ``smoke``, ``default``, ``full``.

A preset bundles the settings of every stage of the pipeline (the world, the tiny base
model, its pretraining, SFT) so that a notebook or a command only names a preset instead of
repeating numbers. ``smoke`` runs in seconds to minutes (tests, CI), ``default`` is the
quickstart on a laptop CPU, ``full`` is the study at real scale on a GPU.

Every dataclass turns into a plain JSON object with :func:`to_dict`, which is what run
folders and model caches store.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

from ilpnb.data.world_config import CAUSES, WorldConfig

__all__ = [
    "ModelConfig",
    "PretrainConfig",
    "SFTConfig",
    "Preset",
    "PRESETS",
    "get_preset",
    "to_dict",
    "override",
]


@dataclass
class ModelConfig:
    """Architecture of the world's tiny base model (a real Hugging Face architecture).

    Attributes:
        arch: ``llama`` or ``qwen2`` (any architecture in ``ilpnb.models.tiny.ARCHS``).
        vocab_size: size of the byte-level BPE tokenizer trained on the world's text.
        hidden_size: width of the residual stream.
        num_layers: transformer blocks.
        num_heads: attention heads.
        intermediate_size: MLP width.
        max_length: longest sequence, in tokens.
    """

    arch: str = "llama"
    vocab_size: int = 2048
    hidden_size: int = 128
    num_layers: int = 3
    num_heads: int = 4
    intermediate_size: int = 256
    max_length: int = 64


@dataclass
class PretrainConfig:
    """Pretraining of the tiny base model on the world's corpus.

    Attributes:
        epochs: passes over ``pretrain.txt``.
        batch_size: blocks of ``ModelConfig.max_length`` packed tokens per step.
        lr: peak learning rate (cosine decay, short warm-up).
        weight_decay: AdamW weight decay.
        seed: initialisation and data-order seed.
    """

    epochs: int = 50
    batch_size: int = 8
    lr: float = 3e-3
    weight_decay: float = 0.0
    seed: int = 0


@dataclass
class SFTConfig:
    """Supervised fine-tuning with per-sample tracking.

    Attributes:
        epochs: the most epochs a stage trains (a safety cap when ``converge``; the exact
            count otherwise).
        batch_size: samples per step.
        lr: peak learning rate.
        lora: fine-tune LoRA adapters instead of all weights.
        lora_r: LoRA rank.
        eval_every: evaluation points: ``epoch`` or a number of steps.
        criterion: what "learned" means at the end: ``exact``, ``token_acc``, ``loss`` or ``mc``.
        ordered: keep the data order within a stage (no shuffling).
        seed: seed of the data order and of LoRA initialisation.
        converge: stop each stage when the window rule of :mod:`ilpnb.train.convergence`
            holds (mean loss flat and verdicts stable over ``converge_window`` points);
            off: train exactly ``epochs`` (a fixed budget, e.g. compute-matched arms).
        converge_window: evaluation points the rule looks back over.
        converge_loss_tol: absolute tolerance of the mean loss movement (nats per token).
        converge_rel_tol: tolerance relative to the mean loss.
        converge_flip_share: largest share of samples whose verdict may change in the window.
        lr_scheduler: transformers' learning-rate schedule over the ``epochs`` of a stage.
        warmup_ratio: share of a stage's steps spent warming the learning rate up.
        weight_decay: AdamW weight decay.
    """

    epochs: int = 3
    batch_size: int = 16
    lr: float = 1e-3
    lora: bool = False
    lora_r: int = 8
    eval_every: str | int = "epoch"
    criterion: str = "exact"
    ordered: bool = False
    seed: int = 0
    converge: bool = True
    converge_window: int = 3
    converge_loss_tol: float = 0.01
    converge_rel_tol: float = 0.02
    converge_flip_share: float = 0.02
    lr_scheduler: str = "cosine"
    warmup_ratio: float = 0.05
    weight_decay: float = 0.0


@dataclass
class Preset:
    """All the settings of one preset."""

    name: str
    world: WorldConfig
    model: ModelConfig
    pretrain: PretrainConfig
    sft: SFTConfig = field(default_factory=SFTConfig)


def _counts(none: int, each: int) -> dict[str, int]:
    return {"none": none, **{c: each for c in CAUSES}}


PRESETS: dict[str, Preset] = {
    "smoke": Preset(
        name="smoke",
        world=WorldConfig(counts=_counts(24, 6), extra_people=4, n_cities=8, n_countries=4,
                          paraphrases=2, qa_repeats=1, qa_variants=1, city_repeats=2),
        model=ModelConfig(hidden_size=64, num_layers=2, num_heads=4, intermediate_size=128),
        pretrain=PretrainConfig(epochs=12, batch_size=8, lr=3e-3),
        sft=SFTConfig(epochs=8, batch_size=8),  # epochs: the cap of the convergence rule
    ),
    "default": Preset(
        name="default",
        world=WorldConfig(),
        model=ModelConfig(),
        pretrain=PretrainConfig(epochs=16),  # the corpus repeats each fact in many contexts
        sft=SFTConfig(epochs=30),
    ),
    "full": Preset(
        name="full",
        world=WorldConfig(counts=_counts(1200, 200), n_cities=60, n_countries=6, extra_people=200),
        model=ModelConfig(vocab_size=4096, hidden_size=512, num_layers=8, num_heads=8,
                          intermediate_size=1408, max_length=96),
        pretrain=PretrainConfig(epochs=24, batch_size=32, lr=1e-3),
        sft=SFTConfig(epochs=30, batch_size=32, lr=3e-4),
    ),
}


def get_preset(name: str) -> Preset:
    """A fresh copy of a preset by name.

    Raises:
        KeyError: unknown preset (the message lists the known ones).
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset '{name}' (known: {', '.join(PRESETS)})")
    return copy.deepcopy(PRESETS[name])


def to_dict(obj: Any) -> Any:
    """A dataclass (nested) as plain JSON-able data."""
    if isinstance(obj, WorldConfig):
        return obj.to_dict()
    if is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    return copy.deepcopy(obj)


def override(obj: Any, changes: dict[str, Any], source: str = "override") -> Any:
    """A copy of a config dataclass with some fields changed; unknown keys raise KeyError."""
    known = {f.name for f in fields(obj)}
    for key in changes:
        if key not in known:
            raise KeyError(f"{source}: unknown key '{key}' for {type(obj).__name__} (known: {', '.join(sorted(known))})")
    data = asdict(obj)
    data.update(changes)
    return type(obj)(**data)
