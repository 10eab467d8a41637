"""Settings of the interaction dynamics of a run, and their values per preset.

:class:`DynamicsConfig` holds what :func:`ilpnb.pipeline.sweep.interaction_dynamics` needs (held-out
prompts, players, baseline, target, AND-OR fit, salience, reference model, stopping rule) and
the fine-tuning run that :func:`ilpnb.pipeline.interactions.ensure_interaction_run` makes for the notebooks;
:data:`DYNAMICS_PRESETS` gives it per preset (presets, not edits).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from .stopping import STOP_RULES

__all__ = ["DYNAMICS_PRESETS", "TARGETS", "DynamicsConfig", "dynamics_config"]

TARGETS = ("gold", "response", "greedy")
"""What ``v`` scores: the gold answer's first token, the whole gold answer, the model's own token."""


@dataclass
class DynamicsConfig:
    """Settings of the interaction dynamics of a run.

    Attributes:
        n_prompts: Held-out prompts drawn from a world (ignored with a prompts file).
        max_players: Players per prompt at most (all words of a shorter prompt).
        baseline: Masking baseline: ``zero``, ``mean`` or ``learned`` (fitted per model).
        target: ``gold``, ``response`` or ``greedy`` (see the module docstring).
        and_or: Fit the AND-OR split (the published method); otherwise AND and OR transforms.
        and_or_iterations: SGD iterations of the AND-OR fit.
        merge_low_order: Merge order-0/1 OR terms into AND (a singleton is one interaction,
            not two that could swap kinds between checkpoints).
        salient_frac: Salient when ``|I| > salient_frac · max|I|``.
        salient_scale: ``own``: ``max|I|`` of each checkpoint's own game (the published
            definition); ``base``: the base model's ``max|I|`` for every checkpoint, so a game
            that flattens overall does not lift small interactions over the threshold.
        reference: ``auto`` (a world run: the world's base model of another architecture;
            otherwise none), ``none``, or a model folder / name.
        reference_arch: Architecture of the ``auto`` reference (another one if the run's
            base model already has it).
        stop_rule: Rule of :func:`.stopping.denoising_end`.
        seed: Seed of the held-out draw.
        sft_epochs: Epochs of the SFT run made by :func:`ilpnb.pipeline.interactions.ensure_interaction_run`.
        sft_eval_every: Steps between its checkpoints.
        sft_stages: ``mixed`` (all records in one stage, shuffled together) or ``sequential``
            (the world's stages in order) for that run.
    """

    n_prompts: int = 24
    max_players: int = 10
    baseline: str = "zero"
    target: str = "gold"
    and_or: bool = True
    and_or_iterations: int = 5000
    merge_low_order: bool = True
    salient_frac: float = 0.05
    salient_scale: str = "own"
    reference: str = "auto"
    reference_arch: str = "gpt_neox"
    stop_rule: str = "net"
    seed: int = 0
    sft_epochs: int = 10
    sft_eval_every: int = 10
    sft_stages: str = "mixed"

    def check(self) -> DynamicsConfig:
        """Validate; returns self.

        Raises:
            ValueError: An unknown target, baseline or rule, or a bad number.
        """
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
        return self

    def interaction_settings(self) -> dict[str, Any]:
        """The settings that determine the interactions (stored for resume checks)."""
        keep = ("max_players", "baseline", "target", "and_or", "and_or_iterations", "merge_low_order")
        return {k: getattr(self, k) for k in keep}


DYNAMICS_PRESETS: dict[str, DynamicsConfig] = {
    # 54 samples, batch 8: 7 steps an epoch; 6 epochs, a checkpoint every 4 steps -> 11 + base
    "smoke": DynamicsConfig(n_prompts=8, and_or_iterations=500, sft_epochs=6, sft_eval_every=4),
    # 300 samples, batch 16: 19 steps an epoch; 6 epochs, every 10 steps -> 12 + base; sized so
    # notebooks 10 and 11 fit in `make run` on a laptop CPU (the reference model's pretraining dominates)
    "default": DynamicsConfig(n_prompts=12, max_players=8, and_or_iterations=2000, sft_epochs=6, sft_eval_every=10),
    "full": DynamicsConfig(n_prompts=48, sft_epochs=8, sft_eval_every=50),
}
"""Dynamics settings per preset (``n_prompts``: 8 at smoke, 12 at default, 48 at full)."""


def dynamics_config(preset: str = "default", **changes: Any) -> DynamicsConfig:
    """The preset's :class:`DynamicsConfig`, with fields changed.

    Raises:
        KeyError: Unknown preset or field.
    """
    if preset not in DYNAMICS_PRESETS:
        raise KeyError(f"unknown preset {preset!r} (known: {', '.join(DYNAMICS_PRESETS)})")
    known = {f.name for f in fields(DynamicsConfig)}
    bad = sorted(set(changes) - known)
    if bad:
        raise KeyError(f"unknown dynamics setting(s) {bad} (known: {', '.join(sorted(known))})")
    return replace(DYNAMICS_PRESETS[preset], **changes).check()
