"""The sample inspector widget: ipywidgets wired to a :class:`~ilpnb.widgets.samples.SampleState`.

``SampleInspector(run)`` shows one dropdown per filter (learned, diagnosed cause, stage,
planted cause — those with something to choose), a sample picker with previous / next
buttons and a count, the picked sample's card (texts with the first wrong token, learning
curve, measurements, diagnosis, siblings) and one button per sibling that jumps to it.

All logic lives in the state; this module only moves values between widgets and state.
Displaying the inspector shows the live widget and, after it, a static HTML copy of the
card that the live widget hides (:func:`ilpnb.widgets.display.display_with_fallback`): a
headless (papermill) run, the executed notebook opened later and its HTML rendering all
show the default state; nothing waits for input.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import ipywidgets as w

from .display import HIDE_FALLBACK, display_with_fallback
from .samples import FILTERS, SampleState

__all__ = ["SampleInspector"]

_LABELS = {"learned": "learned", "cause": "cause", "stage": "stage", "planted": "planted"}


class SampleInspector(w.VBox):
    """Filter a run's samples, pick one, look at it.

    Args:
        run: A run folder (ignored when ``state`` is given).
        state: A ready state (tests, or a state built from other tables).
        **kwargs: Passed to :meth:`SampleState.from_run` (``diagnosis``, ``tokenizer``,
            ``default_unlearned``).

    Attributes:
        state: The :class:`SampleState`.
        filters: The filter dropdowns by name (only those with choices).
        picker: The sample dropdown.
        prev_button: Previous shown sample.
        next_button: Next shown sample.
        count: ``"n of N samples shown"``.
        card: The picked sample's HTML.
        sibling_buttons: One button per sibling of the picked sample.
    """

    def __init__(self, run: str | Path | None = None, *, state: SampleState | None = None, **kwargs: Any) -> None:
        if state is None:
            if run is None:
                raise ValueError("give a run folder or a SampleState")
            state = SampleState.from_run(run, **kwargs)
        self.state = state
        self._busy = False
        self.filters: dict[str, w.Dropdown] = {}
        for name in FILTERS:
            opts = state.filter_options(name)
            if len(opts) < 2:
                continue
            dd = w.Dropdown(options=opts, value=state.filters[name], description=_LABELS[name],
                            layout=w.Layout(width="260px"), style={"description_width": "60px"})
            dd.add_class(f"ilpnb-filter-{name}")
            dd.observe(self._on_filter(name), names="value")
            self.filters[name] = dd
        self.picker = w.Dropdown(options=state.options(), value=state.current, description="sample",
                                 layout=w.Layout(width="560px"), style={"description_width": "60px"})
        self.picker.add_class("ilpnb-sample-picker")
        self.picker.observe(self._on_pick, names="value")
        self.prev_button = w.Button(description="◀ previous", layout=w.Layout(width="100px"))
        self.next_button = w.Button(description="next ▶", layout=w.Layout(width="100px"))
        self.prev_button.add_class("ilpnb-prev")
        self.next_button.add_class("ilpnb-next")
        self.prev_button.on_click(lambda _b: self._step(-1))
        self.next_button.on_click(lambda _b: self._step(1))
        self.count = w.HTML()
        self.count.add_class("ilpnb-count")
        self.card = w.HTML()
        self.card.add_class("ilpnb-sample-card")
        self.sibling_box = w.HBox()
        self.sibling_buttons: list[w.Button] = []
        super().__init__([w.HBox(list(self.filters.values())),
                          w.HBox([self.picker, self.prev_button, self.next_button, self.count]),
                          self.card, self.sibling_box])
        self.add_class("ilpnb-sample-inspector")
        self.refresh()

    # -- events -------------------------------------------------------------------------
    def _on_filter(self, name: str) -> Any:
        def handler(change: dict[str, Any]) -> None:
            if self._busy:
                return
            self.state.set_filter(name, change["new"])
            self.refresh()
        return handler

    def _on_pick(self, change: dict[str, Any]) -> None:
        if self._busy or change["new"] is None:
            return
        self.state.select(change["new"])
        self.refresh()

    def _step(self, delta: int) -> None:
        self.state.step(delta)
        self.refresh()

    def _jump(self, sample_id: str) -> None:
        self.state.select(sample_id)
        self.refresh()

    # -- view ---------------------------------------------------------------------------
    def refresh(self) -> None:
        """Copy the state into the widgets."""
        self._busy = True
        try:
            for name, dd in self.filters.items():
                if dd.value != self.state.filters[name]:
                    dd.value = self.state.filters[name]
            opts = self.state.options()
            if list(self.picker.options) != opts:
                self.picker.options = opts
            if self.picker.value != self.state.current:
                self.picker.value = self.state.current
        finally:
            self._busy = False
        self.count.value = f'<span style="color:#666;margin-left:8px;white-space:nowrap">{self.state.summary()}</span>'
        self.card.value = HIDE_FALLBACK + self.state.render_html()
        sibs = self.state.siblings() if self.state.current is not None else []
        stale = self.sibling_buttons
        self.sibling_buttons = []
        for sid in sibs:
            b = w.Button(description=f"open sibling {sid}", layout=w.Layout(width="auto"))
            b.add_class("ilpnb-sibling")
            b.on_click(lambda _b, sid=sid: self._jump(sid))
            self.sibling_buttons.append(b)
        self.sibling_box.children = tuple(self.sibling_buttons)
        for b in stale:  # no longer shown: release their comms
            b.close()

    @property
    def shown_id(self) -> str | None:
        """Id of the sample the card shows."""
        return self.state.current

    def _ipython_display_(self) -> None:
        """The live widget, then a static copy of its view for front ends without a widget manager."""
        display_with_fallback(self, self.state.render_html(), f"{type(self).__name__} of {self.state.name or 'a run'} "
                              "(interactive in JupyterLab; a static copy follows)")
