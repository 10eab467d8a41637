"""State of the interaction viewer: a prompt, a checkpoint, its words and interactions as HTML.

The viewer reads a long table with one row per prompt × checkpoint × subset × kind — the
run's ``interactions.parquet`` (written by :func:`ilpnb.pipeline.sweep.interaction_dynamics`)
when it exists, else one computed here from a few of the run's own samples at its checkpoints
with :func:`ilpnb.interactions.compute_interactions` (:func:`compute_checkpoint_interactions`),
or one built from results already in hand (:func:`interactions_from_results`). Its expected
schema (:data:`INTERACTION_SCHEMA`):

==============  ==============================================================================
``prompt_id``   key of the prompt (the sample id for SFT prompts)
``prompt``      optional: the prompt text (else looked up: ``RUN/interactions/prompts.jsonl``,
                the run's SFT records, or the id itself)
``step``        training step of the checkpoint (0 = the base model)
``subset``      sorted tuple of player indices (lists / arrays are accepted)
``words``       the players' words joined by ``" & "``
``order``       ``len(subset)``
``kind``        ``"and"`` or ``"or"``
``value``       the interaction ``I(S)``
``salient``     ``|I(S)| > 0.05 · max|I|`` at that prompt and checkpoint
``status``      optional: ``"preserved"`` / ``"emerged"`` / ``"removed"`` / ``"none"``;
                computed here from ``salient`` when absent, with the definitions of
                :mod:`ilpnb.interactions.dynamics` (``Ω_t`` the salient set at checkpoint
                ``t``, ``t = 0`` the base): preserved ``P_t = P_{t−1} ∩ Ω_t``, emerged
                ``Ω_t ∖ P_t``, removed ``Ω_0 ∖ Ω_t``
``v``           optional: the game value ``v(S)``; gives the single-word effects
                ``v(N) − v(N∖{i})`` (else the order-1 AND interactions ``I({i})`` are used)
``checkpoint``  optional: a label for the checkpoint
``target``      optional: the text whose log-odds is the game's value
==============  ==============================================================================

:class:`InteractionState` holds the current prompt, checkpoint, kind filter and list length,
and renders the prompt's words coloured by their single-word effects, the top AND / OR
interactions as a ranked list with their orders, and which salient interactions are
preserved, emerged or removed at that checkpoint. It imports no ipywidgets.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .html import CSS, badge, bar, esc, section, signed_color, table

__all__ = [
    "INTERACTION_SCHEMA",
    "REQUIRED_COLUMNS",
    "STATUSES",
    "KINDS",
    "InteractionState",
    "interactions_from_results",
    "compute_checkpoint_interactions",
    "normalise_table",
]

INTERACTION_SCHEMA: dict[str, str] = {
    "prompt_id": "key of the prompt (the sample id for SFT prompts)",
    "prompt": "optional: the prompt text",
    "step": "training step of the checkpoint (0 = the base model)",
    "subset": "sorted tuple of player indices",
    "words": "the players' words joined by ' & '",
    "order": "len(subset)",
    "kind": "'and' or 'or'",
    "value": "the interaction I(S)",
    "salient": "|I(S)| > 0.05 * max|I| at that prompt and checkpoint",
    "status": "optional: 'preserved' / 'emerged' / 'removed' / 'none' (computed when absent)",
    "v": "optional: the game value v(S)",
    "checkpoint": "optional: label of the checkpoint",
    "target": "optional: the text whose log-odds is the game's value",
}
"""Columns of the interaction table the viewer reads (see the module docstring)."""

REQUIRED_COLUMNS = ("prompt_id", "step", "subset", "order", "kind", "value", "salient")
"""Columns without which the viewer cannot work."""

STATUSES = ("preserved", "emerged", "removed")
"""How a salient interaction fares between the reference checkpoint and the shown one."""

KINDS = ("both", "and", "or")
"""Kind filter values."""

POSITIVE, NEGATIVE = "#d62728", "#1f77b4"  # as the words: red raises the target's log-odds, blue lowers it

STATUS_COLORS = {"preserved": "#566573", "emerged": "#d35400", "removed": "#2471a3"}


def normalise_table(table: pd.DataFrame, prompts: Mapping[str, str] | None = None) -> pd.DataFrame:
    """A copy with ``subset`` as tuples of ints, ``prompt`` and ``words`` filled, ``prompt_id`` as
    strings, and a ``status`` of ``"none"`` read as no status.

    Args:
        table: The interaction table.
        prompts: Prompt text by id, for a table without a ``prompt`` column.

    Raises:
        ValueError: A required column is missing.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"interaction table lacks columns {missing} (expected: {', '.join(INTERACTION_SCHEMA)})")
    t = table.copy()
    t["subset"] = [tuple(int(i) for i in s) for s in t["subset"]]
    t["prompt_id"] = t["prompt_id"].astype(str)
    t["step"] = t["step"].astype(int)
    t["order"] = t["order"].astype(int)
    t["salient"] = t["salient"].astype(bool)
    t["kind"] = t["kind"].astype(str)
    if "prompt" not in t.columns:
        t["prompt"] = [(prompts or {}).get(p, p) for p in t["prompt_id"]]
    if "words" not in t.columns:
        t["words"] = None
    if "status" in t.columns:
        t["status"] = [None if s is None or (isinstance(s, float) and np.isnan(s)) or s == "none" else str(s)
                       for s in t["status"]]
        if all(s is None for s in t["status"]):
            t = t.drop(columns="status")
    return t.reset_index(drop=True)


