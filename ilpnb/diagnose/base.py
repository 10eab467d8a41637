"""The detector interface, its registry, and the evidence a detector may read.

A detector is a small class with a ``name`` (one of the five causes), a ``description``, and
``detect(ctx) -> DetectorResult``: a score in [0, 1] and a one-line evidence string for every
sample. Detectors read only a :class:`DiagnosisContext` — the SFT records, the dynamics
table (step 0 is the base model), the per-sample summary, near-duplicate siblings and, where
the user has them, knowledge probes scored on the base model. Nothing in the context comes
from ``truth.jsonl`` or any planted label.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

__all__ = ["Detector", "DetectorResult", "DiagnosisContext", "REGISTRY", "register", "squash"]


@dataclass
class DiagnosisContext:
    """Everything detectors may read, indexed by sample id (rows in the same order).

    Attributes:
        records: one row per sample: ``id``, ``prompt``, ``response``, ``stage``, ``options``.
        dynamics: the dynamics table (a row per sample x evaluation point).
        samples: per-sample summary (:func:`ilpnb.train.derived.summarize_samples`) with
            ``learned`` by the run's criterion; extra columns ``learned_flags`` (per point).
        base: the step-0 rows of the dynamics (the base model), indexed by id.
        final: the last point's rows, indexed by id.
        siblings: per id, a list of (sibling id, similarity) with a different response.
        probes: per id, the knowledge probes that mention the sample's entities with the
            base model's results (empty lists without probes).
        info: free-form facts (e.g. ``median_tokens``, ``has_probes``).
    """

    records: pd.DataFrame
    dynamics: pd.DataFrame
    samples: pd.DataFrame
    base: pd.DataFrame
    final: pd.DataFrame
    siblings: dict[str, list[tuple[str, float]]] = field(default_factory=dict)
    probes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def ids(self) -> pd.Index:
        """Sample ids in order."""
        return self.records.index


@dataclass
class DetectorResult:
    """Scores in [0, 1] and one-line evidence per sample id."""

    score: pd.Series
    evidence: pd.Series


class Detector:
    """Base class of a cause detector; subclasses set ``name``/``description`` and ``detect``."""

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""

    def detect(self, ctx: DiagnosisContext) -> DetectorResult:  # pragma: no cover - interface
        """Score every sample of ``ctx``."""
        raise NotImplementedError


REGISTRY: dict[str, type[Detector]] = {}


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator adding a detector to :data:`REGISTRY` under its ``name``."""
    if not cls.name:
        raise ValueError(f"{cls.__name__}: a detector needs a name")
    REGISTRY[cls.name] = cls
    return cls


def squash(x: Any, centre: float, width: float) -> np.ndarray:
    """A smooth step from 0 to 1 around ``centre`` (logistic, ``width`` = scale)."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype=float) - centre) / width))
