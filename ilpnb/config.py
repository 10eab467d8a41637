"""The settings tree: one :class:`Preset` of nested dataclasses, and the presets ``smoke``, ``default``, ``full``.

A preset holds the settings of every stage of the workbench — the world, the tiny base
model, its pretraining, SFT, the diagnosis, the mitigation experiments, the interaction
dynamics and the real-model track — so a notebook or a command only names a preset instead
of repeating numbers. ``smoke`` runs in seconds to minutes (tests, CI), ``default`` is the
quickstart on a laptop CPU, ``full`` is the study at real scale on a GPU.

Every field carries its help text in ``metadata["help"]`` (the one description of a
setting: the command-line flags of :mod:`ilpnb.cli.flags` and the docs read it from there).
:func:`get_preset` applies dotted overrides (``get_preset("smoke", **{"sft.lr": 1e-3})``),
checking each key and the type of each value; :func:`to_dict` turns the tree into the plain
JSON that run folders store in ``config.json``.
"""

from __future__ import annotations

import copy
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from typing import Any

from ilpnb.data.world_config import CAUSES, WorldConfig
from ilpnb.settings_keys import apply_overrides, check_value, get_setting, setting_fields

__all__ = [
    "setting",
    "ModelConfig",
    "PretrainConfig",
    "SFTConfig",
    "DiagnoseConfig",
    "MitigateConfig",
    "DynamicsConfig",
    "RealConfig",
    "RealWorldConfig",
    "TARGETS",
    "Preset",
    "PRESETS",
    "get_preset",
    "apply_overrides",
    "setting_fields",
    "get_setting",
    "check_value",
    "to_dict",
    "override",
]


def setting(default: Any = MISSING, *, help: str, factory: Any = MISSING, **meta: Any) -> Any:
    """A dataclass field with its help text, as TRL's configs declare theirs.

    Args:
        default: the default value (or give ``factory`` for a mutable one).
        help: what the setting does; shown by ``--help`` of the generated flags.
        factory: a ``default_factory``.
        **meta: more metadata, e.g. ``choices`` (the values a flag accepts).
    """
    metadata = {"help": help, **meta}
    if factory is not MISSING:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class ModelConfig:
    """Architecture of the world's tiny base model (a real Hugging Face architecture)."""

    arch: str = setting("llama", help="architecture: llama or qwen2 (any of ilpnb.models.tiny.ARCHS)")
    vocab_size: int = setting(2048, help="size of the byte-level BPE tokenizer trained on the world's text")
    hidden_size: int = setting(128, help="width of the residual stream")
    num_layers: int = setting(3, help="transformer blocks")
    num_heads: int = setting(4, help="attention heads")
    intermediate_size: int = setting(256, help="MLP width")
    max_length: int = setting(64, help="longest sequence, in tokens")


@dataclass
class PretrainConfig:
    """Pretraining of the tiny base model on the world's corpus."""

    epochs: int = setting(50, help="passes over pretrain.txt")
    min_steps: int = setting(0, help="the fewest optimizer steps: a small corpus gets more epochs (0: epochs alone)")
    batch_size: int = setting(8, help="blocks of model.max_length packed tokens per step")
    lr: float = setting(3e-3, help="peak learning rate (cosine decay, short warm-up)")
    weight_decay: float = setting(0.0, help="AdamW weight decay")
    seed: int = setting(0, help="initialisation and data-order seed")


CRITERIA = ("exact", "token_acc", "loss", "mc")