class InteractionState:
    """Prompt, checkpoint, kind and list length picked, and their HTML rendering.

    Args:
        table: The interaction table (:data:`INTERACTION_SCHEMA`).
        prompts: Prompt text by id, for a table without a ``prompt`` column.
        reference: When the table has no ``status``: ``"first"`` computes it against the first
            checkpoint with the definitions of :mod:`ilpnb.interactions.dynamics`;
            ``"previous"`` compares each checkpoint with the one before (preserved: salient in
            both; emerged: now only; removed: before only).
        top_k: Length of the ranked list.
        name: A title (the run's name).
    """

    def __init__(self, table: pd.DataFrame, *, prompts: Mapping[str, str] | None = None, reference: str = "first",
                 top_k: int = 10, name: str = "") -> None:
        if reference not in ("first", "previous"):
            raise ValueError("reference must be 'first' or 'previous'")
        self.table = normalise_table(table, prompts)
        self.stored_status = "status" in self.table.columns
        if self.table.empty:
            raise ValueError("the interaction table is empty")
        self.reference = reference
        self.top_k = int(top_k)
        self.name = name
        self.kind = "both"
        firsts = self.table.drop_duplicates("prompt_id")
        self._prompts: dict[str, str] = dict(zip(firsts["prompt_id"], firsts["prompt"]))
        self._groups = {k: g for k, g in self.table.groupby(["prompt_id", "step"], sort=False)}
        self._status_cache: dict[str, pd.DataFrame] = {}
        self.prompt_id: str = next(iter(self._prompts))
        self.step: int = self.steps[-1]

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_run(cls, run: str | Path, *, compute: bool = True, **kwargs: Any) -> InteractionState:
        """The run's ``interactions.parquet``, else interactions computed from its checkpoints.

        Args:
            run: The run folder.
            compute: Compute them (:func:`compute_checkpoint_interactions`) when the run has
                no ``interactions.parquet``.
            **kwargs: Arguments of :func:`compute_checkpoint_interactions`, and
                ``reference`` / ``top_k`` of the state.
        """
        run = Path(run)
        state_kw = {k: kwargs.pop(k) for k in ("reference", "top_k") if k in kwargs}
        path = run / "interactions.parquet"
        if path.exists():
            table = pd.read_parquet(path)
        elif compute:
            print(f"{run.name}: no interactions.parquet; computing the interactions of a few samples at a few "
                  "checkpoints (ilpnb.pipeline.sweep writes the full table)")
            table = compute_checkpoint_interactions(run, **kwargs)
        else:
            raise FileNotFoundError(f"{run}: no interactions.parquet (compute them, or pass compute=True)")
        return cls(table, prompts=_run_prompts(run) if "prompt" not in table.columns else None, name=run.name,
                   **state_kw)

    # -- choices ------------------------------------------------------------------------
    @property
    def prompt_ids(self) -> list[str]:
        """The prompts, in table order."""
        return list(self._prompts)

    @property
    def prompt(self) -> str:
        """The current prompt's text."""
        return str(self._prompts[self.prompt_id])

    @property
    def steps(self) -> list[int]:
        """The checkpoints (training steps) of the current prompt, ascending."""
        return sorted({s for (p, s) in self._groups if p == self.prompt_id})

    def prompt_options(self) -> list[tuple[str, str]]:
        """``(label, prompt_id)`` for a picker."""
        out = []
        for pid, text in self._prompts.items():
            short = text if len(text) <= 60 else text[:57] + "…"
            out.append((f"{pid} · {short}", pid))
        return out

    def checkpoint_label(self, step: int) -> str:
        """``"step 16"``; ``"step 0 (base)"`` for step 0."""
        return "step 0 (base)" if step == 0 else f"step {step}"

    def checkpoint_options(self) -> list[tuple[str, int]]:
        """``(label, step)`` for a slider."""
        return [(self.checkpoint_label(s), s) for s in self.steps]

    def set_prompt(self, prompt_id: str) -> None:
        """Pick a prompt; the checkpoint stays when the prompt has it, else its last one."""
        prompt_id = str(prompt_id)
        if prompt_id not in self._prompts:
            raise KeyError(f"no prompt {prompt_id!r} (have: {', '.join(self._prompts)})")
        self.prompt_id = prompt_id
        if self.step not in self.steps:
            self.step = self.steps[-1]

    def set_step(self, step: int) -> None:
        """Pick a checkpoint by its training step."""
        step = int(step)
        if step not in self.steps:
            raise ValueError(f"prompt {self.prompt_id!r} has no checkpoint at step {step} (have {self.steps})")
        self.step = step

    def set_kind(self, kind: str) -> None:
        """Show ``"and"``, ``"or"`` or ``"both"`` kinds."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        self.kind = kind

    def set_top_k(self, k: int) -> None:
        """Length of the ranked list."""
        self.top_k = max(1, int(k))

    # -- data ---------------------------------------------------------------------------
    def _group(self, step: int | None = None) -> pd.DataFrame:
        return self._groups.get((self.prompt_id, self.step if step is None else int(step)), self.table.iloc[:0])

    def reference_step(self, step: int | None = None) -> int | None:
        """The checkpoint statuses are measured against (None at the first checkpoint)."""
        step = self.step if step is None else int(step)
        steps = self.steps
        k = steps.index(step)
        if k == 0:
            return None
        return steps[0] if self.reference == "first" or self.stored_status else steps[k - 1]

    def _statuses(self) -> pd.DataFrame:
        """Status of every (subset, kind) of the current prompt at every checkpoint (keys × steps)."""
        pid = self.prompt_id
        if pid not in self._status_cache:
            rows = self.table[(self.table["prompt_id"] == pid) & (self.table["order"] > 0)]
            sal = rows.pivot_table(index=["subset", "kind"], columns="step", values="salient", aggfunc="first")
            sal = sal.reindex(columns=self.steps).fillna(False).astype(bool)
            now = sal.to_numpy()
            if self.reference == "first":  # as ilpnb.interactions.dynamics.status_masks
                kept = np.logical_and.accumulate(now, axis=1)
                masks = {"preserved": kept, "emerged": now & ~kept, "removed": now[:, :1] & ~now}
            else:
                before = np.concatenate([now[:, :1], now[:, :-1]], axis=1)
                masks = {"preserved": before & now, "emerged": now & ~before, "removed": before & ~now}
            status = np.full(now.shape, None, dtype=object)
            for name in STATUSES:
                status[masks[name]] = name
            status[:, 0] = None  # nothing to compare the first checkpoint with
            self._status_cache[pid] = pd.DataFrame(status, index=sal.index, columns=sal.columns)
        return self._status_cache[pid]

    def frame(self, step: int | None = None, kind: str | None = None) -> pd.DataFrame:
        """The current prompt's interactions at a checkpoint (∅ excluded), with ``status``.

        ``status`` is the table's when it has one, else computed (see the class docstring);
        None for interactions salient neither now nor at the reference, and at the first
        checkpoint.
        """
        kind = self.kind if kind is None else kind
        step = self.step if step is None else int(step)
        g = self._group(step)
        g = g[g["order"] > 0]
        if kind != "both":
            g = g[g["kind"] == kind]
        g = g.copy()
        if self.stored_status:
            return g
        table = self._statuses()
        col = table[step] if step in table.columns else pd.Series(dtype=object)
        g["status"] = [col.get((s, k)) for s, k in zip(g["subset"], g["kind"])]
        return g

    def players(self) -> list[str]:
        """The current prompt's players (words) by index."""
        g = self._group()
        singles = g[g["order"] == 1].drop_duplicates("subset")
        words = {s[0]: w for s, w in zip(singles["subset"], singles["words"])}
        n = max(words) + 1 if words else 0
        return [str(words.get(i, f"#{i}")) for i in range(n)]

    def word_effects(self) -> tuple[pd.DataFrame, str]:
        """Single-word effects at the current checkpoint and the measure used.

        Returns:
            A table ``player``, ``word``, ``effect`` and the measure: ``"v(N) − v(N∖{i})"``
            when the table holds the game value of every subset, else ``"I({i}) (order-1
            AND)"``.
        """
        g = self._group()
        words = self.players()
        n = len(words)
        if "v" in g.columns and n:
            v = dict(zip(g["subset"], g["v"]))
            full = tuple(range(n))
            drops = [tuple(j for j in range(n) if j != i) for i in range(n)]
            if full in v and all(d in v for d in drops) and not pd.isna(v[full]):
                eff = [float(v[full]) - float(v[d]) for d in drops]
                return pd.DataFrame({"player": range(n), "word": words, "effect": eff}), "v(N) − v(N∖{i})"
        ones = g[(g["order"] == 1) & (g["kind"] == "and")]
        by = {s[0]: float(val) for s, val in zip(ones["subset"], ones["value"])}
        eff = [by.get(i, np.nan) for i in range(n)]
        return pd.DataFrame({"player": range(n), "word": words, "effect": eff}), "I({i}) (order-1 AND)"

    def top_interactions(self, k: int | None = None) -> pd.DataFrame:
        """The ``k`` largest interactions by ``|value|`` at the current checkpoint, ranked."""
        k = self.top_k if k is None else int(k)
        g = self.frame()
        g = g.assign(_abs=g["value"].abs()).sort_values("_abs", ascending=False).head(k).drop(columns="_abs")
        return g.assign(rank=np.arange(1, len(g) + 1)).reset_index(drop=True)

    def removed(self, k: int | None = None) -> pd.DataFrame:
        """Interactions salient at the reference checkpoint but not now, largest there first."""
        k = self.top_k if k is None else int(k)
        g = self.frame()
        g = g[g["status"] == "removed"]
        ref = self.reference_step()
        if "base_value" in g.columns:
            g = g.assign(value_before=g["base_value"])
            g = g.assign(_abs=g["value_before"].abs()).sort_values("_abs", ascending=False).drop(columns="_abs")
        elif ref is not None and len(g):
            before = self._group(ref)
            val = dict(zip(zip(before["subset"], before["kind"]), before["value"]))
            g = g.assign(value_before=[val.get(x) for x in zip(g["subset"], g["kind"])])
            g = g.assign(_abs=g["value_before"].abs()).sort_values("_abs", ascending=False).drop(columns="_abs")
        return g.head(k).reset_index(drop=True)

    def status_counts(self) -> pd.DataFrame:
        """Counts of preserved / emerged / removed interactions by order at the current checkpoint."""
        g = self.frame()
        g = g[g["status"].notna()]
        counts = pd.crosstab(g["order"], g["status"]) if len(g) else pd.DataFrame()
        counts = counts.reindex(columns=list(STATUSES), fill_value=0)
        return counts.astype(int)

    # -- rendering ----------------------------------------------------------------------
    def _spans(self, words: Sequence[str]) -> list[tuple[int, int] | None]:
        text, cursor, out = self.prompt, 0, []
        for w in words:
            at = text.find(w, cursor)
            if at < 0:
                out.append(None)
                continue
            out.append((at, at + len(w)))
            cursor = at + len(w)
        return out

    def render_words(self) -> str:
        """The prompt with each player coloured by its single-word effect (tooltip: the value)."""
        eff, measure = self.word_effects()
        text = self.prompt
        vmax = float(np.nanmax(np.abs(eff["effect"]))) if len(eff) and eff["effect"].notna().any() else 0.0
        spans = self._spans(eff["word"].tolist())
        out, cursor = [], 0
        for (i, word, e), span in zip(eff.itertuples(index=False), spans):
            if span is None:
                continue
            a, b = span
            out.append(esc(text[cursor:a]))
            out.append(f'<span class="ilpnb-word" title="{esc(word)}: {e:+.3f}" style="background:'
                       f'{signed_color(e, vmax)};padding:1px 3px;border-radius:3px;border:1px solid #ddd">'
                       f'{esc(text[a:b])}<sub style="font-size:9px;color:#444">{e:+.2f}</sub></span>')
            cursor = b
        out.append(esc(text[cursor:]))
        legend = (f'<div class="muted" style="font-size:11px">single-word effect = {esc(measure)} on the target '
                  'log-odds; red raises it, blue lowers it; unmarked words are not players.</div>')
        return f'<div class="ilpnb-prompt" style="font-size:15px;line-height:2">{"".join(out)}</div>{legend}'

    def _status_badge(self, status: Any) -> str:
        if status is None or (isinstance(status, float) and np.isnan(status)):
            return '<span class="muted">–</span>'
        return badge(str(status), STATUS_COLORS.get(str(status), "#555"))

    def render_top(self) -> str:
        """The ranked list of the largest interactions."""
        top = self.top_interactions()
        if top.empty:
            return '<p class="muted">No interactions at this checkpoint.</p>'
        vmax = float(top["value"].abs().max()) or 1.0
        rows = [(r.rank, esc(r.kind.upper()), r.order, esc(r.words or ""),
                 bar(r.value, vmax, color=POSITIVE, width=110, neg_color=NEGATIVE),
                 _signed(r.value), "yes" if r.salient else "no", self._status_badge(r.status))
                for r in top.itertuples(index=False)]
        return table(["#", "kind", "order", "words", "", "I(S)", "salient", "status"], rows, raw=True)

    def render_status(self) -> str:
        """Counts by order and the largest removed interactions."""
        ref = self.reference_step()
        if ref is None:
            return (f'<p class="muted">{esc(self.checkpoint_label(self.step))} is the first checkpoint: '
                    'move the slider to see which interactions are preserved, emerged or removed.</p>')
        counts = self.status_counts()
        against = f"against {esc(self.checkpoint_label(ref))}"
        if self.stored_status:
            against += " (statuses from the table)"
        totals = {s: int(counts[s].sum()) if s in counts else 0 for s in STATUSES}
        head = (f'<div class="ilpnb-status">salient interactions {against}: '
                + " ".join(badge(f"{totals[s]} {s}", STATUS_COLORS[s]) for s in STATUSES) + "</div>")
        body = table(["order", *STATUSES], [(o, *[int(r[s]) for s in STATUSES]) for o, r in counts.iterrows()])
        gone = self.removed(5)
        if len(gone):
            rows = [(esc(r.kind.upper()), r.order, esc(r.words or ""),
                     _signed(getattr(r, "value_before", np.nan)), _signed(r.value))
                    for r in gone.itertuples(index=False)]
            body += ("<div style=\"margin-top:4px\">largest removed:</div>"
                     + table(["kind", "order", "words", "I(S) before", "I(S) now"], rows, raw=True))
        return head + body

    def render_html(self) -> str:
        """The whole view of the current prompt and checkpoint."""
        g = self._group()
        target = ""
        if "target" in g.columns and len(g) and g["target"].notna().any():
            target = f' · target <code>{esc(g["target"].dropna().iloc[0])}</code>'
        top = (f'<div class="muted" style="font-size:11px">run {esc(self.name)} · prompt {esc(self.prompt_id)} · '
               f'{esc(self.checkpoint_label(self.step))} · kind {esc(self.kind)}{target}</div>')
        parts = [CSS, top, section("words by single-word effect", self.render_words()),
                 section(f"top {self.top_k} interactions", self.render_top()),
                 section("preserved / emerged / removed", self.render_status())]
        return (f'<div class="ilpnb-box ilpnb-interactions" data-prompt-id="{esc(self.prompt_id)}" '
                f'data-step="{self.step}">' + "".join(parts) + "</div>")

    def _repr_html_(self) -> str:
        return self.render_html()


