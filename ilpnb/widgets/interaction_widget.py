"""The interaction viewer widget: ipywidgets wired to an :class:`~ilpnb.widgets.interactions.InteractionState`.

``InteractionViewer(run)`` shows a prompt picker, a kind choice (AND, OR or both), the length
of the ranked list, a slider over the run's checkpoints, and the view of the picked prompt at
the picked checkpoint: its words coloured by single-word effect, the top interactions with
their orders, and which salient interactions are preserved, emerged or removed.

The interactions come from the run's ``interactions.parquet`` when it exists; otherwise they
are computed once, on construction, from the run's checkpoints (a few prompts, a few players;
see :func:`~ilpnb.widgets.interactions.compute_checkpoint_interactions`). Like the sample
inspector it displays a static HTML copy after the live widget for headless runs and exports.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as w
import pandas as pd

from .display import HIDE_FALLBACK, display_with_fallback
from .interactions import KINDS, InteractionState

__all__ = ["InteractionViewer"]


class InteractionViewer(w.VBox):
    """Pick a prompt and a checkpoint; see its words and interactions.

    Args:
        run: A run folder (ignored when ``state`` or ``table`` is given).
        state: A ready state.
        table: An interaction table (:data:`~ilpnb.widgets.interactions.INTERACTION_SCHEMA`).
        **kwargs: Passed to :meth:`InteractionState.from_run` (``compute``, ``prompts``,
            ``max_prompts``, ``max_checkpoints``, ``max_players``, ``and_or``, ``reference``,
            ``top_k``, ...).

    Attributes:
        state: The :class:`InteractionState`.
        prompt_picker: The prompt dropdown.
        kind: AND / OR / both.
        top_k: Length of the ranked list.
        slider: The checkpoint slider (values: training steps).
        view: The HTML of the current prompt and checkpoint.
    """

    def __init__(self, run: str | Path | None = None, *, state: InteractionState | None = None,
                 table: pd.DataFrame | None = None, **kwargs: Any) -> None:
        if state is None:
            if table is not None:
                state = InteractionState(table, **{k: v for k, v in kwargs.items() if k in ("reference", "top_k")})
            elif run is not None:
                state = InteractionState.from_run(run, **kwargs)
            else:
                raise ValueError("give a run folder, an interaction table or an InteractionState")
        self.state = state
        self._busy = False
        self.prompt_picker = w.Dropdown(options=state.prompt_options(), value=state.prompt_id, description="prompt",
                                        layout=w.Layout(width="560px"), style={"description_width": "60px"})
        self.prompt_picker.add_class("ilpnb-prompt-picker")
        self.kind = w.ToggleButtons(options=[(k.upper() if k != "both" else "AND + OR", k) for k in KINDS],
                                    value=state.kind, style={"button_width": "100px"},
                                    tooltips=["AND and OR interactions together", "AND only", "OR only"])
        self.kind.add_class("ilpnb-kind")
        self.top_k = w.Dropdown(options=[5, 10, 20, 50], value=state.top_k if state.top_k in (5, 10, 20, 50) else 10,
                                description="top", layout=w.Layout(width="130px"), style={"description_width": "35px"})
        self.top_k.add_class("ilpnb-top-k")
        self.slider = w.SelectionSlider(options=state.checkpoint_options(), value=state.step, description="checkpoint",
                                        continuous_update=False, layout=w.Layout(width="620px"),
                                        style={"description_width": "80px"})
        self.slider.add_class("ilpnb-checkpoint-slider")
        self.view = w.HTML()
        self.view.add_class("ilpnb-interaction-view")
        self.prompt_picker.observe(self._on_prompt, names="value")
        self.kind.observe(self._on_kind, names="value")
        self.top_k.observe(self._on_top_k, names="value")
        self.slider.observe(self._on_step, names="value")
        self.state.set_top_k(self.top_k.value)
        super().__init__([w.HBox([self.prompt_picker, self.top_k]), self.kind, self.slider, self.view])
        self.add_class("ilpnb-interaction-viewer")
        self.refresh()

    def _on_prompt(self, change: dict[str, Any]) -> None:
        if not self._busy and change["new"] is not None:
            self.state.set_prompt(change["new"])
            self.refresh()

    def _on_kind(self, change: dict[str, Any]) -> None:
        if not self._busy:
            self.state.set_kind(change["new"])
            self.refresh()

    def _on_top_k(self, change: dict[str, Any]) -> None:
        if not self._busy:
            self.state.set_top_k(change["new"])
            self.refresh()

    def _on_step(self, change: dict[str, Any]) -> None:
        if not self._busy and change["new"] is not None:
            self.state.set_step(change["new"])
            self.refresh()

    def refresh(self) -> None:
        """Copy the state into the widgets."""
        self._busy = True
        try:
            if self.prompt_picker.value != self.state.prompt_id:
                self.prompt_picker.value = self.state.prompt_id
            opts = self.state.checkpoint_options()
            if list(self.slider.options) != opts:
                self.slider.options = opts
            if self.slider.value != self.state.step:
                self.slider.value = self.state.step
            if self.kind.value != self.state.kind:
                self.kind.value = self.state.kind
        finally:
            self._busy = False
        self.view.value = HIDE_FALLBACK + self.state.render_html()

    def _ipython_display_(self) -> None:
        """The live widget, then a static copy of its view for front ends without a widget manager."""
        display_with_fallback(self, self.state.render_html(), f"{type(self).__name__} of {self.state.name or 'a run'} "
                              "(interactive in JupyterLab; a static copy follows)")