@dataclass
class SFTConfig:
    """Supervised fine-tuning with per-sample tracking (transformers' Trainer underneath)."""

    epochs: int = setting(3, help="the most epochs a stage trains: the cap of the convergence rule "
                                  "(the exact count with converge off)")
    batch_size: int = setting(16, help="samples per step and device")
    lr: float = setting(1e-3, help="peak learning rate")
    lora: bool = setting(False, help="fine-tune LoRA adapters (peft) instead of all weights")
    lora_r: int = setting(8, help="LoRA rank (alpha = 2r)")
    eval_every: str | int = setting("epoch", help="evaluation points: 'epoch' or every K steps")
    criterion: str = setting("exact", help="what 'learned' means at the end", choices=CRITERIA)
    ordered: bool = setting(False, help="keep the data order within a stage (no shuffling)")
    seed: int = setting(0, help="seed of the data order and of LoRA initialisation")
    converge: bool = setting(True, help="stop each stage when the window rule of ilpnb.train.convergence holds "
                                        "(mean loss flat, verdicts stable); off: train exactly epochs")
    converge_window: int = setting(3, help="evaluation points the convergence rule looks back over")
    converge_loss_tol: float = setting(0.01, help="absolute tolerance of the mean loss movement (nats per token)")
    converge_rel_tol: float = setting(0.02, help="tolerance of the mean loss movement relative to the mean loss")
    converge_flip_share: float = setting(0.02, help="largest share of samples whose verdict may change in the window")
    converge_min_lr_share: float = setting(0.1, help="learning rate (share of its peak) below which a flat loss is the "
                                                     "schedule's annealing, not convergence")
    lr_scheduler: str = setting("cosine", help="transformers' learning-rate schedule over the epochs of a stage")
    warmup_ratio: float = setting(0.05, help="share of a stage's steps spent warming the learning rate up")
    weight_decay: float = setting(0.0, help="AdamW weight decay")


@dataclass
class DiagnoseConfig:
    """How the diagnosis questions a base model (the fields of ``ilpnb.diagnose.evidence.EvidenceSettings``)."""

    n_samples: int = setting(8, help="sampled answers per prompt besides the greedy one")
    temperature: float = setting(1.0, help="sampling temperature (1.0: the model's own distribution)")
    seed: int = setting(0, help="seed of the samples")
    autoprobes: bool = setting(True, help="also ask in the other framings (ilpnb.probe.autoprobes)")
    batch_size: int = setting(32, help="prompts per generate call")


@dataclass
class MitigateConfig:
    """Mitigation experiments: a targeted intervention and its matched control."""

    seeds: int = setting(3, help="seeds per arm (treated and control)")
    mix: float = setting(0.2, help="knowledge share of the continued-pretraining corpus (method cpt)")
    docs_per_sample: int = setting(20, help="knowledge documents per sample for continued pretraining (method cpt)")
    cpt_epochs: int = setting(3, help="epochs of continued pretraining (method cpt)")
    crossover: str = setting("preregistered", help="methods of notebook 08's crossover matrix: one per cause "
                                                  "(preregistered), every method (all), or none",
                             choices=("preregistered", "all", "none"))
    crossover_seeds: int = setting(0, help="seeds of the crossover matrix (0: the experiments' seeds)")
    workers: int = setting(0, help="processes training arms at once, each with cores/workers torch threads "
                                   "(0: one per CPU core; 1: one after another)")


TARGETS = ("gold", "response", "greedy")
"""What ``v`` scores: the gold answer's first token, the whole gold answer, the model's own token."""


