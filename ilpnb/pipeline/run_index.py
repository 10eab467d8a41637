"""The ``index.html`` of a run folder: one self-contained page to read a run's results.

The page shows the run's name, preset, git commit and package versions (from ``env.json``),
every notebook of the run with its status and run time, a link to its HTML rendering
(``RUN/notebooks/NN_name.html``, made here with nbconvert) and its executed copy, and its
figures inline as data URIs, followed by the image files the notebooks saved under
``RUN/figures/``. Everything is read from the run folder, so ``build_index`` can be called
on its own at any time, for instance on a run that was interrupted.
"""

from __future__ import annotations

import base64
import datetime as _dt
import html
import json
import os
from pathlib import Path
from typing import Any

import nbformat

from ilpnb.runs import read_config

__all__ = ["build_index", "notebook_status", "notebook_figures"]

_EMBED_LIMIT = 5_000_000  # bytes; larger saved figures are linked, not embedded
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml")

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{margin-bottom:.2em} h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.5em 0} td,th{border:1px solid #ddd;padding:.3em .6em;
text-align:left;vertical-align:top} th{background:#f5f5f5;white-space:nowrap}
.ok{color:#11703a;font-weight:600} .failed{color:#b00020;font-weight:600}
.other{color:#8a6d00;font-weight:600} code{background:#f3f3f3;padding:0 .2em}
figure{display:inline-block;margin:.5em;vertical-align:top} figcaption{font-size:.85em;color:#555}
img{max-width:100%;border:1px solid #eee} .err{background:#fff0f0;border-left:4px solid #b00020;
padding:.5em 1em;white-space:pre-wrap;font-family:monospace;font-size:.9em}
.muted{color:#777}
"""


def _read_nb(path: Path) -> Any | None:
    try:
        return nbformat.read(str(path), as_version=4)
    except Exception:  # noqa: BLE001 - a half-written copy is reported, not fatal
        return None


def _first_error(nb: Any) -> str | None:
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            if output.get("output_type") == "error":
                return f"{output.get('ename', 'Error')}: {output.get('evalue', '')}"
    return None


def notebook_status(executed: str | Path) -> tuple[str, float | None, str | None]:
    """Outcome of an executed notebook, read from its metadata.

    Returns:
        ``(status, seconds, error)``; status is ``ok`` (papermill finished it without an
        exception and the runner marked it ``ok``), ``failed``, ``incomplete`` (started but
        interrupted), ``finished`` (finished cleanly by papermill outside the runner) or
        ``not run``.
    """
    path = Path(executed)
    if not path.exists():
        return "not run", None, None
    nb = _read_nb(path)
    if nb is None:
        return "incomplete", None, "the executed copy cannot be read"
    pm = nb.metadata.get("papermill", {}) or {}
    mine = nb.metadata.get("ilpnb", {}) or {}
    seconds = pm.get("duration") or mine.get("elapsed_s")
    error = _first_error(nb)
    if mine.get("status") == "failed" or pm.get("exception") or error:
        return "failed", seconds, error or mine.get("error") or "failed"
    if not pm.get("end_time"):
        return "incomplete", seconds, None
    return ("ok" if mine.get("status") == "ok" else "finished"), seconds, None


def notebook_figures(nb: Any) -> list[tuple[str, str]]:
    """The images a notebook's outputs show, as ``(mime type, base64 data)`` in order."""
    figures: list[tuple[str, str]] = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {}) or {}
            for mime in _IMAGE_TYPES:
                if mime in data:
                    payload = data[mime]
                    payload = "".join(payload) if isinstance(payload, list) else payload
                    if mime == "image/svg+xml":
                        payload = base64.b64encode(payload.encode()).decode()
                    figures.append((mime, payload.replace("\n", "")))
                    break
    return figures


def _render_html(executed: Path) -> tuple[Path | None, str | None]:
    """``NN_name.html`` beside the executed copy (re-made only when the copy is newer)."""
    target = executed.with_suffix(".html")
    if target.exists() and target.stat().st_mtime >= executed.stat().st_mtime:
        return target, None
    try:
        from nbconvert import HTMLExporter

        body, _ = HTMLExporter(template_name="lab").from_filename(str(executed))
    except Exception as err:  # noqa: BLE001 - the index says so instead of failing
        return None, f"{type(err).__name__}: {err}"
    _atomic_write(target, body)
    return target, None


def _atomic_write(target: Path, text: str) -> None:
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, target)


def _img(mime: str, b64: str, caption: str) -> str:
    return (
        f'<figure><img src="data:{mime};base64,{b64}" alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _load_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _names(run: Path, config: dict[str, Any]) -> list[str]:
    names = [str(n) for n in config.get("notebooks", []) if isinstance(n, str)]
    found = sorted(p.stem for p in (run / "notebooks").glob("*.ipynb"))
    return names + [n for n in found if n not in names]


def _header(run: Path, config: dict[str, Any], env: dict[str, Any]) -> str:
    e = html.escape
    rows = [
        ("preset", config.get("preset", "—")),
        ("git commit", env.get("git_commit") or "unknown (not a git checkout)"),
        ("created", env.get("created", "—")),
        ("python", env.get("python", "—")),
        ("device", env.get("device", "—")),
        ("platform", env.get("platform", "—")),
    ]
    versions = ", ".join(
        f"{k} {v}" for k, v in sorted((env.get("packages") or {}).items()) if v is not None
    )
    rows.append(("versions", versions or "—"))
    cells = "".join(f"<tr><th>{e(k)}</th><td><code>{e(str(v))}</code></td></tr>" for k, v in rows)
    return f"<h1>Run {e(run.name)}</h1><p class=muted>{e(str(run))}</p><table>{cells}</table>"


def _status_span(status: str) -> str:
    css = "ok" if status in ("ok", "finished") else "failed" if status == "failed" else "other"
    return f'<span class="{css}">{html.escape(status)}</span>'


def _saved_figures(run: Path) -> str:
    folder = run / "figures"
    files = sorted(
        p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in (".png", ".svg")
    )
    if not files:
        return ""
    parts = ["<h2>Figures saved by the notebooks</h2>"]
    for path in files:
        rel = path.relative_to(run).as_posix()
        if path.stat().st_size > _EMBED_LIMIT:
            parts.append(f'<p><a href="{html.escape(rel)}">{html.escape(rel)}</a> (large)</p>')
            continue
        mime = "image/svg+xml" if path.suffix.lower() == ".svg" else "image/png"
        parts.append(_img(mime, base64.b64encode(path.read_bytes()).decode(), rel))
    return "".join(parts)


def build_index(run_path: str | Path) -> Path:
    """Write ``RUN/index.html`` from what the run folder holds, and return its path.

    Renders each executed notebook to ``RUN/notebooks/NN_name.html`` when that is missing or
    older than the executed copy. Never raises for a failed or half-written notebook: the
    page says what happened instead.

    Args:
        run_path: the run folder.
    """
    run = Path(run_path).resolve()
    config = read_config(run, missing_ok=True)  # never raises: the page says what is there
    env = _load_json(run / "env.json")
    e = html.escape
    rows, sections = [], []
    for name in _names(run, config):
        executed = run / "notebooks" / f"{name}.ipynb"
        status, seconds, error = notebook_status(executed)
        links = "—"
        figures: list[tuple[str, str]] = []
        note = ""
        rendered = None
        if executed.exists():
            rendered, render_error = _render_html(executed)
            ipynb = f'<a href="notebooks/{e(executed.name)}">ipynb</a>'
            links = (
                f'<a href="notebooks/{e(rendered.name)}">html</a> · {ipynb}' if rendered else ipynb
            )
            if render_error:
                note = f"<p class=muted>HTML rendering failed: {e(render_error)}</p>"
            nb = _read_nb(executed)
            figures = notebook_figures(nb) if nb is not None else []
        time_txt = f"{seconds:.1f} s" if isinstance(seconds, (int, float)) else "—"
        rows.append(
            f'<tr><td><a href="#{e(name)}">{e(name)}</a></td><td>{_status_span(status)}</td>'
            f"<td>{time_txt}</td><td>{links}</td><td>{len(figures)}</td></tr>"
        )
        body = [f'<h2 id="{e(name)}">{e(name)} — {_status_span(status)}</h2>', note]
        if error:
            where = f"notebooks/{executed.stem}.html" if rendered else f"notebooks/{executed.name}"
            body.append(
                f'<div class="err">{e(error)}\nFull traceback: <a href="{e(where)}">{e(where)}'
                "</a></div>"
            )
        body += [_img(mime, data, f"{name} · figure {k}") for k, (mime, data) in
                 enumerate(figures, start=1)]
        if status == "not run":
            body.append("<p class=muted>Not run (an earlier notebook failed, or not reached).</p>")
        elif not figures and status != "failed":
            body.append("<p class=muted>This notebook shows no figures.</p>")
        sections.append("".join(body))
    table = (
        "<h2>Notebooks</h2><table><tr><th>notebook</th><th>status</th><th>time</th>"
        f"<th>open</th><th>figures</th></tr>{''.join(rows)}</table>"
        if rows
        else "<p>No notebooks in this run.</p>"
    )
    stamp = _dt.datetime.now().isoformat(timespec="seconds")
    page = (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        f"<title>ilpnb run {e(run.name)}</title><style>{_CSS}</style></head><body>"
        f"{_header(run, config, env)}{table}{''.join(sections)}{_saved_figures(run)}"
        f"<p class=muted>Index written {e(stamp)} by ilpnb.</p></body></html>\n"
    )
    target = run / "index.html"
    _atomic_write(target, page)
    return target
