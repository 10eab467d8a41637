"""The five causes of incomplete learning, defined once: name, order, label, description, default fix.

Every part of ilpnb that names a cause — the world generator's planted labels, the detectors,
the diagnosis columns ``score_<cause>``, the mitigations, the plots and widgets — reads them
from here. A cause is linked to its detector by name (:data:`ilpnb.diagnose.detectors.DEFAULT_DETECTORS`
holds one detector per cause) and to its default mitigation by the method name in
:data:`ilpnb.mitigate.interventions.INTERVENTIONS`. This module imports nothing but the
standard library, so anything may import it.

    >>> from ilpnb.causes import CAUSES, get_cause
    >>> CAUSES[0], get_cause("rare_pattern").mitigation
    ('missing_knowledge', 'progressive')
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "Cause",
    "UnknownCauseError",
    "ALL_CAUSES",
    "CAUSES",
    "NONE",
    "UNATTRIBUTED",
    "PLANTED_CAUSES",
    "DIAGNOSIS_LABELS",
    "get_cause",
    "check_cause",
]


@dataclass(frozen=True)
class Cause:
    """One cause of incomplete learning.

    Attributes:
        name: the identifier used in files (``truth.jsonl``, ``diagnosis.parquet``, world counts).
        order: its place in the order of DESIGN.md (1 to 5); tables and plots list causes by it.
        label: a short human label for axes and legends.
        description: what the cause is, in one sentence.
        mitigation: the name of its default mitigation method (a key of
            ``ilpnb.mitigate.interventions.INTERVENTIONS[name]``).
    """

    name: str
    order: int
    label: str
    description: str
    mitigation: str


class UnknownCauseError(ValueError):
    """A cause name that is not one of the five; the message names where it came from and the known names."""


#: The five causes, in the order of DESIGN.md.
ALL_CAUSES: tuple[Cause, ...] = (
    Cause("missing_knowledge", 1, "missing knowledge",
          "The pretrained model lacks the prerequisite knowledge the answer needs, so SFT must teach a new fact.",
          "cpt"),
    Cause("pretrain_conflict", 2, "pretraining conflict",
          "The SFT answer contradicts what the pretrained model consistently believes.",
          "cpt"),
    Cause("data_conflict", 3, "data conflict",
          "Near-duplicate prompts inside the SFT data carry different answers.",
          "relabel"),
    Cause("left_forgetting", 4, "left-side forgetting",
          "A sample learned early in (sequential) fine-tuning is lost when later updates overwrite it.",
          "replay"),
    Cause("rare_pattern", 5, "rare pattern",
          "A rare or complex pattern gets too little optimisation to be reproduced by the end of training.",
          "progressive"),
)

#: The cause names, in order.
CAUSES: tuple[str, ...] = tuple(c.name for c in ALL_CAUSES)
#: The label of a learned (or, in a world, a clean) sample.
NONE = "none"
#: The diagnosis of an unlearned sample no detector is confident about.
UNATTRIBUTED = "unattributed"
#: Every planted label of a world sample: ``none`` (clean) and the five causes.
PLANTED_CAUSES: tuple[str, ...] = (NONE, *CAUSES)
#: Every value of the ``cause`` column of ``diagnosis.parquet``, in display order.
DIAGNOSIS_LABELS: tuple[str, ...] = (NONE, *CAUSES, UNATTRIBUTED)

_BY_NAME: dict[str, Cause] = {c.name: c for c in ALL_CAUSES}


def get_cause(name: str, source: str | None = None) -> Cause:
    """The :class:`Cause` called ``name``.

    Args:
        name: a cause name such as ``"data_conflict"``.
        source: where the name came from (a file, a key), named in the error.

    Raises:
        UnknownCauseError: ``name`` is not one of :data:`CAUSES`.
    """
    try:
        return _BY_NAME[name]
    except (KeyError, TypeError):
        where = f"{source}: " if source else ""
        raise UnknownCauseError(f"{where}unknown cause {name!r} (known: {', '.join(CAUSES)})") from None


def check_cause(name: str, source: str | None = None, allowed: tuple[str, ...] = CAUSES) -> str:
    """``name`` if it is in ``allowed`` (default: the five causes), else :class:`UnknownCauseError`.

    Use ``allowed=PLANTED_CAUSES`` for a world's labels, ``DIAGNOSIS_LABELS`` for a diagnosis.
    """
    if name not in allowed:
        where = f"{source}: " if source else ""
        raise UnknownCauseError(f"{where}unknown cause {name!r} (known: {', '.join(allowed)})")
    return name
