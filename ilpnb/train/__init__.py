"""Supervised fine-tuning with per-sample tracking: the run entry point, the Trainer and its tracking
callback, convergence, and the per-sample summary."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".sft": ("SFTJob", "run_sft", "resolve_job", "load_dynamics"),
    ".trainer": ("SFTTrainer", "PointCallback"),
    ".callback": ("TrackingCallback",),
    ".train_stats": ("cartography", "forgetting_events", "load_train_dynamics", "summarize_training"),
    ".convergence": ("ConvergenceRule", "ConvergenceMonitor"),
    ".derived": ("summarize_samples",),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
