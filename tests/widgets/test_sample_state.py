"""SampleState (no ipywidgets): filters, picking, the first wrong token, rendering."""

from __future__ import annotations

import sys

import pandas as pd
import pytest
from widgets_helpers import SAMPLES, diagnosis, dynamics, samples

from ilpnb.widgets.samples import ALL, SampleState, first_wrong_token, tokenizer_pieces, word_pieces
from ilpnb.widgets.sources import prompt_siblings


def _state(diag: bool = True, **kw) -> SampleState:
    table = samples()
    if diag:
        d = diagnosis(table["id"].tolist(), table["learned"].tolist(), table["planted_cause"].tolist(),
                      siblings={"s3": ["s4"], "s4": ["s3"]})
        table = table.merge(d.drop(columns="learned"), on="id")
    return SampleState(table, dynamics(), name="synthetic", **kw)


def test_state_module_imports_no_ipywidgets() -> None:
    import ilpnb.widgets.interactions  # noqa: F401
    import ilpnb.widgets.samples  # noqa: F401
    import ilpnb.widgets.sources  # noqa: F401

    for name in ("ilpnb.widgets.samples", "ilpnb.widgets.interactions", "ilpnb.widgets.sources",
                 "ilpnb.widgets.html", "ilpnb.plots.samples"):
        src = sys.modules[name].__file__
        text = open(src, encoding="utf-8").read()
        assert "import ipywidgets" not in text, f"{name} imports ipywidgets"


def test_public_names_resolve() -> None:
    import ilpnb.widgets as w

    for name in w.__all__:
        assert getattr(w, name) is not None, name


def test_default_filter_is_unlearned_and_first_unlearned_picked() -> None:
    st = _state()
    assert st.filters["learned"] == "unlearned"
    assert st.visible_ids == ["s2", "s3", "s4", "s5"]
    assert st.current == "s2"
    assert st.summary() == "4 of 6 samples shown"
    assert SampleState(samples(), dynamics(), default_unlearned=False).filters["learned"] == ALL


def test_filter_options_with_counts_and_cause_order() -> None:
    st = _state()
    assert st.filter_options("learned") == [("all (6)", "all"), ("unlearned (4)", "unlearned"), ("learned (2)", "learned")]
    causes = [v for _, v in st.filter_options("cause")]
    assert causes == ["all", "none", "missing_knowledge", "data_conflict", "rare_pattern"]
    assert [v for _, v in st.filter_options("stage")] == ["all", "0", "1"]
    assert ("stage 1 (3)", "1") in st.filter_options("stage")
    planted = dict((v, lbl) for lbl, v in st.filter_options("planted"))
    assert planted["data_conflict"] == "data_conflict (2)"
    with pytest.raises(KeyError):
        st.filter_options("colour")


def test_filters_without_data_have_only_all() -> None:
    st = SampleState(samples(with_truth=False), dynamics())
    assert st.filter_options("cause") == [("all (6)", "all")]
    assert st.filter_options("planted") == [("all (6)", "all")]
    assert st.available_filters() == ["learned", "stage"]


def test_set_filter_keeps_or_moves_the_pick() -> None:
    st = _state()
    st.select("s4")
    st.set_filter("planted", "data_conflict")  # s4 still shown: stays
    assert st.current == "s4" and st.visible_ids == ["s3", "s4"]
    st.set_filter("stage", "0")  # nothing left
    assert st.visible_ids == [] and st.current is None
    assert "No sample matches" in st.render_html()
    st.set_filter("stage", ALL)
    st.set_filter("planted", "rare_pattern")
    assert st.current == "s5"
    with pytest.raises(ValueError, match="choices"):
        st.set_filter("cause", "bad_cause")


def test_select_reveals_a_hidden_sample_and_step_wraps() -> None:
    st = _state()
    st.set_filter("stage", "1")
    st.select("s1")  # learned, stage 0: both filters that hide it are reset
    assert st.current == "s1" and st.filters["learned"] == ALL and st.filters["stage"] == ALL
    st.reset_filters()
    st.set_filter("learned", "learned")
    assert st.step(1) == "s6" and st.step(1) == "s1" and st.step(-1) == "s6"
    with pytest.raises(KeyError):
        st.select("nope")


def test_picker_options_mark_learned_and_show_the_prompt() -> None:
    st = _state(default_unlearned=False)
    labels = dict((v, lbl) for lbl, v in st.options())
    assert labels["s1"] == "✓ s1 · Where does Zorvan live?"
    assert labels["s2"].startswith("✗ s2 · ")
    long = [lbl for lbl, v in st.options() if v == "s4"][0]
    assert len(long) <= 70


