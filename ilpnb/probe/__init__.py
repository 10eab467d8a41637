"""Probes: learnedness criteria, the base model's knowledge (knowledge probes, sampled answers,
automatic probes), option scoring, the planting fidelity of a world, and how much of that knowledge survives SFT."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".criteria": ("CRITERIA", "Thresholds", "learned"),
    ".knowledge": ("read_probes", "run_probes", "probe_report", "summarize_probes"),
    ".sampling": ("sample_answers",),
    ".autoprobes": ("auto_probe",),
    ".scoring": ("score_continuations", "option_probabilities"),
    ".fidelity": ("planting_fidelity",),
    ".retention": ("knowledge_retention", "retention_summary"),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
