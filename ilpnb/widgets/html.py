"""Small HTML pieces shared by the inspectors (no ipywidgets here).

Everything the inspectors show is an HTML string built from these helpers, so the same text
appears in a live widget, in the static fallback a headless run leaves in the notebook, and
in tests. Styles are inline (plus one scoped ``<style>`` block), so the output survives
JupyterLab's sanitiser and nbconvert.
"""

from __future__ import annotations

import base64
import html
import io
import math
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = [
    "CSS",
    "esc",
    "badge",
    "bar",
    "table",
    "figure_img",
    "signed_color",
    "section",
]

CSS = """<style>
.ilpnb-box{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;font-size:13px;
  line-height:1.45;color:#222;max-width:980px}
.ilpnb-box h4{margin:.7em 0 .3em 0;font-size:13px;color:#333;border-bottom:1px solid #e3e3e3}
.ilpnb-box table{border-collapse:collapse;margin:.2em 0}
.ilpnb-box td,.ilpnb-box th{border:1px solid #e3e3e3;padding:2px 6px;text-align:left !important;
  vertical-align:top;font-size:12px}
.ilpnb-box th{background:#f6f6f6;font-weight:600}
.ilpnb-box .mono{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
  white-space:pre-wrap;background:#f7f7f7;padding:3px 6px;border-radius:3px}
.ilpnb-box .muted{color:#777}
.ilpnb-box .wrong{background:#f8c9c4;color:#8a1010;border-bottom:2px solid #c0392b;
  border-radius:2px}
.ilpnb-box .expected{background:#cfe8d2;border-bottom:2px solid #2e8540;border-radius:2px}
.ilpnb-box .missing{color:#c0392b;font-style:italic}
</style>"""


def esc(text: Any) -> str:
    """HTML-escaped text (None becomes an empty string)."""
    return "" if text is None else html.escape(str(text))


def badge(text: str, color: str = "#555", title: str | None = None) -> str:
    """A small coloured label."""
    tip = f' title="{esc(title)}"' if title else ""
    return (f'<span{tip} style="display:inline-block;padding:0 6px;margin-right:4px;border-radius:8px;'
            f'background:{color};color:white;font-size:11px;font-weight:600">{esc(text)}</span>')


def bar(value: float, vmax: float = 1.0, color: str = "#4a78c2", width: int = 140, neg_color: str = "#c0392b") -> str:
    """A horizontal bar of ``|value| / vmax`` of ``width`` pixels (``neg_color`` for negative values)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return '<span class="muted">–</span>'
    frac = 0.0 if vmax <= 0 else min(1.0, abs(float(value)) / vmax)
    fill = color if value >= 0 else neg_color
    return (f'<span style="display:inline-block;width:{width}px;height:9px;background:#eee;'
            f'vertical-align:middle"><span style="display:block;width:{frac * width:.0f}px;'
            f'height:9px;background:{fill}"></span></span>')


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], raw: bool = False) -> str:
    """An HTML table; cells are escaped unless ``raw`` (then they are HTML already)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c if raw else esc(c)}</td>" for c in row) + "</tr>"
                   for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def figure_img(fig: Any, dpi: int = 100, alt: str = "figure") -> str:
    """A matplotlib figure as an inline PNG ``<img>`` (data URI)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return f'<img alt="{esc(alt)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def signed_color(value: float, vmax: float) -> str:
    """Background colour for a signed score: red for positive, blue for negative, alpha by size."""
    if vmax <= 0 or value is None or (isinstance(value, float) and math.isnan(value)):
        return "rgba(0,0,0,0)"
    a = min(1.0, abs(float(value)) / vmax) * 0.85
    return f"rgba(214,39,40,{a:.2f})" if value > 0 else f"rgba(31,119,180,{a:.2f})"


def section(title: str, body: str) -> str:
    """A titled block."""
    return f"<h4>{esc(title)}</h4>{body}"
