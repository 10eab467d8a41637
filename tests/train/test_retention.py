"""Knowledge retention through SFT: probe recall of the base model and of each stage's end."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from sft_helpers import Smoke

from ilpnb.data.records import SFTRecord
from ilpnb.probe.knowledge import probe_report, read_probes, run_probes
from ilpnb.probe.retention import NOT_IN_SFT, knowledge_retention, retention_summary, subject_groups
from ilpnb.train.sft import run_sft


def test_subject_groups_take_the_first_stage_and_whole_words() -> None:
    records = [SFTRecord(id="a", prompt="Where does Bo live?", response="X", stage=1),
               SFTRecord(id="b", prompt="What is Bo's job?", response="Y", stage=0),
               SFTRecord(id="c", prompt="Where does Bolan live?", response="Z", stage=1)]
    groups = subject_groups(["Bo", "Bolan", "Kim"], records)
    assert groups == {"Bo": "stage 0", "Bolan": "stage 1", "Kim": NOT_IN_SFT}


@pytest.fixture(scope="module")
def staged_run(smoke: Smoke, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("retention") / "run"
    return run_sft(out, world=smoke.world, preset="smoke", progress=False, checkpoints="stages",
                   sft={"epochs": 2, "converge": False}, track_options="ends")


def test_retention_rows_per_checkpoint_and_group(staged_run: Path, smoke: Smoke) -> None:
    table = knowledge_retention(staged_run)
    names = list(dict.fromkeys(table.sort_values("step")["checkpoint"]))
    assert names[0] == "base" and {"stage-0-end", "stage-1-end"} <= set(names)
    assert {"stage 0", "stage 1"} <= set(table["group"])
    assert table["recall"].between(0, 1).all() and (table["facts"] > 0).all()
    # the base rows are the base model's own probe report on stated facts, split by group
    from ilpnb.interactions.checkpoints import load_checkpoint

    model, tok = load_checkpoint(str(smoke.model))
    report = probe_report(run_probes(model, tok, read_probes(smoke.world / "probes.jsonl")), smoke.world)
    stated = report[report["stated"]]
    base = table[table["checkpoint"] == "base"]
    assert base["facts"].sum() == len(stated)
    assert base["recall"].mul(base["facts"]).sum() / base["facts"].sum() == pytest.approx(stated["recall"].mean())
    wide = retention_summary(table)
    assert list(wide.index.get_level_values("checkpoint"))[0] == "base"
    assert isinstance(wide, pd.DataFrame) and set(wide.columns) == set(table["group"])


def test_a_run_without_checkpoints_is_a_clear_error(smoke: Smoke, tmp_path: Path) -> None:
    import shutil

    out = run_sft(tmp_path / "run", world=smoke.world, preset="smoke", progress=False, checkpoints="none",
                  sft={"epochs": 1, "converge": False}, track_options="ends")
    shutil.rmtree(out / "checkpoints")  # stage ends are kept even with checkpoints="none"
    with pytest.raises(FileNotFoundError, match="no saved checkpoint"):
        knowledge_retention(out)
    with pytest.raises(FileNotFoundError, match="no probe file"):
        knowledge_retention(out, probes=tmp_path / "missing.jsonl")
