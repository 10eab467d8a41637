"""State of the sample inspector: filter a run's samples, pick one, render it as HTML.

:class:`SampleState` holds one row per sample (:func:`ilpnb.widgets.sources.sample_table`)
and the run's dynamics, the current filters (learned / diagnosed cause / stage / planted
cause) and the sample picked. It renders the picked sample as HTML: the prompt, the gold
response and the model's greedy output with the first wrong token highlighted, the learning
curve (loss, token accuracy, exact reproduction over steps, stage ends marked), the final
measurements, the diagnosis scores and evidence, and its near-duplicate siblings.

It imports no ipywidgets: :mod:`ilpnb.widgets.sample_widget` wires widgets to it, tests
drive it directly.

The first wrong token (:func:`first_wrong_token`) is found by tokenizing the gold response
and the greedy output *the same way* — with the run's own tokenizer when it can be loaded,
else as words and punctuation — and taking the first position where the two sequences
differ. Greedy decoding and teacher forcing agree until the first mistake, so this is the
first response position whose argmax is not the gold token, found from text alone (no model
forward pass, and the same answer for any model). Re-tokenizing decoded text can split a
word differently from training only after the two texts already differ, so the position is
robust; the method used is shown next to the texts.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.plots.samples import plot_learning_curve, stage_boundaries

from .html import CSS, badge, bar, esc, figure_img, section, table
from .sources import CAUSES, final_checkpoint, prompt_siblings, read_dynamics, sample_table

__all__ = [
    "FILTERS",
    "ALL",
    "TokenDiff",
    "word_pieces",
    "tokenizer_pieces",
    "first_wrong_token",
    "SampleState",
]

FILTERS = ("learned", "cause", "stage", "planted")
"""The filter names, in the order the widget shows them."""

ALL = "all"
"""The filter value that lets everything through."""

CAUSE_COLORS = {
    "none": "#2e8540", "unattributed": "#777777", "missing_knowledge": "#8e44ad",
    "pretrain_conflict": "#c0392b", "data_conflict": "#d35400", "left_forgetting": "#2471a3",
    "rare_pattern": "#7d6608",
}

Pieces = Callable[[str], list[tuple[str, Any]]]
"""Splits a text into ``(piece text, comparison key)``; the pieces concatenate to the text."""


def word_pieces(text: str) -> list[tuple[str, Any]]:
    """Words and punctuation marks, each with the whitespace before it (key: the bare piece)."""
    pieces = [(m.group(0), m.group(1)) for m in re.finditer(r"\s*(\w+|[^\w\s])", text)]
    tail = text[sum(len(p) for p, _ in pieces):]
    if tail and pieces:
        pieces[-1] = (pieces[-1][0] + tail, pieces[-1][1])
    return pieces


def tokenizer_pieces(tokenizer: Any, lead: str = " ") -> Pieces:
    """Pieces by a tokenizer's offsets (key: the token id).

    Args:
        tokenizer: A ``tokenizers.Tokenizer`` or a fast transformers tokenizer.
        lead: Text put before the text while tokenizing and dropped from the pieces: a space
            makes byte-level BPE and SentencePiece tokenizers split an answer as it reads inside
            a sentence (``"Ġyellow"``, not ``"y" "ell" "ow"``). Both texts compared get it.
    """

    def encode(text: str) -> tuple[list[int], list[tuple[int, int]]]:
        if hasattr(tokenizer, "encode") and hasattr(tokenizer, "get_vocab_size"):  # tokenizers.Tokenizer
            enc = tokenizer.encode(text, add_special_tokens=False)
            return list(enc.ids), [tuple(o) for o in enc.offsets]
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]

    def split(text: str) -> list[tuple[str, Any]]:
        ids, offs = encode(lead + text)
        out, cursor = [], 0
        for k, (tid, (_, end)) in enumerate(zip(ids, offs)):
            end = len(text) if k == len(ids) - 1 else min(len(text), max(end - len(lead), cursor))
            if end > cursor or k == len(ids) - 1:
                out.append((text[cursor:end], int(tid)))
            cursor = end
        return out

    return split


@dataclass(frozen=True)
class TokenDiff:
    """Gold response and greedy output split into pieces, and where they first differ.

    Attributes:
        gold: ``(text, key)`` pieces of the gold response.
        output: ``(text, key)`` pieces of the greedy output.
        index: First position where the keys differ (``len`` of the shorter one when one is a
            prefix of the other); None when they are identical.
        method: ``"tokens"`` (the run's tokenizer) or ``"words"``.
    """

    gold: list[tuple[str, Any]]
    output: list[tuple[str, Any]]
    index: int | None
    method: str

    @property
    def match(self) -> bool:
        """The output reproduces the gold response."""
        return self.index is None

    @property
    def wrong_piece(self) -> str | None:
        """The output's first wrong piece (None when it matches or stops early)."""
        if self.index is None or self.index >= len(self.output):
            return None
        return self.output[self.index][0]

    @property
    def expected_piece(self) -> str | None:
        """The gold piece expected there (None when the output should have stopped)."""
        if self.index is None or self.index >= len(self.gold):
            return None
        return self.gold[self.index][0]


def first_wrong_token(gold: str, output: str, pieces: Pieces | None = None, method: str | None = None) -> TokenDiff:
    """Where a greedy output first departs from the gold response.

    Args:
        gold: The gold response.
        output: The greedy output.
        pieces: The splitter (:func:`tokenizer_pieces` or :func:`word_pieces`, the default).
        method: Name of the splitter for display (``"tokens"`` / ``"words"``).
    """
    split = pieces or word_pieces
    name = method or ("words" if pieces is None or pieces is word_pieces else "tokens")
    g, o = split(gold.strip()), split(output.strip())
    index = None
    for k in range(max(len(g), len(o))):
        if k >= len(g) or k >= len(o) or g[k][1] != o[k][1]:
            index = k
            break
    return TokenDiff(g, o, index, name)


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    if isinstance(x, (bool, np.bool_)):
        return "yes" if x else "no"
    if isinstance(x, (float, np.floating)):
        return f"{float(x):.{digits}f}"
    if isinstance(x, str) and x[:1] in ("Ġ", "▁"):  # a tokenizer's word-start marker
        return "␣" + x[1:]
    return str(x)


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and np.isnan(x))