@dataclass
class DynamicsConfig:
    """Interaction dynamics of a run, and the fine-tuning run made for them in the notebooks."""

    n_prompts: int = setting(24, help="held-out prompts drawn from a world (ignored with a prompts file)")
    max_players: int = setting(10, help="players per prompt at most (all words of a shorter prompt)")
    baseline: str = setting("zero", help="masking baseline (learned: fitted per model)",
                            choices=("zero", "mean", "learned"))
    target: str = setting("gold", help="what v scores: the gold answer's first token, the whole gold answer, "
                                       "or each model's own first token", choices=TARGETS)
    target_tokens: int = setting(0, help="with target 'response': only the gold answer's first K tokens (0: all)")
    validation_share: float = setting(0.5, help="share of the held-out prompts that choose the stopping step "
                                                "(validation); the rest report it (test)")
    and_or: bool = setting(True, help="fit the AND-OR split (the published method); off: AND and OR transforms")
    and_or_iterations: int = setting(5000, help="SGD iterations of the AND-OR fit")
    merge_low_order: bool = setting(True, help="merge order-0/1 OR terms into AND (a singleton is one interaction)")
    salient_frac: float = setting(0.05, help="salient when |I| > salient_frac * max|I|")
    salient_scale: str = setting("own", help="max|I| of each checkpoint's own game (own, the published definition) "
                                             "or of the base model's (base)", choices=("own", "base"))
    reference: str = setting("auto", help="second model for the generalisation ratio: auto (a world run: the world's "
                                          "base model of another architecture), none, or a model folder / name")
    reference_arch: str = setting("gpt_neox", help="architecture of the auto reference (another one if the run's "
                                                   "base model already has it)")
    stop_rule: str = setting("net", help="end-of-denoising rule of ilpnb.interactions.stopping.denoising_end")
    seed: int = setting(0, help="seed of the held-out draw")
    sft_epochs: int = setting(10, help="epochs of the SFT run made for the interaction notebooks (its own, "
                                       "not sft.epochs: enough checkpoints to follow)")
    sft_eval_every: int = setting(10, help="steps between the checkpoints of that run")
    sft_stages: str = setting("mixed", help="mixed (all records in one shuffled stage) or sequential "
                                            "(the world's stages in order) for that run",
                              choices=("mixed", "sequential"))

    def check(self) -> DynamicsConfig:
        """Validate; returns self.

        Raises:
            ValueError: An unknown target, baseline or rule, or a bad number.
        """
        from ilpnb.interactions.stopping import STOP_RULES  # numpy and pandas: only when checked

        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.baseline not in ("zero", "mean", "learned"):
            raise ValueError(f"baseline must be zero, mean or learned, got {self.baseline!r}")
        if self.stop_rule not in STOP_RULES:
            raise ValueError(f"stop_rule must be one of {STOP_RULES}, got {self.stop_rule!r}")
        if self.n_prompts < 1 or not 2 <= self.max_players <= 20:
            raise ValueError(f"need n_prompts >= 1 and 2 <= max_players <= 20, got "
                             f"{self.n_prompts}, {self.max_players}")
        if self.salient_scale not in ("own", "base"):
            raise ValueError(f"salient_scale must be 'own' or 'base', got {self.salient_scale!r}")
        if not 0 < self.salient_frac < 1:
            raise ValueError(f"salient_frac must be in (0, 1), got {self.salient_frac}")
        if not 0 < self.validation_share <= 1 or self.target_tokens < 0:
            raise ValueError(f"need 0 < validation_share <= 1 and target_tokens >= 0, got "
                             f"{self.validation_share}, {self.target_tokens}")
        return self

    def interaction_settings(self) -> dict[str, Any]:
        """The settings that determine the interactions (stored for resume checks)."""
        keep = ("max_players", "baseline", "target", "target_tokens", "and_or", "and_or_iterations", "merge_low_order")
        return {k: getattr(self, k) for k in keep}


@dataclass
class RealWorldConfig:
    """The planted real world (``ilpnb realworld``): real facts whose knowledge the real model is measured on."""

    countries: int | None = setting(None, help="countries whose capital the base model is questioned on, a seeded "
                                               "draw (None: all of countryinfo's)")
    unknown: int | None = setting(48, help="unknown facts asked in every phrasing (a seeded draw; the planting "
                                           "uses a few, and asking all is slow; None: all)")
    none: int = setting(30, help="clean samples (the stage-1 samples of the retrained phrasing included)")
    each: int = setting(6, help="samples of every cause (data conflicts rounded up to whole pairs)")
    n_samples: int = setting(4, help="sampled answers per question besides the greedy one, measuring knowledge")
    temperature: float = setting(0.5, help="sampling temperature of the measurement (Gekhman et al. 2024)")
    batch_size: int = setting(32, help="questions per generate call")
    seed: int = setting(0, help="seed of the planting (the measurement, its country draw and samples, uses 0: one "
                                "cached measurement serves every seed)")


