"""Settings of the interaction dynamics of a run, read from the preset tree.

:class:`DynamicsConfig` (defined in :mod:`ilpnb.config`, the one settings tree, as
``Preset.interactions``) holds what :func:`ilpnb.pipeline.sweep.interaction_dynamics` needs
(held-out prompts, players, baseline, target, AND-OR fit, salience, reference model, stopping
rule) and the fine-tuning run that :func:`ilpnb.pipeline.interactions.ensure_interaction_run`
makes for the notebooks. :func:`dynamics_config` is the accessor by preset name;
:data:`DYNAMICS_PRESETS` is the same per preset, read from :data:`ilpnb.config.PRESETS`.
"""

from __future__ import annotations

from dataclasses import fields, replace
from typing import Any

from ilpnb.config import PRESETS, TARGETS, DynamicsConfig, get_preset

__all__ = ["DYNAMICS_PRESETS", "TARGETS", "DynamicsConfig", "dynamics_config"]

DYNAMICS_PRESETS: dict[str, DynamicsConfig] = {name: get_preset(name).interactions for name in PRESETS}
"""Dynamics settings per preset (copies of ``get_preset(name).interactions``)."""


def dynamics_config(preset: str = "default", **changes: Any) -> DynamicsConfig:
    """The preset's :class:`DynamicsConfig` (``get_preset(preset).interactions``), with fields changed.

    Raises:
        KeyError: Unknown preset or field.
        ValueError: A value the checks of :meth:`DynamicsConfig.check` refuse.
    """
    if preset not in PRESETS:
        raise KeyError(f"unknown preset {preset!r} (known: {', '.join(PRESETS)})")
    known = {f.name for f in fields(DynamicsConfig)}
    bad = sorted(set(changes) - known)
    if bad:
        raise KeyError(f"unknown dynamics setting(s) {bad} (known: {', '.join(sorted(known))})")
    return replace(get_preset(preset).interactions, **changes).check()