class SampleState:
    """Filters, the picked sample, and its HTML rendering (see the module docstring).

    Args:
        samples: One row per sample; needs ``id``, ``learned`` and ``sample_stage``; uses
            ``prompt``, ``response``, ``output``, ``base_output``, ``planted_cause``,
            ``cause``, ``score_<cause>``, ``evidence``, ``siblings`` and metric columns when
            present.
        dynamics: The run's ``dynamics.parquet`` (for learning curves); None for none.
        pieces: Splitter for the first wrong token (default: words and punctuation).
        method: Name of that splitter for display.
        name: The run's name, shown in the header.
        default_unlearned: Start with the ``learned`` filter on ``unlearned`` when any sample
            is unlearned (one click from an unlearned sample).
    """

    def __init__(self, samples: pd.DataFrame, dynamics: pd.DataFrame | None = None, *,
                 pieces: Pieces | None = None, method: str | None = None, name: str = "",
                 default_unlearned: bool = True) -> None:
        if "id" not in samples.columns:
            raise ValueError("samples need an 'id' column")
        self.samples = samples.copy().reset_index(drop=True)
        self.samples["id"] = self.samples["id"].astype(str)
        if "learned" not in self.samples.columns:
            self.samples["learned"] = False
        if "sample_stage" not in self.samples.columns:
            self.samples["sample_stage"] = 0
        self._by_id = {i: k for k, i in enumerate(self.samples["id"])}
        self.dynamics = dynamics
        self._dyn_by_id = ({str(k): g for k, g in dynamics.groupby("id", sort=False)}
                           if dynamics is not None and len(dynamics) else {})
        self.boundaries = stage_boundaries(dynamics) if dynamics is not None and len(dynamics) else []
        self.pieces = pieces
        self.method = method or ("words" if pieces is None else "tokens")
        self.name = name
        self.filters: dict[str, str] = {f: ALL for f in FILTERS}
        self._siblings_fallback: dict[str, list[str]] | None = None
        self._curve_cache: dict[str, str] = {}
        if default_unlearned and (~self.samples["learned"].astype(bool)).any():
            self.filters["learned"] = "unlearned"
        ids = self.visible_ids
        self.current: str | None = ids[0] if ids else None

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_run(cls, run: str | Path, *, diagnosis: pd.DataFrame | None | bool = True, tokenizer: Any = "auto",
                 default_unlearned: bool = True) -> SampleState:
        """The state of a run folder.

        Args:
            run: The run folder.
            diagnosis: A diagnosis table; ``True`` reads ``RUN/diagnosis.parquet`` if present.
            tokenizer: For the first wrong token: a tokenizer (``tokenizers.Tokenizer`` or a
                fast transformers one), ``"auto"`` (the final checkpoint's ``tokenizer.json``
                when there is one, else words), or None (words).
        """
        run = Path(run)
        dyn = read_dynamics(run)
        table = sample_table(run, dyn, diagnosis)
        if isinstance(tokenizer, str) and tokenizer == "auto":
            tokenizer = _run_tokenizer(run)
        pieces = tokenizer_pieces(tokenizer) if tokenizer is not None else None
        return cls(table, dyn, pieces=pieces, method="tokens" if tokenizer is not None else "words",
                   name=run.name, default_unlearned=default_unlearned)

    # -- filters and picking ------------------------------------------------------------
    def _column(self, name: str) -> str | None:
        col = {"learned": "learned", "cause": "cause", "stage": "sample_stage", "planted": "planted_cause"}[name]
        if col not in self.samples.columns or self.samples[col].isna().all():
            return None
        return col

    def filter_options(self, name: str) -> list[tuple[str, str]]:
        """``(label, value)`` choices of one filter, ``"all"`` first, with sample counts."""
        if name not in FILTERS:
            raise KeyError(f"unknown filter {name!r} (known: {', '.join(FILTERS)})")
        n = len(self.samples)
        out = [(f"all ({n})", ALL)]
        col = self._column(name)
        if col is None:
            return out
        if name == "learned":
            flags = self.samples["learned"].astype(bool)
            return out + [(f"unlearned ({int((~flags).sum())})", "unlearned"),
                          (f"learned ({int(flags.sum())})", "learned")]
        counts = self.samples[col].dropna().astype(str).value_counts()
        order = {c: k for k, c in enumerate(("none", *CAUSES, "unattributed"))}
        values = sorted(counts.index, key=lambda v: (order.get(v, 99), _natural(v)))
        label = "stage " if name == "stage" else ""
        return out + [(f"{label}{v} ({int(counts[v])})", v) for v in values]

    def available_filters(self) -> list[str]:
        """The filters that have something to choose (a run without diagnosis has no cause filter)."""
        return [f for f in FILTERS if len(self.filter_options(f)) > 1]

    def _mask(self, filters: dict[str, str]) -> pd.Series:
        mask = pd.Series(True, index=self.samples.index)
        for name, value in filters.items():
            if value == ALL:
                continue
            if name == "learned":
                flags = self.samples["learned"].astype(bool)
                mask &= flags if value == "learned" else ~flags
            else:
                col = self._column(name)
                if col is not None:
                    mask &= self.samples[col].astype(str) == str(value)
        return mask

    def set_filter(self, name: str, value: Any) -> None:
        """Set one filter; the picked sample stays if still shown, else the first shown one."""
        allowed = [v for _, v in self.filter_options(name)]
        value = str(value)
        if value not in allowed:
            raise ValueError(f"filter {name!r} has no value {value!r} (choices: {', '.join(allowed)})")
        self.filters[name] = value
        ids = self.visible_ids
        if self.current not in ids:
            self.current = ids[0] if ids else None

    def reset_filters(self) -> None:
        """Show every sample."""
        for name in FILTERS:
            self.filters[name] = ALL

    @property
    def visible(self) -> pd.DataFrame:
        """The samples that pass the filters."""
        return self.samples[self._mask(self.filters)]

    @property
    def visible_ids(self) -> list[str]:
        """Ids of the samples that pass the filters, in run order."""
        return self.visible["id"].tolist()

    def options(self) -> list[tuple[str, str]]:
        """``(label, id)`` of the shown samples for a picker: ✗/✓ learned, id, prompt start."""
        out = []
        for row in self.visible.itertuples(index=False):
            prompt = getattr(row, "prompt", None) or ""
            short = prompt if len(prompt) <= 60 else prompt[:57] + "…"
            mark = "✓" if bool(row.learned) else "✗"
            out.append((f"{mark} {row.id} · {short}", row.id))
        return out

    def select(self, sample_id: str) -> None:
        """Pick a sample; filters that would hide it are reset to ``all``."""
        sample_id = str(sample_id)
        if sample_id not in self._by_id:
            raise KeyError(f"no sample {sample_id!r} in this run")
        if sample_id not in self.visible_ids:
            for name in FILTERS:
                if self.filters[name] != ALL and sample_id not in self.samples[
                        self._mask({name: self.filters[name]})]["id"].values:
                    self.filters[name] = ALL
        self.current = sample_id

    def step(self, delta: int = 1) -> str | None:
        """Pick the next (``delta`` > 0) or previous shown sample, wrapping around."""
        ids = self.visible_ids
        if not ids:
            self.current = None
        elif self.current not in ids:
            self.current = ids[0]
        else:
            self.current = ids[(ids.index(self.current) + delta) % len(ids)]
        return self.current

    def summary(self) -> str:
        """``"42 of 54 samples shown"``."""
        return f"{len(self.visible)} of {len(self.samples)} samples shown"

    # -- the picked sample --------------------------------------------------------------
    def row(self, sample_id: str | None = None) -> pd.Series | None:
        """The sample's row (the picked one by default)."""
        sid = self.current if sample_id is None else str(sample_id)
        if sid is None or sid not in self._by_id:
            return None
        return self.samples.iloc[self._by_id[sid]]

    def curve_rows(self, sample_id: str | None = None) -> pd.DataFrame:
        """The sample's rows of the dynamics table (empty without dynamics)."""
        sid = self.current if sample_id is None else str(sample_id)
        return self._dyn_by_id.get(sid, pd.DataFrame())

    def token_diff(self, sample_id: str | None = None, which: str = "output") -> TokenDiff | None:
        """First wrong token of the final (``"output"``) or base (``"base_output"``) greedy output."""
        row = self.row(sample_id)
        if row is None or _is_missing(row.get("response")) or _is_missing(row.get(which)):
            return None
        return first_wrong_token(str(row["response"]), str(row[which]), self.pieces, self.method)

    def siblings(self, sample_id: str | None = None) -> list[str]:
        """Near-duplicate sample ids: the diagnosis's ``siblings``, else a prompt rule."""
        row = self.row(sample_id)
        if row is None:
            return []
        if "siblings" in self.samples.columns:
            value = row.get("siblings")
            if value is None or (isinstance(value, float) and np.isnan(value)):
                return []
            return [str(s) for s in list(value) if str(s) in self._by_id and str(s) != row["id"]]
        if self._siblings_fallback is None:
            if "prompt" in self.samples.columns and self.samples["prompt"].notna().any():
                prompts = dict(zip(self.samples["id"], self.samples["prompt"].fillna("")))
                self._siblings_fallback = prompt_siblings(prompts)
            else:
                self._siblings_fallback = {}
        return self._siblings_fallback.get(row["id"], [])

    def curve_figure(self, sample_id: str | None = None) -> Any:
        """The learning curve as a matplotlib figure (not registered with pyplot)."""
        from matplotlib.figure import Figure

        row = self.row(sample_id)
        fig = Figure(figsize=(6.6, 2.7))
        ax = fig.add_subplot(111)
        rows = self.curve_rows(sample_id)
        if row is None or rows.empty:
            ax.text(0.5, 0.5, "no dynamics for this sample", ha="center", va="center", transform=ax.transAxes)
            ax.set_axis_off()
            return fig
        plot_learning_curve(rows, ax, boundaries=self.boundaries, sample_stage=row["sample_stage"],
                            title=f"{row['id']}: learning curve (shaded: its own stage)")
        fig.subplots_adjust(bottom=0.3)
        return fig

    # -- rendering ----------------------------------------------------------------------
    def render_header(self, sample_id: str | None = None) -> str:
        """Id, learned badge, stage, diagnosed and planted cause."""
        row = self.row(sample_id)
        if row is None:
            return '<p class="muted">No sample matches these filters.</p>'
        parts = [f'<b style="font-size:15px" class="ilpnb-sample-id">{esc(row["id"])}</b> ']
        parts.append(badge("learned", "#2e8540") if bool(row["learned"]) else badge("unlearned", "#c0392b"))
        parts.append(badge(f"stage {row['sample_stage']}", "#566573"))
        cause = row.get("cause")
        if not _is_missing(cause):
            parts.append(badge(f"diagnosed: {cause}", CAUSE_COLORS.get(str(cause), "#555")))
        planted = row.get("planted_cause")
        if not _is_missing(planted):
            agree = ""
            if not _is_missing(cause) and str(cause) != "unattributed":
                agree = " ✓" if str(cause) == str(planted) else " ✗"
            parts.append(badge(f"planted: {planted}{agree}", "#34495e",
                               title="the world's truth.jsonl; the diagnosis never reads it"))
        return "<div>" + "".join(parts) + "</div>"

    def _diff_html(self, diff: TokenDiff, side: str) -> str:
        pieces = diff.gold if side == "gold" else diff.output
        k = diff.index
        cls = "expected" if side == "gold" else "wrong"
        out = []
        for j, (text, _) in enumerate(pieces):
            if k is not None and j == k:
                lead = len(text) - len(text.lstrip())
                out.append(esc(text[:lead]) + f'<span class="{cls}">{esc(text[lead:])}</span>')
            else:
                out.append(esc(text))
        if k is not None and k >= len(pieces):
            out.append('<span class="missing"> ⟨stops here⟩</span>' if side == "output"
                       else '<span class="missing"> ⟨end: should stop here⟩</span>')
        return "".join(out)

    def render_texts(self, sample_id: str | None = None) -> str:
        """Prompt, gold response, greedy outputs (final and base) with the first wrong token."""
        row = self.row(sample_id)
        if row is None:
            return ""
        prompt = row.get("prompt")
        if _is_missing(prompt):
            return '<p class="muted">The run\'s SFT data could not be read; only measurements are shown.</p>'
        lines = [("prompt", f'<span class="mono ilpnb-prompt">{esc(prompt)}</span>')]
        diff = self.token_diff(sample_id, "output")
        if diff is None:
            lines.append(("gold response", f'<span class="mono">{esc(row.get("response"))}</span>'))
            lines.append(("greedy output", '<span class="muted">not recorded</span>'))
        else:
            lines.append(("gold response", f'<span class="mono">{self._diff_html(diff, "gold")}</span>'))
            verdict = ('<span style="color:#2e8540">reproduced exactly</span>' if diff.match else
                       f"first wrong {'token' if diff.method == 'tokens' else 'word'} at position {diff.index + 1}")
            lines.append(("greedy output (final)",
                          f'<span class="mono">{self._diff_html(diff, "output")}</span> '
                          f'<span class="muted">— {verdict}</span>'))
        base = self.token_diff(sample_id, "base_output")
        if base is not None:
            verdict = "reproduced exactly" if base.match else f"first wrong at position {base.index + 1}"
            lines.append(("greedy output (base, step 0)",
                          f'<span class="mono">{self._diff_html(base, "output")}</span> '
                          f'<span class="muted">— {verdict}</span>'))
        body = "".join(f'<tr><th style="width:170px">{esc(k)}</th><td>{v}</td></tr>' for k, v in lines)
        note = (f'<div class="muted" style="font-size:11px">Compared by '
                f'{"the run tokenizer’s tokens" if self.method == "tokens" else "words and punctuation"}; '
                'red: first wrong piece of the output, green: the gold piece expected there.</div>')
        return f"<table>{body}</table>{note}"

    def render_metrics(self, sample_id: str | None = None) -> str:
        """The final point's measurements and the sample's learning history."""
        row = self.row(sample_id)
        if row is None:
            return ""
        spec = [("loss", "loss"), ("token_acc", "token accuracy"), ("exact", "exact"),
                ("gold_first_p", "p(gold first token)"), ("gold_first_rank", "rank of gold first token"),
                ("top_token", "top first token"), ("mc_p_gold", "MC p(gold)"), ("pass@5", "MC pass@5"),
                ("base_top_answer", "base model's top answer"), ("first_learned_step", "first learned at step"),
                ("forgetting_events", "forgetting events"), ("learned_base", "learned by the base model")]
        integral = {"gold_first_rank", "first_learned_step", "forgetting_events"}
        cells = [(label, _fmt(row.get(col)) if col not in integral or _is_missing(row.get(col))
                  else str(int(row.get(col)))) for col, label in spec if col in row.index]
        half = (len(cells) + 1) // 2
        rows = [(a[0], a[1], *(cells[half + k] if half + k < len(cells) else ("", "")))
                for k, a in enumerate(cells[:half])]
        return table(["at the final point", "", "", ""], rows)

    def render_diagnosis(self, sample_id: str | None = None) -> str:
        """Scores per cause as bars (the chosen cause in bold) and the evidence."""
        row = self.row(sample_id)
        if row is None:
            return ""
        score_cols = [c for c in self.samples.columns if c.startswith("score_")]
        if "cause" not in self.samples.columns and not score_cols:
            return ('<p class="muted">No diagnosis yet: this run has no <code>diagnosis.parquet</code> '
                    '(run the diagnosis notebook, then reopen the inspector).</p>')
        cause = row.get("cause")
        vals = [float(row[c]) if not _is_missing(row.get(c)) else np.nan for c in score_cols]
        vmax = max([abs(v) for v in vals if not np.isnan(v)] + [1.0])
        rows = []
        for col, v in zip(score_cols, vals):
            name = col[len("score_"):]
            label = f"<b>{esc(name)}</b>" if str(cause) == name else esc(name)
            rows.append((label, bar(v, vmax, CAUSE_COLORS.get(name, "#4a78c2")), esc(_fmt(v))))
        head = f'<div>cause: <b>{esc(_fmt(cause))}</b></div>'
        evidence = row.get("evidence")
        ev = (f'<div style="margin-top:4px"><i>evidence:</i> {esc(evidence)}</div>'
              if not _is_missing(evidence) and str(evidence) else "")
        return head + table(["cause", "score", ""], rows, raw=True) + ev

    def render_siblings(self, sample_id: str | None = None) -> str:
        """The near-duplicate siblings: id, prompt, gold response, learned, final output."""
        sibs = self.siblings(sample_id)
        if not sibs:
            return '<p class="muted">No near-duplicate siblings.</p>'
        source = ("from the diagnosis" if "siblings" in self.samples.columns
                  else "same prompt up to case, punctuation and a lead-in (the diagnosis lists none)")
        rows = []
        for sid in sibs:
            r = self.row(sid)
            rows.append((sid, r.get("prompt", ""), r.get("response", ""), _fmt(bool(r["learned"])),
                         r.get("output", "")))
        return (f'<div class="muted" style="font-size:11px">{esc(source)}</div>'
                + table(["id", "prompt", "gold", "learned", "greedy output"], rows))

    def render_curve(self, sample_id: str | None = None) -> str:
        """The learning curve as an inline PNG."""
        sid = self.current if sample_id is None else str(sample_id)
        if sid is None:
            return ""
        if sid not in self._curve_cache:
            self._curve_cache[sid] = figure_img(self.curve_figure(sid), alt=f"learning curve of {sid}")
        return self._curve_cache[sid]

    def render_html(self, sample_id: str | None = None, siblings: bool = True) -> str:
        """The whole card of a sample (the picked one by default), with filters and count."""
        row = self.row(sample_id)
        flt = ", ".join(f"{k}={v}" for k, v in self.filters.items() if v != ALL) or "none"
        top = (f'<div class="muted" style="font-size:11px">run {esc(self.name)} · filters: {esc(flt)} · '
               f'{esc(self.summary())}</div>')
        if row is None:
            return f'<div class="ilpnb-box ilpnb-sample">{CSS}{top}{self.render_header(sample_id)}</div>'
        parts = [CSS, top, self.render_header(sample_id), self.render_texts(sample_id),
                 section("learning curve", self.render_curve(sample_id)),
                 section("measurements", self.render_metrics(sample_id)),
                 section("diagnosis", self.render_diagnosis(sample_id))]
        if siblings:
            parts.append(section("near-duplicate siblings", self.render_siblings(sample_id)))
        return f'<div class="ilpnb-box ilpnb-sample" data-sample-id="{esc(row["id"])}">' + "".join(parts) + "</div>"

    def _repr_html_(self) -> str:
        return self.render_html()


def _natural(v: str) -> tuple[Any, ...]:
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", v))


def _run_tokenizer(run: Path) -> Any:
    """The final checkpoint's tokenizer (``tokenizer.json`` read by ``tokenizers``), or None."""
    ck = final_checkpoint(run)
    path = Path(ck.path) / "tokenizer.json" if ck is not None else None
    if path is None or not path.exists():
        return None
    try:
        from tokenizers import Tokenizer

        return Tokenizer.from_file(str(path))
    except Exception:  # noqa: BLE001 - any failure falls back to words
        return None
