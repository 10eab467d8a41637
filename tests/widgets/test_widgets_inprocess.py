"""The widget builders in process: set a widget's value, read what is shown."""

from __future__ import annotations

from typing import Any

import pytest
from widgets_helpers import diagnosis, dynamics, interaction_table, samples

from ilpnb.widgets import InteractionState, InteractionViewer, SampleInspector, SampleState
from ilpnb.widgets.display import HIDE_FALLBACK


def _inspector() -> SampleInspector:
    table = samples()
    d = diagnosis(table["id"].tolist(), table["learned"].tolist(), table["planted_cause"].tolist(),
                  siblings={"s3": ["s4"], "s4": ["s3"]})
    return SampleInspector(state=SampleState(table.merge(d.drop(columns="learned"), on="id"), dynamics(), name="syn"))


def _shown(si: SampleInspector) -> str:
    marker = 'data-sample-id="'
    html = si.card.value
    return html[html.index(marker) + len(marker):].split('"', 1)[0]


def test_inspector_shows_the_default_state() -> None:
    si = _inspector()
    assert set(si.filters) == {"learned", "cause", "stage", "planted"}
    assert si.filters["learned"].value == "unlearned"
    assert si.picker.value == "s2" and _shown(si) == "s2"
    assert "4 of 6 samples shown" in si.count.value
    assert si.card.value.startswith(HIDE_FALLBACK) and "Where does Mirela live?" in si.card.value


def test_filter_dropdown_changes_the_list_and_the_shown_sample() -> None:
    si = _inspector()
    si.filters["planted"].value = "rare_pattern"
    assert [v for _, v in si.picker.options] == ["s5"]
    assert si.picker.value == "s5" and _shown(si) == "s5"
    assert "Describe Tolva." in si.card.value and "1 of 6 samples shown" in si.count.value
    si.filters["planted"].value = "all"
    si.filters["cause"].value = "data_conflict"
    assert [v for _, v in si.picker.options] == ["s3", "s4"] and _shown(si) == "s3"
    si.filters["stage"].value = "0"  # nothing left
    assert si.picker.options == () and si.picker.value is None
    assert "No sample matches" in si.card.value


def test_picker_buttons_and_sibling_jump() -> None:
    si = _inspector()
    si.picker.value = "s3"
    assert _shown(si) == "s3" and "What is the favourite colour of Geinari?" in si.card.value
    assert [b.description for b in si.sibling_buttons] == ["open sibling s4"]
    si.sibling_buttons[0].click()
    assert si.picker.value == "s4" and _shown(si) == "s4"
    si.next_button.click()
    assert _shown(si) == "s5"
    si.prev_button.click()
    si.prev_button.click()
    assert _shown(si) == "s3"
    si.filters["learned"].value = "learned"
    assert _shown(si) == "s1" and si.sibling_buttons == []


def test_sibling_hidden_by_filters_is_revealed() -> None:
    si = _inspector()
    si.picker.value = "s3"
    si.filters["planted"].value = "data_conflict"
    si.filters["learned"].value = "unlearned"
    si.state.samples.loc[si.state.samples["id"] == "s4", "planted_cause"] = "none"  # hide s4 from the filter
    si.refresh()
    si.sibling_buttons[0].click()
    assert _shown(si) == "s4" and si.filters["planted"].value == "all"


def test_viewer_slider_prompt_kind_and_top_k() -> None:
    other = interaction_table(steps=(0, 5), prompt_id="p2", prompt="Which colour does Migom like?",
                              words=("Which", "colour", "does", "Migom"))
    import pandas as pd

    iv = InteractionViewer(table=pd.concat([interaction_table(), other], ignore_index=True))
    assert iv.slider.value == 10 and 'data-step="10"' in iv.view.value
    assert "1 emerged" in iv.view.value
    iv.slider.value = 0
    assert 'data-step="0"' in iv.view.value and "is the first checkpoint" in iv.view.value
    iv.slider.value = 5
    assert "1 removed" in iv.view.value and "0 emerged" in iv.view.value
    iv.kind.value = "or"
    assert iv.state.top_interactions()["kind"].unique().tolist() == ["or"]
    iv.kind.value = "both"
    iv.top_k.value = 5
    assert iv.state.top_k == 5 and iv.view.value.count("</td></tr>") >= 5
    iv.prompt_picker.value = "p2"
    assert 'data-prompt-id="p2"' in iv.view.value and [s for _, s in iv.slider.options] == [0, 5]
    assert iv.slider.value == 5


def test_display_shows_the_widget_then_a_hidden_static_copy(monkeypatch: pytest.MonkeyPatch) -> None:
    import IPython.display

    shown: list[tuple[Any, dict[str, Any]]] = []
    monkeypatch.setattr(IPython.display, "display", lambda obj, **kw: shown.append((obj, kw)))
    si = _inspector()
    si._ipython_display_()
    assert len(shown) == 2
    bundle, kw = shown[0]
    assert kw == {"raw": True}
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == si.model_id
    assert bundle["text/plain"].startswith("SampleInspector of syn")
    static = shown[1][0].data
    assert static.startswith('<div class="ilpnb-fallback">') and 'data-sample-id="s2"' in static
    assert HIDE_FALLBACK not in static
    shown.clear()
    iv = InteractionViewer(state=InteractionState(interaction_table()))
    iv._ipython_display_()
    assert len(shown) == 2 and 'data-prompt-id="p1"' in shown[1][0].data


def test_builders_need_something_to_show() -> None:
    with pytest.raises(ValueError):
        SampleInspector()
    with pytest.raises(ValueError):
        InteractionViewer()