@pytest.mark.parametrize(("gold", "output", "index", "wrong", "expected"), [
    ("Oslo", "Oslo", None, None, None),
    ("Paris", "Rome", 0, "Rome", "Paris"),
    ("Tolva lives in Oslo and works as a potter.", "Tolva lives in Oslo and works as a painter.", 8, " painter", " potter"),
    ("orange", "orange juice", 1, " juice", None),  # does not stop
    ("Tolva lives in Oslo.", "Tolva lives", 2, None, " in"),  # stops early
])
def test_first_wrong_word(gold: str, output: str, index: int | None, wrong: str | None, expected: str | None) -> None:
    d = first_wrong_token(gold, output)
    assert d.method == "words" and d.index == index and d.match == (index is None)
    assert d.wrong_piece == wrong and d.expected_piece == expected
    assert "".join(p for p, _ in d.output) == output and "".join(p for p, _ in d.gold) == gold


def test_word_pieces_cover_the_text() -> None:
    text = "  Hello, world!  "
    assert "".join(p for p, _ in word_pieces(text)) == text
    assert [k for _, k in word_pieces(text)] == ["Hello", ",", "world", "!"]


def test_tokenizer_pieces_use_token_ids_and_cover_the_text() -> None:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {"[UNK]": 0, "Ġblack": 1, "Ġblue": 2, "Ġsky": 3, "Ġis": 4, "Ġthe": 5, "Ġbl": 6, "ack": 7}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    split = tokenizer_pieces(tok)
    pieces = split("the sky is blue")
    assert "".join(p for p, _ in pieces) == "the sky is blue"
    assert [k for _, k in pieces] == [5, 3, 4, 2]
    d = first_wrong_token("the sky is black", "the sky is blue", split, "tokens")
    assert d.index == 3 and d.wrong_piece == " blue" and d.expected_piece == " black" and d.method == "tokens"


def test_render_shows_texts_with_the_first_wrong_piece_highlighted() -> None:
    st = _state()
    st.select("s5")
    html = st.render_html()
    assert 'data-sample-id="s5"' in html and "Describe Tolva." in html
    assert '<span class="wrong">painter</span>' in html
    assert '<span class="expected">potter</span>' in html
    assert "first wrong word at position 9" in html
    assert "planted: rare_pattern ✓" in html and "diagnosed: rare_pattern" in html
    assert "<b>rare_pattern</b>" in html and "synthetic evidence for s5" in html
    assert "data:image/png;base64," in html  # the learning curve
    st.select("s1")
    assert "reproduced exactly" in st.render_texts()


def test_siblings_from_the_diagnosis_and_fallback_rule() -> None:
    st = _state()
    assert st.siblings("s3") == ["s4"] and st.siblings("s1") == []
    assert "Please tell me: what is the favourite colour of Geinari?" in st.render_siblings("s3")
    fallback = SampleState(samples(), dynamics())
    assert fallback.siblings("s3") == ["s4"] and fallback.siblings("s4") == ["s3"]
    assert fallback.siblings("s1") == []  # same question about someone else: not a sibling
    assert "the diagnosis lists none" in fallback.render_siblings("s3")


def test_without_diagnosis_the_card_says_so() -> None:
    st = SampleState(samples(), dynamics())
    assert "No diagnosis yet" in st.render_diagnosis()


def test_without_records_or_dynamics_it_still_renders() -> None:
    table = samples().drop(columns=["prompt", "response", "output", "base_output"])
    st = SampleState(table, None)
    html = st.render_html()
    assert "could not be read" in html and "no dynamics" not in html  # figure text is in the PNG
    assert st.token_diff() is None


def test_curve_rows_and_figure() -> None:
    st = _state()
    rows = st.curve_rows("s2")
    assert list(rows["step"]) == [0, 2, 4, 10, 16]
    fig = st.curve_figure("s2")
    ax = fig.axes[0]
    assert [line.get_label() for line in ax.get_lines()][0] == "loss (nats/token)"


def test_prompt_siblings_groups_variants_of_one_question() -> None:
    prompts = {"a": "Where does Zorvan live?", "b": "Please tell me: where does Zorvan live ?",
               "c": "Quick question. Where does Zorvan live?", "d": "Where does Mirela live?", "e": "Hi",
               "f": "hi!"}
    sib = prompt_siblings(prompts)
    assert sorted(sib["b"]) == ["a", "c"] and sorted(sib["c"]) == ["a", "b"]
    assert sib["d"] == [] and sib["e"] == ["f"]


def test_samples_need_an_id() -> None:
    with pytest.raises(ValueError, match="id"):
        SampleState(pd.DataFrame({"x": [1]}))
    assert len(SAMPLES) == 6
