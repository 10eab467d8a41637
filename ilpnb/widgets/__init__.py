"""Inspectors for JupyterLab: look at one sample, or at one prompt's interactions, in a click.

Each inspector is split in two (see STYLE.md, *Widgets*):

* a plain state class that imports no ipywidgets, holds the data, the filters and the current
  pick, and renders HTML — :class:`SampleState` (:mod:`.samples`) and
  :class:`InteractionState` (:mod:`.interactions`);
* a thin widget builder that wires ipywidgets to it — :class:`SampleInspector`
  (:mod:`.sample_widget`) and :class:`InteractionViewer` (:mod:`.interaction_widget`),
  imported lazily so that the states work where ipywidgets is absent.

In a notebook::

    from ilpnb.widgets import SampleInspector, InteractionViewer
    SampleInspector(RUN)          # filters, sample picker, texts, curve, diagnosis, siblings
    InteractionViewer(RUN)        # prompt picker, checkpoint slider, words and interactions
"""

from __future__ import annotations

from ilpnb._lazy import lazy_exports

from .interactions import (
    INTERACTION_SCHEMA,
    InteractionState,
    compute_checkpoint_interactions,
    interactions_from_results,
)
from .samples import FILTERS, SampleState, TokenDiff, first_wrong_token
from .sources import Checkpoint, run_checkpoints, sample_table

__all__ = [
    "SampleInspector",
    "InteractionViewer",
    "SampleState",
    "InteractionState",
    "FILTERS",
    "INTERACTION_SCHEMA",
    "TokenDiff",
    "first_wrong_token",
    "Checkpoint",
    "run_checkpoints",
    "sample_table",
    "compute_checkpoint_interactions",
    "interactions_from_results",
]

#: the widget builders, imported on first use so that the states work where ipywidgets is absent
_LAZY: dict[str, tuple[str, ...]] = {".sample_widget": ("SampleInspector",), ".interaction_widget": ("InteractionViewer",)}
__getattr__, __dir__ = lazy_exports(__name__, _LAZY)
