"""Mitigations: one intervention family per cause, run as controlled experiments (treated vs matched
control, over seeds), and continued pretraining on missing knowledge."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".interventions": ("Plan", "INTERVENTIONS", "DEFAULT_METHOD", "DEFAULT_FACTOR", "build_plan"),
    ".experiment": ("run_mitigation", "summarize", "load_results", "t_interval"),
    ".cpt": ("continued_pretraining", "knowledge_documents"),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
