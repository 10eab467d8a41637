"""Plot functions: each takes data and an optional ``ax`` and returns the axes (never shows)."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".base": ("get_ax", "save_figure"),
    ".dynamics": ("plot_group_curves", "plot_sample_curves", "plot_unlearned_share", "mark_stages"),
    ".samples": ("plot_learning_curve",),
    ".probes": ("plot_probe_report", "plot_loss_curve"),
    ".diagnosis": ("plot_signal", "plot_confusion", "plot_cause_split", "plot_scores"),
    ".causes": (
        "share_table", "plot_shares", "plot_histograms", "plot_knowledge_map", "plot_drift",
        "plot_aligned_reproduction", "plot_rare_map",
    ),
    ".mitigation": ("plot_recovery", "plot_crossover"),
    ".cartography": ("plot_cartography",),
    ".interactions": (
        "plot_denoising", "plot_interaction_trajectories", "plot_order_heatmap", "plot_quality",
        "plot_status_by_order", "plot_status_counts", "plot_stopping",
    ),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
