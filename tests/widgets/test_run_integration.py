"""Both inspectors on a real `smoke` run folder: what they read, what they compute, what they show."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from ilpnb.widgets import InteractionViewer, SampleInspector, SampleState, sample_table
from ilpnb.widgets.interactions import InteractionState, compute_checkpoint_interactions


def test_sample_table_joins_records_outputs_history_and_truth(smoke_run) -> None:
    table = sample_table(smoke_run.run, diagnosis=False)
    sft = [json.loads(line) for line in (smoke_run.world / "sft.jsonl").read_text().splitlines()]
    assert table["id"].tolist() == [r["id"] for r in sft]
    first = table.iloc[0]
    assert first["prompt"] == sft[0]["prompt"] and first["response"] == sft[0]["response"]
    assert isinstance(first["output"], str) and isinstance(first["base_output"], str)
    truth = {json.loads(line)["id"]: json.loads(line)["planted_cause"]
             for line in (smoke_run.world / "truth.jsonl").read_text().splitlines()}
    assert dict(zip(table["id"], table["planted_cause"])) == truth
    samples = pd.read_parquet(smoke_run.run / "samples.parquet")
    assert dict(zip(table["id"], table["learned"])) == dict(zip(samples["id"], samples["learned"]))
    assert "cause" not in table.columns


def test_state_from_run_uses_the_run_tokenizer_and_shows_every_part(diagnosed_run) -> None:
    st = SampleState.from_run(diagnosed_run)
    assert st.method == "tokens"
    assert st.available_filters() == ["learned", "cause", "stage", "planted"]
    diag = pd.read_parquet(diagnosed_run / "diagnosis.parquet")
    unlearned = diag.loc[~diag["learned"], "id"].tolist()
    assert st.visible_ids == unlearned
    st.set_filter("planted", "data_conflict")
    sid = st.current
    html = st.render_html()
    assert f'data-sample-id="{sid}"' in html and st.row()["prompt"] in html
    assert "first wrong token" in html or "reproduced exactly" in html
    assert "stage" in html and "data:image/png;base64," in html
    assert "synthetic evidence" in html and st.siblings(sid)
    assert st.render_siblings(sid).count("<tr>") == 1 + len(st.siblings(sid))


def test_inspector_on_the_run_follows_filter_and_picker(diagnosed_run) -> None:
    si = SampleInspector(diagnosed_run)
    first = si.shown_id
    si.filters["learned"].value = "learned"
    learned = si.shown_id
    assert learned != first and si.state.row()["learned"]
    si.filters["stage"].value = "1"
    assert si.state.row()["sample_stage"] == 1
    other = [v for _, v in si.picker.options if v != si.shown_id]
    if other:
        si.picker.value = other[0]
        assert si.shown_id == other[0] and f'data-sample-id="{other[0]}"' in si.card.value


def test_checkpoint_interactions_of_a_run(smoke_run) -> None:
    table = compute_checkpoint_interactions(smoke_run.run, max_prompts=1, max_checkpoints=2, max_players=4,
                                            and_or=False)
    assert sorted(table["step"].unique())[0] == 0 and table["step"].nunique() == 2
    assert table["prompt_id"].nunique() == 1 and set(table["kind"]) == {"and", "or"}
    assert table.groupby("step").size().nunique() == 1  # same players at every checkpoint
    assert table.groupby("step")["target"].nunique().max() == 1 and table["target"].nunique() == 1
    st = InteractionState(table)
    assert len(st.players()) == 4 and st.prompt in table["prompt"].iloc[0]
    iv = InteractionViewer(state=st)
    iv.slider.value = 0
    assert 'data-step="0"' in iv.view.value
    iv.slider.value = st.steps[-1]
    assert "salient interactions against step 0 (base)" in iv.view.value


def test_viewer_reads_a_stored_interactions_parquet_without_prompt_text(diagnosed_run, tmp_path) -> None:
    import shutil

    from widgets_helpers import interaction_table

    run = tmp_path / "run"
    shutil.copytree(diagnosed_run, run, ignore=shutil.ignore_patterns("checkpoints"))
    sid = pd.read_parquet(run / "samples.parquet")["id"].iloc[0]
    table = interaction_table(prompt_id=sid).drop(columns="prompt")
    table["subset"] = [list(s) for s in table["subset"]]
    table.to_parquet(run / "interactions.parquet", index=False)
    st = InteractionState.from_run(run, compute=False)
    records = {json.loads(line)["id"]: json.loads(line)["prompt"]
               for line in open(json.loads((run / "config.json").read_text())["data"])}
    assert st.prompt == records[sid]
    (run / "interactions.parquet").unlink()
    with pytest.raises(FileNotFoundError):
        InteractionState.from_run(run, compute=False)
