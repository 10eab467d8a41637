"""Mitigations: one intervention family per cause, run as controlled experiments (treated vs a
generic compute-matched control and a placebo, over seeds), the crossover matrix of every
intervention on every cause, and continued pretraining on knowledge-augmented text."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".interventions": ("Plan", "Preregistered", "INTERVENTIONS", "DEFAULT_METHOD", "DEFAULT_FACTOR", "PREREGISTERED",
                       "GENERIC_METHODS", "build_plan", "generic_plan", "has_placebo", "same_training", "targets_of"),
    ".experiment": ("MitigationSettings", "Experiment", "ARMS", "run_mitigation", "run_mitigations", "summarize", "load_results",
                    "t_interval"),
    ".crossover": ("ALL_METHODS", "run_crossover", "crossover_matrix"),
    ".cpt": ("continued_pretraining", "knowledge_documents", "fact_documents", "cpt_budget"),
    ".measure": ("ArmContext", "arm_context", "learned_table", "arm_compute", "held_out_probes", "truth_responses"),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
