"""The cause plots of notebooks 02–06 and their tables, headless, on small hand-made tables."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.axes import Axes  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from ilpnb.plots import causes  # noqa: E402


@pytest.fixture(autouse=True)
def _no_show(monkeypatch: pytest.MonkeyPatch):
    """No plot may show a window; every figure is closed after the test."""
    monkeypatch.setattr(plt, "show", lambda *a, **k: pytest.fail("plt.show() called"))
    yield
    plt.close("all")


def _ax() -> Axes:
    return Figure().add_subplot(111)


def _texts(ax: Axes) -> list[str]:
    return [t.get_text() for t in ax.texts]


def _signals() -> pd.DataFrame:
    """Five samples: a guess, a belief (both ways), a known one, a belief by framings only, a default."""
    ids = ["a", "b", "c", "d", "e"]
    return pd.DataFrame({
        "category": ["unknown", "unknown", "known", "weakly_known", "unknown"],
        "knowledge": [0.0, 0.1, 1.0, 0.3, np.nan],
        "base_alt": ["x", "Paris", None, "blue", "red"],
        "base_alt_share": [0.3, 1.0, 0.0, 0.5, 0.9],
        "belief": [False, True, False, False, False],
        "ap_belief": [False, True, False, True, False],
        "final_output": ["zz", "Paris", "gold c", "blue", "It is red."],
        "output_is_base_alt": [False, True, False, True, True],
        "n_conflicting": [1, 0, 1, 2, 0],
        "output_is_sibling": [False, False, True, False, False],
        "forgotten": [False, True, False, False, True],
        "steps_lost": [0, 30, 0, 0, 10],
        "last_trained_step": [10, 10, 20, 20, 10],
        "pattern_count": [0, 2, 40, 1, 0],
        "rel_slope": [-0.1, 0.0, 0.01, -0.05, np.nan],
    }, index=pd.Index(ids, name="id"))


def test_every_public_name_exists() -> None:
    assert causes.__all__ and all(hasattr(causes, n) for n in causes.__all__)


# --- share_table / plot_shares -----------------------------------------------------------------

def test_share_table_rows_sum_to_one_in_the_given_order() -> None:
    labels = pd.Series({"a": "unknown", "b": "known", "c": "unknown", "d": "odd"})
    groups = pd.Series({"a": "unlearned", "b": "learned", "c": "unlearned", "d": "learned", "zz": "learned"})
    t = causes.share_table(labels, groups, ["known", "maybe_known", "unknown"])
    assert list(t.columns) == ["known", "maybe_known", "unknown", "odd", "n"]
    assert list(t.index) == ["unlearned", "learned"]  # first appearance
    assert t.loc["unlearned", "unknown"] == 1.0 and t.loc["learned", "known"] == 0.5
    assert t.loc["learned", "maybe_known"] == 0.0
    assert t["n"].tolist() == [2, 2]
    np.testing.assert_allclose(t.drop(columns="n").sum(axis=1), 1.0)


def test_share_table_of_nothing_is_empty_with_the_label_columns() -> None:
    t = causes.share_table(pd.Series(dtype=object), pd.Series(dtype=object), ["known", "unknown"])
    assert t.empty and list(t.columns) == ["known", "unknown", "n"]


def test_plot_shares_draws_one_stacked_bar_per_group_and_label() -> None:
    t = causes.share_table(pd.Series({"a": "known", "b": "unknown", "c": "unknown"}),
                           pd.Series({"a": "learned", "b": "learned", "c": "unlearned"}), ["known", "unknown"])
    ax = _ax()
    assert causes.plot_shares(t, ax, causes.CATEGORY_COLORS, title="t") is ax
    assert len(ax.patches) == 2 * 2
    ticks = {x.get_text(): y for x, y in zip(ax.get_yticklabels(), ax.get_yticks())}
    assert ticks == {"learned (n=2)": 1, "unlearned (n=1)": 0}  # the first group at the top
    assert ax.get_legend() is not None and ax.get_title() == "t"
    widths = sorted(round(p.get_width(), 3) for p in ax.patches)
    assert widths == [0.0, 0.5, 0.5, 1.0]


def test_plot_shares_without_legend_and_of_nothing() -> None:
    t = causes.share_table(pd.Series({"a": "x"}), pd.Series({"a": "g"}))
    ax = causes.plot_shares(t, legend=False)
    assert isinstance(ax, Axes) and ax.get_legend() is None
    empty = causes.plot_shares(causes.share_table(pd.Series(dtype=object), pd.Series(dtype=object)), _ax())
    assert "no samples" in _texts(empty)


# --- plot_histograms ---------------------------------------------------------------------------

def test_plot_histograms_one_step_per_label_with_threshold_and_colours() -> None:
    values = pd.Series({"a": 0.1, "b": 0.9, "c": np.nan, "d": 0.5})
    labels = pd.Series({"a": "g1", "b": "g2", "c": "g1", "d": "g1"})
    ax = causes.plot_histograms(values, labels, _ax(), value_range=(0, 1), threshold=0.8, threshold_label="cut",
                                colors={"g1": "#ff0000"}, ylabel="pairs", log=True)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    assert legend == ["g1 (n=2)", "g2 (n=1)", "cut"]  # NaN left out
    assert len(ax.patches) == 2
    assert ax.get_ylabel() == "pairs" and ax.get_yscale() == "log"
    assert matplotlib.colors.to_hex(ax.patches[0].get_edgecolor()) == "#ff0000"


def test_plot_histograms_of_nothing_notes_it() -> None:
    ax = causes.plot_histograms(pd.Series(dtype=float), pd.Series(dtype=object), _ax())
    assert "no samples" in _texts(ax)


# --- knowledge map, belief labels, drift ---------------------------------------------------------

def test_knowledge_map_marks_beliefs_and_keeps_only_the_selection() -> None:
    s = _signals()
    truth = pd.Series({"a": "missing_knowledge", "b": "pretrain_conflict", "c": "none", "d": "none",
                       "e": "missing_knowledge"})
    only = pd.Series({"a": True, "b": True, "c": False, "d": True, "e": True})
    ax = causes.plot_knowledge_map(s, truth, "missing_knowledge", only=only, ax=_ax(), jitter=0.0)
    points = {c.get_label(): c.get_offsets() for c in ax.collections}
    assert sum(len(p) for p in points.values()) == 4  # c left out
    assert set(points) == {"planted missing_knowledge", "other samples, belief"}
    np.testing.assert_allclose(sorted(map(tuple, points["planted missing_knowledge"])), [(0.0, 0.3), (0.0, 0.9)])
    assert len(points["other samples, belief"]) == 2  # b by both, d by other framings


def test_knowledge_map_of_nothing_notes_it() -> None:
    s = _signals()
    ax = causes.plot_knowledge_map(s, pd.Series(dtype=object), "x", only=pd.Series(False, index=s.index))
    assert "no samples" in _texts(ax)


def test_belief_labels_tell_the_two_sources_apart() -> None:
    labels = causes.belief_labels(_signals())
    assert labels.to_dict() == {"a": "no belief", "b": "belief, confirmed in other framings", "c": "no belief",
                                "d": "belief in other framings only", "e": "no belief"}
    assert set(causes.BELIEF_COLORS) == set(causes.BELIEF_KINDS)


def _dynamics() -> pd.DataFrame:
    """Three samples x three points (steps 0, 5, 10); greedy outputs at the first and last point."""
    rows = []
    outputs = {"a": ("x", "x"), "b": ("Paris", "gold"), "c": ("c", "It is red.")}
    exact = {"a": (0, 1, 0), "b": (0, 1, 1), "c": (1, 1, 0)}
    for sid in "abc":
        for point, step in enumerate((0, 5, 10)):
            out = outputs[sid][0] if point == 0 else (outputs[sid][1] if point == 2 else None)
            rows.append({"id": sid, "point": point, "step": step, "stage": 0 if step < 6 else 1,
                         "exact": bool(exact[sid][point]), "loss": 1.0 / (1 + point), "output": out})
    return pd.DataFrame(rows)


def test_drift_curve_reads_outputs_only_where_they_exist() -> None:
    answers = pd.Series({"a": "x", "b": "Paris", "c": "red"})
    curve = causes.drift_curve(_dynamics(), answers, pd.Series({"a": "belief", "b": "belief", "c": "none"}))
    assert list(curve.columns) == ["group", "point", "step", "exact", "gives_base_answer", "n"]
    belief = curve[curve["group"] == "belief"].set_index("point")
    assert belief["exact"].tolist() == [0.0, 1.0, 0.5]
    assert belief.loc[0, "gives_base_answer"] == 1.0 and belief.loc[2, "gives_base_answer"] == 0.5
    assert np.isnan(belief.loc[1, "gives_base_answer"])
    none = curve[curve["group"] == "none"].set_index("point")
    assert none.loc[2, "gives_base_answer"] == 1.0  # "It is red." gives "red"
    assert none["n"].tolist() == [1, 1, 1]


def test_plot_drift_draws_two_lines_per_group_and_handles_nothing() -> None:
    dyn = _dynamics()
    curve = causes.drift_curve(dyn, pd.Series({"a": "x"}), pd.Series({"a": "g", "b": "h"}))
    ax = causes.plot_drift(curve, _ax(), dynamics=dyn)
    labelled = [line for line in ax.get_lines() if not line.get_label().startswith("_")]
    assert len(labelled) == 4
    assert any(list(line.get_xdata()) == [5, 5] for line in ax.get_lines())  # the end of stage 0
    dotted = [line for line in labelled if line.get_linestyle() == ":"]
    assert [list(line.get_xdata()) for line in dotted] == [[0, 10], [0, 10]]
    empty = causes.drift_curve(dyn, pd.Series(dtype=object), pd.Series(dtype=object))
    assert empty.empty and "no samples" in _texts(causes.plot_drift(empty, _ax()))


# --- siblings --------------------------------------------------------------------------------------

_NEIGHBOURS = {
    "a": [["b", 0.95, False], ["c", 0.2, False]],
    "b": [["a", 0.93, False], ["c", 0.85, True]],
    "c": [["b", 0.85, True], ["c", 1.0, True]],
    "d": [["e", 0.9, True]],
    "e": [["d", 0.9, True], ["a", 0.3, False]],
}


def test_sibling_pairs_are_unordered_unique_and_most_similar_first() -> None:
    pairs = causes.sibling_pairs(_NEIGHBOURS)
    assert list(pairs.columns) == ["a", "b", "similarity", "same_answer"]
    assert [(r.a, r.b) for r in pairs.itertuples()] == [("a", "b"), ("d", "e"), ("b", "c"), ("a", "e"), ("a", "c")]
    assert pairs["similarity"].iloc[0] == 0.95  # the larger of the two directions
    assert not (pairs["a"] == pairs["b"]).any()
    assert causes.sibling_pairs({}).empty


def test_conflict_groups_join_near_duplicates_and_keep_only_conflicting_groups() -> None:
    groups = causes.conflict_groups(causes.sibling_pairs(_NEIGHBOURS), threshold=0.8)
    assert groups.to_dict() == {"a": 1, "b": 1, "c": 1}  # d-e agree: not a conflict group
    assert causes.conflict_groups(causes.sibling_pairs(_NEIGHBOURS), threshold=0.99).empty


def test_follow_labels_own_sibling_or_neither() -> None:
    s = _signals()
    responses = pd.Series({"a": "gold a", "b": "gold b", "c": "gold c", "d": "green", "e": "red"})
    labels = causes.follow_labels(s, responses)
    assert labels.to_dict() == {"a": "neither", "c": "its own answer", "d": "neither"}
    s.loc["d", "output_is_sibling"] = True
    assert causes.follow_labels(s, responses)["d"] == "a sibling's answer"


# --- forgetting ------------------------------------------------------------------------------------

def test_retention_labels() -> None:
    learned = pd.Series({"a": False, "b": False, "c": True, "d": True})
    assert causes.retention_labels(_signals(), learned).to_dict() == {
        "a": "never reproduced after training", "b": "forgotten", "c": "retained", "d": "retained",
        "e": "forgotten"}


def test_aligned_reproduction_counts_points_from_the_last_training_step() -> None:
    dyn = _dynamics()
    last = pd.Series({"a": 5, "b": 0, "c": 7})
    table = causes.aligned_reproduction(dyn, last, pd.Series({"a": "g", "b": "g", "c": "h"}))
    assert list(table.columns) == ["group", "offset", "steps_after", "exact", "n"]
    h = table[table["group"] == "h"]
    assert h["offset"].tolist() == [-2, -1, 0]  # the first point at or after step 7 is step 10
    assert h["steps_after"].tolist() == [-7, -2, 3]
    g = table[table["group"] == "g"].set_index("offset")
    assert g.index.tolist() == [-1, 0, 1, 2]  # a starts at step 5 (offset 0), b at step 0
    assert g.loc[0, "n"] == 2 and g.loc[0, "exact"] == 0.5  # a at step 5 (1), b at step 0 (0)
    assert g.loc[2, "exact"] == 1.0 and g.loc[2, "n"] == 1


def test_plot_aligned_reproduction_skips_thin_offsets_and_handles_nothing() -> None:
    dyn = _dynamics()
    table = causes.aligned_reproduction(dyn, pd.Series({"a": 5, "b": 0}), pd.Series({"a": "g", "b": "g"}))
    ax = causes.plot_aligned_reproduction(table, _ax(), min_n=2)
    line = [x for x in ax.get_lines() if x.get_label().startswith("g")][0]
    assert list(line.get_xdata()) == [0, 1]
    assert line.get_label() == "g (n=2)"
    empty = causes.aligned_reproduction(dyn, pd.Series(dtype=float), pd.Series(dtype=object))
    assert empty.empty and "no samples" in _texts(causes.plot_aligned_reproduction(empty, _ax()))


# --- rare patterns ---------------------------------------------------------------------------------

def test_rare_map_draws_the_selection_and_drops_missing_slopes() -> None:
    s = _signals()
    truth = pd.Series({"a": "rare_pattern", "b": "none", "c": "none", "d": "rare_pattern", "e": "rare_pattern"})
    ax = causes.plot_rare_map(s, truth, "rare_pattern", rare_max=3, only=pd.Series({"a": True, "b": True, "d": True,
                                                                                   "e": True}), ax=_ax())
    points = {c.get_label(): c.get_offsets() for c in ax.collections if c.get_label() in
              ("planted rare_pattern", "other samples")}
    assert len(points["planted rare_pattern"]) == 2 and len(points["other samples"]) == 1  # e: no slope
    assert ax.get_xscale() == "linear"  # small counts: integer ticks
    wide = causes.plot_rare_map(s, truth, "rare_pattern", rare_max=3, ax=_ax())  # c shares its pattern with 40
    assert wide.get_xscale() == "symlog"
    nothing = causes.plot_rare_map(s, truth, "rare_pattern", 3, only=pd.Series(False, index=s.index))
    assert "no samples" in _texts(nothing)


def test_share_table_puts_the_named_rows_first_and_skips_absent_ones() -> None:
    labels = pd.Series({"a": "x", "b": "y", "c": "x"})
    groups = pd.Series({"a": "unlearned", "b": "learned", "c": "other"})
    t = causes.share_table(labels, groups, rows=["learned", "missing", "unlearned"])
    assert list(t.index) == ["learned", "unlearned", "other"]
