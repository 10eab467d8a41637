"""Diagnosis of unlearned samples: the detector interface and its registry, one detector per cause,
attribution, scoring against a world's truth, and the model-free shortcut baselines."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".base": ("Detector", "DetectorResult", "DiagnosisContext", "DetectorRegistry", "REGISTRY", "register"),
    ".detectors": (
        "DEFAULT_DETECTORS", "MissingKnowledge", "PretrainConflict", "DataConflict", "LeftForgetting", "RarePattern",
    ),
    ".attribution": ("CAUSE_ORDER", "build_context", "diagnose", "write_diagnosis", "cause_split"),
    ".evidence": ("EvidenceSettings",),
    ".similarity": ("find_siblings",),
    ".scoring": ("DiagnosisScore", "score_diagnosis"),
    ".baselines": ("score_baselines",),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
