"""Showing a widget so that it also reads without a live kernel (headless runs, HTML exports).

:func:`display_with_fallback` displays two outputs: the live widget, and a static HTML copy of
its current view wrapped in ``<div class="ilpnb-fallback">``. The live widget's own HTML
carries :data:`HIDE_FALLBACK` (a style rule hiding that copy), so in JupyterLab a person sees
the widget once; where no widget manager runs — an executed notebook opened later, nbconvert's
HTML (the run's ``index.html`` pages), a papermill run — the widget view is empty or absent
and the static copy of the default state is what shows. Nothing here waits for input.
"""

from __future__ import annotations

from typing import Any

__all__ = ["HIDE_FALLBACK", "display_with_fallback", "widget_bundle"]

HIDE_FALLBACK = "<style>.ilpnb-fallback{display:none !important}</style>"
"""Put into a live widget's HTML: hides the static copies on the page."""


def widget_bundle(widget: Any, text: str) -> dict[str, Any]:
    """The widget's display data with a short ``text/plain`` instead of its long repr."""
    data: dict[str, Any] = {"text/plain": text}
    model_id = getattr(widget, "model_id", None)
    if model_id is not None:
        data["application/vnd.jupyter.widget-view+json"] = {"version_major": 2, "version_minor": 0,
                                                            "model_id": model_id}
    return data


def display_with_fallback(widget: Any, static_html: str, text: str) -> None:
    """Display the live widget, then its static HTML copy (hidden where the widget is live).

    Args:
        widget: The ipywidgets widget.
        static_html: Its current view as HTML.
        text: One line for ``text/plain`` front ends.
    """
    from IPython.display import HTML, display

    display(widget_bundle(widget, text), raw=True)
    display(HTML(f'<div class="ilpnb-fallback">{static_html}</div>'))