@dataclass
class RealConfig:
    """The real track (notebook 09, ``ilpnb sft`` on a real model): a real LLM on a real SFT set.

    The LoRA rank and the seed are ``sft.lora_r`` and ``sft.seed``; the rest is the real
    model's own (the tiny model's lr 1e-3 ruins a real model's answers within a few updates).
    """

    samples: int | None = setting(32, help="SFT samples used (None: the whole set)")
    conflict_groups: int = setting(4, help="groups of duplicated questions kept whole in the subset (data conflicts)")
    epochs: int = setting(20, help="the most epochs a stage of a real-model SFT trains: the cap of the convergence "
                                   "rule (ilpnb sft on a real model, the planted real world)")
    faq_epochs: int = setting(30, help="the most epochs of notebook 09's FAQ run: the cap of its convergence rule "
                                       "(its long answers need more epochs than the planted world's short ones)")
    batch_size: int = setting(8, help="samples per step")
    eval_every: str | int = setting("epoch", help="evaluation points: 'epoch' or every K steps")
    max_length: int = setting(192, help="longest sequence in tokens (the FAQ's longest pair is 168 with "
                                        "SmolLM2's template)")
    lora_lr: float = setting(1e-3, help="peak learning rate with LoRA")
    full_lr: float = setting(5e-5, help="peak learning rate of full fine-tuning")
    prompts: int = setting(3, help="prompts whose interactions are computed before and after SFT")
    players: int = setting(7, help="words per interaction game (2^players masked forward passes per model)")
    max_answer_chars: int | None = setting(200, help="draw only records whose answer has at most this many "
                                                      "characters (None: any); kept conflict groups are exempt")
    track_options: str = setting("ends", help="score the multiple-choice options at all points or only at the ends "
                                              "(step 0, stage end, final)", choices=("all", "ends"))
    target_tokens: int = setting(4, help="the interaction game's target: the first tokens of the gold answer")
    dyn_lr: float = setting(1e-4, help="peak learning rate of the interaction study's LoRA run (the study's setup: "
                                       "LoRA r = sft.lora_r, cosine schedule)")
    dyn_epochs: int = setting(6, help="epochs of that run (a fixed schedule: the study follows SFT past convergence)")
    dyn_batch_size: int = setting(4, help="samples per step of that run")
    dyn_eval_every: int = setting(2, help="steps between its saved checkpoints")
    dyn_dense: int = setting(8, help="checkpoints followed at the start of that run, every one saved (dense)")
    dyn_checkpoints: int = setting(11, help="checkpoints followed in all (after the dense ones, spread evenly)")
    dyn_prompts: int = setting(4, help="held-out questions (known facts no SFT sample asks), half validation, "
                                       "half test")
    dyn_players: int = setting(5, help="words per held-out question's game (the most effective ones)")
    diagnose: DiagnoseConfig = setting(help="how the diagnosis questions the real base model",
                                       factory=lambda: DiagnoseConfig(n_samples=4, temperature=0.5, autoprobes=False,
                                                                     batch_size=16))
    world: RealWorldConfig = setting(help="the planted real world (ilpnb realworld)", factory=RealWorldConfig)


