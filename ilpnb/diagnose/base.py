"""The detector interface, its registry, and the evidence a detector may read.

A detector is a small class with a ``name`` (one of the five causes), a ``description``, and
``detect(ctx) -> DetectorResult``: a score in [0, 1] and a one-line evidence string for every
sample. Detectors read only a :class:`DiagnosisContext` — the SFT records, the dynamics
table (step 0 is the base model), the per-sample summary, near-duplicate siblings and, where
the user has them, knowledge probes scored on the base model. Nothing in the context comes
from ``truth.jsonl`` or any planted label.

Registration is explicit: :data:`ilpnb.diagnose.detectors.DEFAULT_DETECTORS` lists one
detector per cause, and :data:`REGISTRY` loads that list the first time it is read (no module
registers anything by being imported). :func:`register` adds a detector of your own::

    @register
    class MyDetector(Detector):
        name = "my_cause"
        description = "..."
        def detect(self, ctx): ...
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import pandas as pd

__all__ = [
    "Detector",
    "DetectorResult",
    "DiagnosisContext",
    "DetectorRegistry",
    "REGISTRY",
    "build_registry",
    "register",
    "squash",
]


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


def build_registry(detectors: Iterable[type[Detector]]) -> dict[str, type[Detector]]:
    """Detector classes by name, checked: each has a name and a description, and no name twice.

    Raises:
        ValueError: a detector without a name or description, or two detectors with one name.
    """
    out: dict[str, type[Detector]] = {}
    for cls in detectors:
        if not (isinstance(cls, type) and issubclass(cls, Detector)):
            raise ValueError(f"{cls!r}: a detector must be a subclass of ilpnb.diagnose.base.Detector")
        if not cls.name or not cls.description:
            raise ValueError(f"{cls.__name__}: a detector needs a name and a description")
        if cls.name in out:
            raise ValueError(f"{cls.__name__}: a detector named '{cls.name}' is already registered "
                             f"({out[cls.name].__name__})")
        out[cls.name] = cls
    return out


def _default_detectors() -> tuple[type[Detector], ...]:
    from ilpnb.diagnose.detectors import DEFAULT_DETECTORS

    return DEFAULT_DETECTORS


class DetectorRegistry(Mapping[str, type[Detector]]):
    """Detector classes by name: the defaults (loaded by an explicit call on first read), then any
    added with :meth:`add`.

    Args:
        defaults: a function returning the default detector classes.
    """

    def __init__(self, defaults: Callable[[], Iterable[type[Detector]]] = _default_detectors) -> None:
        self._defaults = defaults
        self._table: dict[str, type[Detector]] | None = None

    def _loaded(self) -> dict[str, type[Detector]]:
        if self._table is None:
            self._table = build_registry(self._defaults())
        return self._table

    def __getitem__(self, name: str) -> type[Detector]:
        table = self._loaded()
        if name not in table:
            raise KeyError(f"no detector named {name!r} (registered: {', '.join(table)})")
        return table[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._loaded())

    def __len__(self) -> int:
        return len(self._loaded())

    def add(self, cls: type[Detector], replace: bool = False) -> type[Detector]:
        """Add ``cls`` under its name; a name already taken is an error unless ``replace``."""
        table = self._loaded()
        checked = build_registry([cls])
        if cls.name in table and not replace and table[cls.name] is not cls:
            raise ValueError(f"{cls.__name__}: a detector named '{cls.name}' is already registered "
                             f"({table[cls.name].__name__}); pass replace=True to replace it")
        table.update(checked)
        return cls

    def remove(self, name: str) -> None:
        """Remove the detector called ``name`` (e.g. a plugin a test added)."""
        del self._loaded()[name]


#: Every detector :func:`ilpnb.diagnose.attribution.diagnose` runs, by name.
REGISTRY = DetectorRegistry()


def register(cls: type[Detector]) -> type[Detector]:
    """Class decorator adding a detector of your own to :data:`REGISTRY` under its ``name``."""
    return REGISTRY.add(cls)


def squash(x: Any, centre: float, width: float) -> np.ndarray:
    """A smooth step from 0 to 1 around ``centre`` (logistic, ``width`` = scale)."""
    return 1.0 / (1.0 + np.exp(-(np.asarray(x, dtype=float) - centre) / width))
