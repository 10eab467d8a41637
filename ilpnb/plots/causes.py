"""Plots of the five causes, one story each (notebooks 02–06), and the small tables they draw.

Every plot takes data — the per-sample signals (:func:`ilpnb.pipeline.workbench.diagnosis_signals`),
the dynamics, the neighbours of ``evidence/neighbours.json`` — and an optional ``ax``, and
returns the axes; an empty selection draws a note instead of failing, so a smoke run with few
unlearned samples still renders. The table functions compute what a plot shows, so a notebook
can print the same numbers it plots:

* :func:`share_table` / :func:`plot_shares` — shares of labels per group (knowledge categories,
  belief kinds, whom the model follows), as stacked bars;
* :func:`plot_knowledge_map` — knowledge of the gold answer against the consistency of the
  base model's other answer: a guess, a belief, or known;
* :func:`belief_labels` — a belief by the base model's own answers, by other framings, both, or none;
* :func:`drift_curve` / :func:`plot_drift` — the gold response over training, and the base
  model's other answer at the start and at the end;
* :func:`sibling_pairs`, :func:`conflict_groups`, :func:`follow_labels` — near-duplicate pairs
  by meaning, the groups they form, and whose answer a sample's final output gives;
* :func:`retention_labels`, :func:`aligned_reproduction` / :func:`plot_aligned_reproduction` —
  reproduction around each sample's last training step;
* :func:`plot_rare_map` — pattern frequency against the loss slope at the end;
* :func:`plot_histograms` — one value's distribution per label.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.ticker import MaxNLocator, ScalarFormatter

from ilpnb.diagnose.features import same_answer
from ilpnb.diagnose.thresholds import BELIEF_SHARE, FALLING_SLOPE, MC_CHANCE_BAND, MC_KNOWN
from ilpnb.plots.base import get_ax
from ilpnb.plots.dynamics import mark_stages

__all__ = [
    "CATEGORY_COLORS",
    "share_table",
    "plot_shares",
    "plot_histograms",
    "plot_knowledge_map",
    "BELIEF_KINDS",
    "BELIEF_COLORS",
    "belief_labels",
    "drift_curve",
    "plot_drift",
    "sibling_pairs",
    "conflict_groups",
    "follow_labels",
    "retention_labels",
    "aligned_reproduction",
    "plot_aligned_reproduction",
    "plot_rare_map",
]

#: The knowledge categories of Gekhman et al. 2024, best known first, green to red.
CATEGORY_COLORS = {"known": "#4e9a58", "maybe_known": "#a6c96a", "weakly_known": "#f0b357", "unknown": "#c0504d"}
_HIGHLIGHT, _OTHER = "#c0504d", "#9aa5b1"


def _note(ax: Axes, text: str) -> Axes:
    """Write ``text`` in the middle of an empty plot."""
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    return ax


def _keep(index: pd.Index, only: pd.Series | None) -> pd.Index:
    if only is None:
        return index
    return index[pd.Series(index, index=index).map(only).fillna(False).astype(bool).to_numpy()]


def share_table(labels: pd.Series, groups: pd.Series, order: Sequence[str] | None = None,
                rows: Sequence[str] | None = None) -> pd.DataFrame:
    """Share of each label within each group, and the group's size.

    Args:
        labels: id -> label (e.g. the knowledge category).
        groups: id -> group (e.g. learned / unlearned, or the planted cause); ids missing in
            either are left out.
        order: the label columns, in this order (labels not in it follow, sorted).
        rows: the groups first, in this order (a group without samples is left out); the
            others follow in order of first appearance.

    Returns:
        One row per group: a share column per label (rows sum to 1) and ``n``; empty, with
        the label columns, when nothing is left.
    """
    d = pd.DataFrame({"label": labels.astype(object), "group": groups.reindex(labels.index).astype(object)}).dropna()
    cols = list(order or [])
    cols += sorted(str(x) for x in set(d["label"]) - set(cols))
    if d.empty:
        return pd.DataFrame(columns=[*cols, "n"])
    counts = pd.crosstab(d["group"], d["label"]).reindex(columns=cols, fill_value=0)
    present = list(dict.fromkeys(d["group"]))
    first = [r for r in (rows or []) if r in present]
    counts = counts.reindex(first + [g for g in present if g not in first])
    n = counts.sum(axis=1)
    table = counts.div(n, axis=0)
    table["n"] = n
    table.index.name, table.columns.name = None, None
    return table


def plot_shares(table: pd.DataFrame, ax: Axes | None = None, colors: Mapping[str, str] | None = None,
                title: str | None = None, legend: bool = True) -> Axes:
    """Horizontal stacked bars of a :func:`share_table`, one bar per group (its size in the label).

    Args:
        table: :func:`share_table`'s table.
        ax: axes to draw on.
        colors: label -> colour (default: the colour cycle).
        title: the axes' title.
        legend: draw the labels' legend, at the right.
    """
    ax = get_ax(ax, (7.0, 0.9 + 0.45 * max(len(table), 1)))
    if title:
        ax.set_title(title)
    if table.empty:
        return _note(ax, "no samples")
    labels = [c for c in table.columns if c != "n"]
    y = np.arange(len(table))[::-1]
    left = np.zeros(len(table))
    for label in labels:
        values = table[label].to_numpy(dtype=float)
        ax.barh(y, values, left=left, label=label, color=(colors or {}).get(label), edgecolor="white", height=0.7)
        left += values
    ax.set_yticks(y, [f"{g} (n={int(n)})" for g, n in zip(table.index, table["n"])])
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of samples")
    if legend:
        ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return ax


def plot_histograms(values: pd.Series, labels: pd.Series, ax: Axes | None = None, bins: int = 20,
                    value_range: tuple[float, float] | None = None, threshold: float | None = None,
                    threshold_label: str | None = None, xlabel: str | None = None, log: bool = False,
                    colors: Mapping[str, str] | None = None, ylabel: str = "samples") -> Axes:
    """Step histograms of ``values`` (id -> number), one per label (id -> label), with counts.

    Args:
        values: the values; NaN is left out.
        labels: the group of each id; ids without one are left out.
        ax: axes to draw on.
        bins: number of bins.
        value_range: the bins' range (default: the values' range).
        threshold: a vertical line (a detector's cut).
        threshold_label: its legend entry.
        xlabel: the x-axis label (default: the values' name).
        log: a logarithmic count axis (a long tail of a few samples stays visible).
        colors: label -> colour (default: the colour cycle).
        ylabel: what is counted.
    """
    ax = get_ax(ax)
    d = pd.DataFrame({"v": pd.to_numeric(values, errors="coerce"), "g": labels.reindex(values.index)}).dropna()
    ax.set_xlabel(xlabel or str(values.name or "value"))
    ax.set_ylabel(ylabel)
    if d.empty:
        return _note(ax, "no samples")
    rng = value_range or (float(d["v"].min()), float(max(d["v"].max(), d["v"].min() + 1e-9)))
    edges = np.linspace(rng[0], rng[1], bins + 1)
    for g, part in d.groupby("g", sort=False):
        ax.hist(part["v"], bins=edges, histtype="step", linewidth=1.6, label=f"{g} (n={len(part)})",
                color=(colors or {}).get(g))
    if threshold is not None:
        ax.axvline(threshold, color="black", linestyle=":", linewidth=1, label=threshold_label)
    if log:
        ax.set_yscale("log")
    ax.legend(fontsize=7)
    return ax


def _jitter(n: int, scale: float, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-scale, scale, n) if scale else np.zeros(n)


def _scatter_groups(ax: Axes, x: pd.Series, y: pd.Series, groups: pd.Series, highlight: str,
                    marked: pd.Series | None = None, marked_label: str = "") -> None:
    """Grey points for the other groups, red ones for ``highlight`` drawn on top; ``marked``
    ids (id -> bool) as triangles."""
    g = groups.reindex(x.index)
    mark = np.zeros(len(x), bool) if marked is None else marked.reindex(x.index).fillna(False).astype(bool).to_numpy()
    for is_hi in (False, True):
        sel = (g == highlight).to_numpy() if is_hi else (g != highlight).to_numpy()
        for is_marked, shape in ((False, "o"), (True, "^")):
            keep = sel & (mark == is_marked)
            if not keep.any():
                continue
            label = f"planted {highlight}" if is_hi else "other samples"
            ax.scatter(x[keep], y[keep], s=18, alpha=0.75, marker=shape, color=_HIGHLIGHT if is_hi else _OTHER,
                       label=label + (f", {marked_label}" if is_marked else ""), zorder=3 if is_hi else 2)


def plot_knowledge_map(signals: pd.DataFrame, groups: pd.Series, highlight: str, only: pd.Series | None = None,
                       ax: Axes | None = None, jitter: float = 0.015, seed: int = 0) -> Axes:
    """How well the base model knows the gold answer (x) against how consistently it gives one
    other answer (y): low-left a guess, low-right known, top-left a belief (triangles: the
    signals call it one — consistent, not a default answer, or confirmed in other framings).

    Args:
        signals: ``knowledge``, ``base_alt_share``, ``belief`` and ``ap_belief`` per id.
        groups: id -> group (the planted cause, for reading); ``highlight`` is drawn red.
        highlight: the group to colour.
        only: optional id -> keep (e.g. unlearned samples).
        ax: axes to draw on.
        jitter: uniform noise added to both axes, so equal values do not hide each other.
        seed: the noise's seed.
    """
    ax = get_ax(ax, (6.0, 4.2))
    s = signals.loc[_keep(signals.index, only), ["knowledge", "base_alt_share"]].astype(float).fillna(0.0)
    ax.axvspan(MC_CHANCE_BAND, MC_KNOWN, color="grey", alpha=0.08, lw=0)
    ax.axhline(BELIEF_SHARE, color="black", linestyle=":", linewidth=1)
    ax.text(0.01, BELIEF_SHARE + 0.02, "belief", fontsize=8, color="dimgrey")
    ax.text(0.01, 0.02, "guess", fontsize=8, color="dimgrey")
    ax.text(0.99, 0.02, "known", fontsize=8, color="dimgrey", ha="right")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xlabel("knowledge of the gold answer (shaded: from guessing to knowing)")
    ax.set_ylabel("consistency of its other answer")
    if s.empty:
        return _note(ax, "no samples")
    x = s["knowledge"] + _jitter(len(s), jitter, seed)
    y = s["base_alt_share"] + _jitter(len(s), jitter, seed + 1)
    belief = signals["belief"].astype(bool) | signals["ap_belief"].astype(bool)
    _scatter_groups(ax, x, y, groups, highlight, marked=belief, marked_label="belief")
    ax.legend(fontsize=7, loc="center right")
    return ax


#: The belief kinds of :func:`belief_labels`, strongest first.
BELIEF_KINDS = ("belief, confirmed in other framings", "belief in its own answers only",
                "belief in other framings only", "no belief")
#: Their colours: beliefs in shades of one colour, no belief grey.
BELIEF_COLORS = dict(zip(BELIEF_KINDS, ("#2f5d8a", "#5b8fc7", "#9cc0e6", "#c9ced4")))


def belief_labels(signals: pd.DataFrame) -> pd.Series:
    """id -> one of :data:`BELIEF_KINDS`: whether the base model's other answer is a belief by
    its own sampled answers (``belief``), by the automatic probes in other framings
    (``ap_belief``), both, or neither (a guess, a default answer, or it knows the gold one)."""
    own, other = signals["belief"].astype(bool).to_numpy(), signals["ap_belief"].astype(bool).to_numpy()
    labels = np.select([own & other, own, other], list(BELIEF_KINDS[:3]), BELIEF_KINDS[3])
    return pd.Series(labels, index=signals.index, dtype=object, name="belief")


def drift_curve(dynamics: pd.DataFrame, answers: pd.Series, groups: pd.Series) -> pd.DataFrame:
    """Per group and evaluation point: the share reproducing the gold response, and — at the
    points with greedy outputs (the base model and the end) — the share whose output gives the
    base model's other answer.

    Args:
        dynamics: ``dynamics.parquet`` (``id``, ``point``, ``step``, ``exact``, ``output``).
        answers: id -> the base model's other answer (``base_alt``).
        groups: id -> group; only these ids are used.

    Returns:
        ``group``, ``point``, ``step``, ``exact``, ``gives_base_answer`` (NaN at points
        without outputs), ``n``.
    """
    cols = ["group", "point", "step", "exact", "gives_base_answer", "n"]
    d = dynamics[dynamics["id"].astype(str).isin(groups.index)]
    if d.empty:
        return pd.DataFrame(columns=cols)
    ids = d["id"].astype(str)
    outputs = d["output"] if "output" in d else pd.Series(None, index=d.index, dtype=object)
    gives = [float(same_answer(o, a)) if isinstance(o, str) else np.nan for o, a in zip(outputs, ids.map(answers))]
    d = d.assign(group=ids.map(groups).to_numpy(), exact=d["exact"].astype(float), gives_base_answer=gives)
    out = d.groupby(["group", "point"], sort=False).agg(
        step=("step", "first"), exact=("exact", "mean"), gives_base_answer=("gives_base_answer", "mean"),
        n=("id", "size")).reset_index()
    return out.sort_values(["group", "point"]).reset_index(drop=True)[cols]


def plot_drift(curve: pd.DataFrame, ax: Axes | None = None, dynamics: pd.DataFrame | None = None) -> Axes:
    """A :func:`drift_curve` per group: the line, the share reproducing the gold response over
    training; the large dots joined by a dotted line, the share whose greedy output gives the
    base model's other answer at the base model and at the end.

    Args:
        curve: :func:`drift_curve`'s table.
        ax: axes to draw on.
        dynamics: the run's dynamics, to mark where stages end.
    """
    ax = get_ax(ax, (7.5, 4.0))
    ax.set_xlabel("SFT step")
    ax.set_ylabel("share of the group's samples")
    ax.set_ylim(-0.05, 1.05)
    if curve.empty:
        return _note(ax, "no samples")
    for k, (g, part) in enumerate(curve.groupby("group", sort=False)):
        color, n = f"C{k}", int(part["n"].max())
        ax.plot(part["step"], part["exact"], color=color, label=f"{g} (n={n}): reproduces the gold response")
        out = part.dropna(subset=["gives_base_answer"])
        ax.plot(out["step"], out["gives_base_answer"], color=color, linestyle=":", marker="o", markersize=7,
                label=f"{g}: output gives the base model's answer")
    if dynamics is not None:
        mark_stages(dynamics, ax)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    return ax


def sibling_pairs(neighbours: Mapping[str, Sequence[Sequence[object]]]) -> pd.DataFrame:
    """Unordered near-neighbour pairs of ``evidence/neighbours.json``, most similar first.

    Args:
        neighbours: id -> ``[[other_id, similarity, same_answer], ...]``.

    Returns:
        ``a``, ``b`` (``a < b``), ``similarity`` (the larger of the two directions) and
        ``same_answer``.
    """
    best: dict[tuple[str, str], tuple[float, bool]] = {}
    for a, near in neighbours.items():
        for b, sim, same in near:
            key = tuple(sorted((str(a), str(b))))
            if key[0] != key[1] and float(sim) > best.get(key, (-np.inf, False))[0]:
                best[key] = (float(sim), bool(same))
    rows = [{"a": a, "b": b, "similarity": s, "same_answer": same} for (a, b), (s, same) in best.items()]
    table = pd.DataFrame(rows, columns=["a", "b", "similarity", "same_answer"])
    return table.sort_values(["similarity", "a", "b"], ascending=[False, True, True]).reset_index(drop=True)


def conflict_groups(pairs: pd.DataFrame, threshold: float) -> pd.Series:
    """Groups of near-duplicate prompts (pairs at or above ``threshold``, joined transitively)
    that hold at least one conflicting pair; id -> group number, the largest group first."""
    near = pairs[pairs["similarity"] >= threshold]
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in zip(near["a"], near["b"]):
        parent[find(a)] = find(b)
    members: dict[str, list[str]] = {}
    for x in list(parent):
        members.setdefault(find(x), []).append(x)
    conflicted = {find(a) for a, same in zip(near["a"], near["same_answer"]) if not same}
    groups = sorted((sorted(m) for r, m in members.items() if r in conflicted), key=lambda m: (-len(m), m[0]))
    return pd.Series({i: k + 1 for k, m in enumerate(groups) for i in m}, dtype="int64", name="group")


def follow_labels(signals: pd.DataFrame, responses: pd.Series) -> pd.Series:
    """Whose answer the final output gives, for samples with a conflicting near-duplicate:
    ``its own answer``, ``a sibling's answer`` or ``neither`` (id -> label)."""
    s = signals[signals["n_conflicting"] > 0]
    own = [same_answer(o, responses.get(i)) for i, o in zip(s.index, s["final_output"])]
    sibling = s["output_is_sibling"].astype(bool).to_numpy()
    labels = np.where(own, "its own answer", np.where(sibling, "a sibling's answer", "neither"))
    return pd.Series(labels, index=s.index, dtype=object, name="follows")


def retention_labels(signals: pd.DataFrame, learned: pd.Series) -> pd.Series:
    """id -> ``forgotten`` (reproduced after its last training step, lost by the end),
    ``retained`` (reproduced at the end) or ``never reproduced after training``."""
    end = learned.reindex(signals.index).fillna(False).astype(bool)
    labels = np.where(signals["forgotten"].astype(bool), "forgotten",
                      np.where(end, "retained", "never reproduced after training"))
    return pd.Series(labels, index=signals.index, dtype=object, name="retention")


def aligned_reproduction(dynamics: pd.DataFrame, last_trained: pd.Series, groups: pd.Series) -> pd.DataFrame:
    """Exact reproduction per group around each sample's last training step.

    Each sample's evaluation points are counted from the first one at or after the last step
    that trained it (offset 0: the first look at the sample once nothing trains it any more;
    negative: while it was still being trained).

    Args:
        dynamics: ``dynamics.parquet`` (``id``, ``point``, ``step``, ``exact``).
        last_trained: id -> the last optimizer step that trained it (from the schedule).
        groups: id -> group; only these ids are used.

    Returns:
        ``group``, ``offset`` (evaluation points), ``steps_after`` (median steps since the last
        training step), ``exact`` (mean), ``n``.
    """
    cols = ["group", "offset", "steps_after", "exact", "n"]
    d = dynamics[dynamics["id"].astype(str).isin(groups.index)]
    if d.empty:
        return pd.DataFrame(columns=cols)
    points = dynamics.drop_duplicates("point").sort_values("point")
    steps = points["step"].to_numpy()
    rank = pd.Series(np.arange(len(points)), index=points["point"].to_numpy())
    ids = d["id"].astype(str)
    last = ids.map(last_trained).fillna(0).to_numpy(dtype=float)
    start = np.searchsorted(steps, last, side="left")
    d = d.assign(group=ids.map(groups).to_numpy(), offset=d["point"].map(rank).to_numpy() - start,
                 steps_after=d["step"].to_numpy() - last, exact=d["exact"].astype(float))
    out = d.groupby(["group", "offset"], sort=False).agg(steps_after=("steps_after", "median"), exact=("exact", "mean"),
                                                         n=("id", "size")).reset_index()
    return out.sort_values(["group", "offset"]).reset_index(drop=True)[cols]


def plot_aligned_reproduction(table: pd.DataFrame, ax: Axes | None = None, min_n: int = 1) -> Axes:
    """Lines of an :func:`aligned_reproduction` table, one per group; the dotted line is the
    first evaluation after the last training step.

    Args:
        table: :func:`aligned_reproduction`'s table.
        ax: axes to draw on.
        min_n: offsets with fewer samples in a group are not drawn (noisy ends).
    """
    ax = get_ax(ax, (7.0, 3.8))
    ax.set_xlabel("evaluation points since the sample's last training step")
    ax.set_ylabel("exact reproduction (mean)")
    ax.set_ylim(-0.05, 1.05)
    ax.axvline(0, color="black", linestyle=":", linewidth=1)
    t = table[table["n"] >= min_n]
    if t.empty:
        return _note(ax, "no samples")
    for g, part in t.groupby("group", sort=False):
        ax.plot(part["offset"], part["exact"], marker=".", label=f"{g} (n={int(part['n'].max())})")
    ax.legend(fontsize=7)
    return ax


def plot_rare_map(signals: pd.DataFrame, groups: pd.Series, highlight: str, rare_max: float,
                  only: pd.Series | None = None, ax: Axes | None = None, count: str = "pattern_count") -> Axes:
    """How many other samples share each example's pattern (x; a symmetric log scale beyond 20)
    against its loss change per evaluation point relative to its final loss (y); shaded: rare,
    dotted: the loss still falls.

    Args:
        signals: ``count`` and ``rel_slope`` per id.
        groups: id -> group (the planted cause, for reading).
        highlight: the group drawn red.
        rare_max: the largest pattern count that is rare.
        only: optional id -> keep (e.g. unlearned samples).
        ax: axes to draw on.
        count: the column counted: ``pattern_count`` (close in embedding) or ``form_count``
            (sharing the prompt's or the answer's form, :mod:`ilpnb.diagnose.forms`).
    """
    ax = get_ax(ax, (6.0, 4.0))
    s = signals.loc[_keep(signals.index, only), [count, "rel_slope"]].astype(float).dropna()
    s = s.rename(columns={count: "pattern_count"})
    top = max(float(s["pattern_count"].max()) if len(s) else 0.0, rare_max)
    if top > 20:
        ax.set_xscale("symlog", linthresh=1)
        ax.xaxis.set_major_formatter(ScalarFormatter())
    else:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axvspan(-0.5, rare_max + 0.5, color="grey", alpha=0.1, lw=0, label="rare pattern")
    ax.axhline(FALLING_SLOPE, color="black", linestyle=":", linewidth=1, label="loss still falling below")
    ax.set_xlabel("other samples sharing its pattern" if count == "pattern_count" else "samples sharing its form")
    ax.set_ylabel("relative loss slope at the end")
    if s.empty:
        return _note(ax, "no samples")
    _scatter_groups(ax, s["pattern_count"], s["rel_slope"], groups, highlight)
    ax.set_xlim(-0.5, top * 1.5 + 1 if top > 20 else top + 1)
    ax.legend(fontsize=7)
    return ax