@dataclass
class Preset:
    """All the settings of one preset: the one settings tree."""

    name: str = setting("default", help="the preset's name (smoke, default or full)", setting=False)
    world: WorldConfig = setting(help="the controlled world", factory=WorldConfig)
    model: ModelConfig = setting(help="the world's tiny base model", factory=ModelConfig)
    pretrain: PretrainConfig = setting(help="pretraining of the tiny base model", factory=PretrainConfig)
    sft: SFTConfig = setting(help="supervised fine-tuning", factory=SFTConfig)
    diagnose: DiagnoseConfig = setting(help="the diagnosis of a world run", factory=DiagnoseConfig)
    mitigate: MitigateConfig = setting(help="mitigation experiments", factory=MitigateConfig)
    interactions: DynamicsConfig = setting(help="interaction dynamics", factory=DynamicsConfig)
    real: RealConfig = setting(help="the real-model track", factory=RealConfig)


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
        mitigate=MitigateConfig(seeds=2),
        # 54 samples, batch 8: 7 steps an epoch; 6 epochs, a checkpoint every 4 steps -> 11 + base
        interactions=DynamicsConfig(n_prompts=8, and_or_iterations=500, sft_epochs=6, sft_eval_every=4),
        # minutes on a 2-core CPU (the notebook test tier): 4 steps of 2 (the first is the lr warm-up), 3 points
        real=RealConfig(samples=8, conflict_groups=1, epochs=4, faq_epochs=1, batch_size=2, eval_every=2, prompts=1,
                        players=5, dyn_epochs=2, dyn_eval_every=2, dyn_dense=2, dyn_checkpoints=3, dyn_prompts=2,
                        dyn_players=4,
                        max_answer_chars=200,
                        diagnose=DiagnoseConfig(n_samples=2, temperature=0.5, autoprobes=False, batch_size=8),
                        world=RealWorldConfig(countries=90, unknown=10, none=8, each=4, n_samples=2)),
    ),
    "default": Preset(
        name="default",
        world=WorldConfig(),
        model=ModelConfig(),
        # the corpus repeats each fact in many contexts. A tiny model needs a number of optimizer
        # steps to learn a corpus's language, whatever its size: 16 epochs of a default world are
        # about 2,400-2,600 steps, and a corpus a third that size at 16 epochs (about 400 steps)
        # leaves most of its stated facts unknown to the base model. A floor (``min_steps``, e.g.
        # 2000) lifts small corpora and leaves every default-size world as it is; it stays off
        # here until the diagnosis benchmark has been measured with it.
        pretrain=PretrainConfig(epochs=16),
        sft=SFTConfig(epochs=30),
        # notebook 08 inside `make run`'s budget: 2 seeds per arm and no crossover (its 20 more arms
        # take about 4 more minutes on 2 cores; `ilpnb mitigate RUN --crossover`, or smoke / full)
        mitigate=MitigateConfig(seeds=2, crossover="none"),
        # 300 samples, batch 16: 19 steps an epoch; 6 epochs, every 10 steps -> 12 + base; sized so
        # notebooks 10 and 11 fit in `make run` on a laptop CPU (the reference model's pretraining dominates)
        interactions=DynamicsConfig(n_prompts=12, max_players=8, and_or_iterations=2000, sft_epochs=6,
                                    sft_eval_every=10),
        # notebook 09 inside `make run`'s budget on 2 CPU cores: an 8-sample FAQ subset (2 groups of duplicated questions, 2 interaction prompts), a planted
        # world of 32 samples measured on 150 capitals with 2 samples each (16 of the unknown ones
        # asked in every phrasing: the planting uses at most 8); 2 samples a step (the
        # rule stops after a number of updates more than of epochs, and small steps are cheap)
        real=RealConfig(samples=8, conflict_groups=2, batch_size=2, prompts=2,
                        world=RealWorldConfig(countries=150, unknown=16, none=12, each=4, n_samples=2)),
    ),
    "full": Preset(
        name="full",
        world=WorldConfig(counts=_counts(1200, 200), n_cities=60, n_countries=6, extra_people=200),
        model=ModelConfig(vocab_size=4096, hidden_size=512, num_layers=8, num_heads=8,
                          intermediate_size=1408, max_length=96),
        pretrain=PretrainConfig(epochs=24, batch_size=32, lr=1e-3),
        sft=SFTConfig(epochs=30, batch_size=32, lr=3e-4),
        interactions=DynamicsConfig(n_prompts=48, sft_epochs=8, sft_eval_every=50),
        # the whole set, for a GPU; the diagnosis's own evidence defaults
        real=RealConfig(samples=None, max_answer_chars=None, epochs=30, faq_epochs=30, lora_lr=5e-4, full_lr=2e-5, prompts=4, players=8,
                        dyn_epochs=30, dyn_eval_every=8, dyn_dense=10, dyn_checkpoints=24, dyn_prompts=16, dyn_players=8,
                        track_options="all", diagnose=DiagnoseConfig(temperature=0.5)),
    ),
}


def get_preset(name: str, **overrides: Any) -> Preset:
    """A fresh copy of a preset by name, with dotted overrides.

    Example:
        ``get_preset("smoke", **{"sft.lr": 1e-3, "world.seed": 3})``

    Raises:
        KeyError: unknown preset (the message lists the known ones) or unknown setting
            (the message names the closest valid key).
        ValueError: a value of the wrong type.
    """
    if name not in PRESETS:
        raise KeyError(f"unknown preset '{name}' (known: {', '.join(PRESETS)})")
    preset = copy.deepcopy(PRESETS[name])
    if overrides:
        source = f"preset '{name}'"
        touched = apply_overrides(preset, overrides, source=source)
        if "world" in touched:  # the sub-trees with checks of their own are checked again
            preset.world.validate(f"{source}: world")
        if "interactions" in touched:
            preset.interactions.check()
    return preset


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
    return replace(copy.deepcopy(obj), **changes)
