"""InteractionState (no ipywidgets) on a hand-made exact game with known interactions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from widgets_helpers import interaction_table

from ilpnb.widgets.interactions import InteractionState, interactions_from_results, normalise_table


def _two_prompts() -> pd.DataFrame:
    other = interaction_table(steps=(0, 5), words=("Which", "colour", "does", "Migom"), prompt_id="p2",
                              prompt="Which colour does Migom like?")
    return pd.concat([interaction_table(), other], ignore_index=True)


def test_defaults_first_prompt_last_checkpoint() -> None:
    st = InteractionState(_two_prompts(), name="synthetic")
    assert st.prompt_ids == ["p1", "p2"] and st.prompt_id == "p1"
    assert st.steps == [0, 5, 10] and st.step == 10
    assert st.checkpoint_options() == [("step 0 (base)", 0), ("step 5", 5), ("step 10", 10)]
    assert st.prompt_options()[1] == ("p2 · Which colour does Migom like?", "p2")
    assert st.players() == ["Where", "does", "Zorvan", "live?"]


def test_single_word_effects_drop_one_word_from_the_full_prompt() -> None:
    st = InteractionState(interaction_table())
    st.set_step(0)
    eff, measure = st.word_effects()
    assert measure == "v(N) − v(N∖{i})"
    np.testing.assert_allclose(eff["effect"], [2.5, 0.01, 3.5, -0.5])


def test_single_word_effects_fall_back_to_order_one_and() -> None:
    st = InteractionState(interaction_table().drop(columns="v"))
    st.set_step(0)
    eff, measure = st.word_effects()
    assert measure.startswith("I({i})")
    np.testing.assert_allclose(eff["effect"], [1.0, 0.01, 2.0, -0.5])


def test_top_interactions_ranked_by_magnitude_and_kind_filter() -> None:
    st = InteractionState(interaction_table(), top_k=3)
    st.set_step(0)
    top = st.top_interactions()
    assert top["rank"].tolist() == [1, 2, 3]
    assert top["subset"].tolist() == [(2,), (0, 2), (0,)] and top["kind"].tolist() == ["and"] * 3
    assert top["order"].tolist() == [1, 2, 1]
    st.set_kind("or")
    assert st.top_interactions(1)["subset"].tolist() == [(1,)]
    with pytest.raises(ValueError):
        st.set_kind("xor")


def test_statuses_against_the_base_follow_the_dynamics_definitions() -> None:
    st = InteractionState(interaction_table())
    st.set_step(0)
    assert st.frame()["status"].isna().all() and st.status_counts().sum().sum() == 0
    st.set_step(5)
    totals = st.status_counts().sum().to_dict()
    assert totals == {"preserved": 4, "emerged": 0, "removed": 1}
    gone = st.removed()
    assert gone["subset"].tolist() == [(0, 2)] and gone["value_before"].tolist() == [1.5]
    st.set_step(10)
    f = st.frame().set_index(["subset", "kind"])
    assert f.loc[((1, 3), "and"), "status"] == "emerged"
    assert f.loc[((0, 2), "and"), "status"] == "removed"
    assert f.loc[((2,), "and"), "status"] == "preserved"
    assert st.status_counts().loc[2].to_dict() == {"preserved": 0, "emerged": 1, "removed": 1}


def test_statuses_against_the_previous_checkpoint() -> None:
    st = InteractionState(interaction_table(), reference="previous")
    assert st.reference_step() == 5
    assert st.status_counts().sum().to_dict() == {"preserved": 4, "emerged": 1, "removed": 0}


def test_matches_ilpnb_interactions_dynamics_assign_status() -> None:
    dyn = pytest.importorskip("ilpnb.interactions.dynamics")
    table = interaction_table()
    table["mask"] = [sum(1 << i for i in s) for s in table["subset"]]
    theirs = dyn.assign_status(table)
    mine = InteractionState(table)
    for step in mine.steps[1:]:
        mine.set_step(step)
        f = mine.frame()
        ref = theirs[(theirs["step"] == step) & (theirs["order"] > 0)]
        a = dict(zip(zip(f["subset"], f["kind"]), f["status"].fillna("none")))
        b = dict(zip(zip(ref["subset"], ref["kind"]), ref["status"]))
        assert a == b


def test_stored_status_is_used_and_none_means_no_status() -> None:
    table = interaction_table()
    table["status"] = "none"
    table.loc[(table["step"] == 10) & (table["subset"] == (0,)) & (table["kind"] == "and"), "status"] = "emerged"
    table["base_value"] = 0.25
    st = InteractionState(table.drop(columns="prompt"), prompts={"p1": "Where does Zorvan live?"})
    assert st.stored_status and st.prompt == "Where does Zorvan live?"
    assert st.status_counts().sum().to_dict() == {"preserved": 0, "emerged": 1, "removed": 0}
    assert "statuses from the table" in st.render_status()
    all_none = interaction_table().assign(status="none")
    assert not InteractionState(all_none).stored_status


def test_prompt_defaults_to_its_id_and_required_columns_are_checked() -> None:
    st = InteractionState(interaction_table().drop(columns="prompt"))
    assert st.prompt == "p1"
    with pytest.raises(ValueError, match="lacks columns"):
        normalise_table(interaction_table().drop(columns=["salient"]))
    with pytest.raises(ValueError, match="empty"):
        InteractionState(interaction_table().iloc[:0])


def test_subsets_as_lists_or_arrays_are_read_as_tuples() -> None:
    table = interaction_table()
    table["subset"] = [np.array(s, dtype=np.int64) for s in table["subset"]]
    st = InteractionState(table)
    assert st.players() == ["Where", "does", "Zorvan", "live?"]


def test_switching_prompt_keeps_or_clamps_the_checkpoint() -> None:
    st = InteractionState(_two_prompts())
    st.set_step(5)
    st.set_prompt("p2")
    assert st.step == 5
    st.set_prompt("p1")
    st.set_step(10)
    st.set_prompt("p2")
    assert st.step == 5  # p2 has no step 10: its last checkpoint
    with pytest.raises(ValueError):
        st.set_step(10)
    with pytest.raises(KeyError):
        st.set_prompt("p9")


def test_render_html_words_list_and_statuses() -> None:
    st = InteractionState(interaction_table(), top_k=5)
    html = st.render_html()
    assert 'data-prompt-id="p1"' in html and 'data-step="10"' in html
    assert 'title="Zorvan: +2.520"' in html  # v(N) - v(N minus Zorvan) at step 10: 2.5 + 0.02
    assert "rgba(214,39,40" in html and "rgba(31,119,180" in html  # red and blue words
    assert html.count("<tr>") >= 6 and "does &amp; live?" in html
    assert "1 emerged" in html and "largest removed" in html
    st.set_step(0)
    assert "is the first checkpoint" in st.render_status()


def test_interactions_from_results_builds_the_schema() -> None:
    from ilpnb.interactions import InteractionResult, Player
    from ilpnb.interactions.transforms import and_interactions, or_interactions

    players = [Player("a", (0,), (0, 1), (0,)), Player("b", (1,), (2, 3), (1,))]
    v = np.array([0.0, 1.0, 2.0, 4.0])
    res = InteractionResult(prompt="a b", players=players, values=v, and_values=and_interactions(v),
                            or_values=or_interactions(v), target_text="x")
    table = interactions_from_results([(0, "q", res), (7, "q", res)], {7: "point-1"})
    assert {"prompt_id", "prompt", "step", "subset", "words", "order", "kind", "value", "salient", "v"} <= set(table)
    st = InteractionState(table)
    assert st.steps == [0, 7] and st.players() == ["a", "b"]
    eff, _ = st.word_effects()
    np.testing.assert_allclose(eff["effect"], [2.0, 3.0])
    with pytest.raises(ValueError):
        interactions_from_results([])