def _signed(x: float) -> str:
    """``+0.123`` / ``-0.123``; a value that rounds to zero is ``0.000``, never ``-0.000``."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    return "0.000" if abs(x) < 5e-4 else f"{x:+.3f}"


def interactions_from_results(results: Iterable[tuple[int, str, Any]],
                              labels: Mapping[int, str] | None = None) -> pd.DataFrame:
    """The interaction table from :class:`~ilpnb.interactions.InteractionResult` objects.

    Args:
        results: ``(step, prompt_id, result)`` triples.
        labels: Optional checkpoint label by step.

    Returns:
        A table in :data:`INTERACTION_SCHEMA` (``status`` left to the viewer).
    """
    frames = []
    for step, pid, res in results:
        f = res.to_frame()
        f.insert(0, "prompt_id", str(pid))
        f.insert(1, "prompt", res.prompt)
        f.insert(2, "step", int(step))
        if labels and int(step) in labels:
            f["checkpoint"] = labels[int(step)]
        f["target"] = res.target_text
        frames.append(f)
    if not frames:
        raise ValueError("no interaction results given")
    return pd.concat(frames, ignore_index=True)


def _spread(items: list[Any], k: int | None) -> list[Any]:
    if k is None or len(items) <= k:
        return items
    idx = sorted({round(x) for x in np.linspace(0, len(items) - 1, k)})
    return [items[i] for i in idx]


def compute_checkpoint_interactions(
    run: str | Path,
    prompts: Sequence[str] | None = None,
    *,
    max_prompts: int = 3,
    max_checkpoints: int | None = 6,
    max_players: int = 8,
    target: str = "gold",
    and_or: bool = True,
    baseline: str = "zero",
    progress: bool = False,
) -> pd.DataFrame:
    """Interactions of a few prompts at the run's checkpoints (base model first), in memory.

    :func:`ilpnb.interactions.track`, the engine the sweep uses too, in memory: a light
    stand-in for :func:`ilpnb.pipeline.sweep.interaction_dynamics` (which writes
    ``RUN/interactions.parquet`` for held-out prompts, with reference models and metrics):
    enough to look at a run that has no interaction table yet. Checkpoints are read with
    :func:`ilpnb.interactions.checkpoints.list_checkpoints` / ``load_checkpoint`` (LoRA
    adapters merged). As there, the players are chosen once on the base model and the target
    is the same at every checkpoint.

    Args:
        run: The run folder.
        prompts: Sample ids of the run or free prompt texts; default: up to ``max_prompts``
            samples, unlearned and learned in turn.
        max_prompts: How many samples by default.
        max_checkpoints: Keep this many checkpoints spread over training, first and last
            included (None: all).
        max_players: Words kept per prompt (the game has ``2^n`` subsets).
        target: For samples: ``"gold"`` (log-odds of the gold answer's first token),
            ``"response"`` (the whole gold answer, teacher-forced) or ``"greedy"``; free
            prompts always use the base model's greedy first token.
        and_or: Fit the AND-OR split (else the AND / OR transforms of ``v``).
        baseline: Masking baseline (``"zero"``, ``"mean"``, ``"learned"``).
        progress: Print one line per checkpoint.

    Returns:
        A table in :data:`INTERACTION_SCHEMA` (with ``prompt``, ``v`` and ``target``).
    """
    from ilpnb.config import DynamicsConfig
    from ilpnb.interactions import track
    from ilpnb.interactions.checkpoints import list_checkpoints

    from .sources import read_records_of_run

    if target not in ("gold", "response", "greedy"):
        raise ValueError("target must be 'gold', 'response' or 'greedy'")
    run = Path(run)
    records = read_records_of_run(run)
    cks = _spread(list_checkpoints(run), max_checkpoints)
    if prompts is None:
        prompts = _default_prompts(run, records, max_prompts)
    items: list[tuple[str, str, str | None]] = []
    for p in prompts:
        rec = records.get(str(p))
        items.append((str(p), rec.prompt, rec.response) if rec is not None else (f"prompt-{len(items)}", str(p), None))
    settings = DynamicsConfig(max_players=max_players, target=target, and_or=and_or, baseline=baseline)
    with _quiet_loading():
        table = track(cks, items, settings, progress=progress)
    table.insert(1, "prompt", table["prompt_id"].map({pid: text for pid, text, _ in items}))
    table["checkpoint"] = table["step"].map({c.step: ("step 0 (base)" if c.step == 0 else c.name) for c in cks})
    return table


@contextlib.contextmanager
def _quiet_loading() -> Iterator[None]:
    """No transformers progress bars while loading checkpoints (they would be notebook widgets)."""
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:  # pragma: no cover
        yield
        return
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()


def _run_prompts(run: Path) -> dict[str, str]:
    """Prompt text by id: the interaction sweep's ``prompts.jsonl``, then the run's SFT records."""
    from .sources import read_records_of_run

    out = {k: r.prompt for k, r in read_records_of_run(run).items()}
    path = run / "interactions" / "prompts.jsonl"
    if path.exists():
        from ilpnb.data.records import read_records

        try:
            out.update({str(r.id): r.prompt for r in read_records(path)})
        except (OSError, ValueError):
            pass
    return out


def _default_prompts(run: Path, records: Mapping[str, Any], k: int) -> list[str]:
    path = run / "samples.parquet"
    if path.exists():
        s = pd.read_parquet(path)
        s = s[s["id"].astype(str).isin(records)]
        un = s.loc[~s["learned"].astype(bool), "id"].astype(str).tolist()
        le = s.loc[s["learned"].astype(bool), "id"].astype(str).tolist()
        out: list[str] = []
        while len(out) < k and (un or le):
            for pool in (un, le):
                if pool and len(out) < k:
                    out.append(pool.pop(0))
        return out
    return list(records)[:k]
