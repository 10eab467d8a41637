"""The torch-free run reader: every accessor on a run folder written by hand, and its errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ilpnb.data.records import RecordError
from ilpnb.runs import (
    Checkpoint,
    Run,
    base_rows,
    final_rows,
    read_truth_file,
    world_truth,
)

IDS = ["a", "b", "c"]
CAUSES = {"a": "none", "b": "missing_knowledge", "c": "left_forgetting"}


def _world(folder: Path) -> Path:
    folder.mkdir(parents=True)
    lines = [{"id": i, "prompt": f"Where does {i} live?", "response": f"town-{i}", "stage": int(i == "c")}
             for i in IDS]
    (folder / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (folder / "truth.jsonl").write_text("".join(json.dumps({"id": i, "planted_cause": c}) + "\n"
                                                for i, c in CAUSES.items()))
    return folder


def _dynamics(rng: np.random.Generator) -> pd.DataFrame:
    """Three samples x five points over two stages (stage 0 ends at point 2), rows shuffled."""
    rows = []
    for point, (step, stage) in enumerate([(0, "0"), (4, "0"), (8, "0"), (12, "1"), (16, "1")]):
        for i in IDS:
            rows.append({"id": i, "point": point, "step": step, "stage": stage, "sample_stage": int(i == "c"),
                         "loss": float(rng.uniform(0, 3)), "exact": bool(rng.integers(0, 2))})
    return pd.DataFrame(rows).sample(frac=1.0, random_state=1).reset_index(drop=True)


@pytest.fixture()
def run(tmp_path: Path) -> dict:
    world = _world(tmp_path / "world")
    folder = tmp_path / "sft"
    (folder / "checkpoints").mkdir(parents=True)
    cfg = {"model": "tiny-base", "data": str(world / "sft.jsonl"), "world": str(world), "sft": {"lora": False}}
    (folder / "config.json").write_text(json.dumps(cfg))
    dyn = _dynamics(np.random.default_rng(0))
    dyn.to_parquet(folder / "dynamics.parquet", index=False)
    pd.DataFrame({"id": IDS, "learned": [True, False, False], "cause": ["none", "missing_knowledge", "unattributed"]}
                 ).to_parquet(folder / "diagnosis.parquet", index=False)
    pd.DataFrame({"id": ["a", "b", "c"], "step": [1, 2, 9], "stage": ["0", "0", "1"], "point": [1, 1, 3]}
                 ).to_parquet(folder / "schedule.parquet", index=False)
    (folder / "convergence.json").write_text(json.dumps({"stages": [{"stage": "0", "converged": True}]}))
    for name, meta in {"point-0001-step-000004": {"step": 4, "point": 1, "stage": 0, "epoch": 1.0},
                       "stage-0-end": {"step": 8, "point": 2, "stage": 0, "epoch": 2.0},
                       "point-0002-step-000008": {"step": 8, "point": 2, "stage": 0, "epoch": 2.0},
                       "stage-1-end": {"step": 16, "point": 4, "stage": 1, "epoch": 2.0, "lora": True}}.items():
        (folder / "checkpoints" / name).mkdir()
        (folder / "checkpoints" / name / "ilpnb_checkpoint.json").write_text(json.dumps(meta))
    (folder / "checkpoints" / "scratch").mkdir()  # neither metadata nor a step: not a checkpoint
    return {"folder": folder, "world": world, "dyn": dyn, "cfg": cfg}


def test_config_records_and_tables(run: dict) -> None:
    r = Run(run["folder"])
    assert r.config == run["cfg"]
    assert r.config is r.config  # read once
    assert r.world == run["world"]
    assert [x.id for x in r.records()] == IDS
    table = r.records_table()
    assert list(table.index) == IDS and table.loc["c", "stage"] == 1 and table.loc["a", "response"] == "town-a"
    pd.testing.assert_frame_equal(r.dynamics(), run["dyn"])
    assert r.diagnosis()["cause"].tolist() == ["none", "missing_knowledge", "unattributed"]
    assert r.schedule()["step"].tolist() == [1, 2, 9]
    assert r.convergence()["stages"][0]["converged"] is True
    assert r.samples() is None


def test_base_and_final_rows_are_the_first_and_last_point_per_sample(run: dict) -> None:
    r, dyn = Run(run["folder"]), run["dyn"]
    base, final = r.base(), r.final()
    assert sorted(base.index) == IDS and sorted(final.index) == IDS
    assert set(base["point"]) == {0} and set(final["point"]) == {4}
    assert set(final["stage"]) == {"1"}  # the end of the last stage, not of each stage
    for i in IDS:
        assert final.loc[i, "loss"] == dyn[(dyn["id"] == i) & (dyn["point"] == 4)]["loss"].item()
        assert base.loc[i, "loss"] == dyn[(dyn["id"] == i) & (dyn["point"] == 0)]["loss"].item()
    pd.testing.assert_frame_equal(final_rows(dyn), final)
    part = dyn[dyn["point"] <= 2]  # an unfinished run: its last point so far
    assert set(final_rows(part)["point"]) == {2} and set(base_rows(part)["point"]) == {0}
    with pytest.raises(ValueError, match="'id' and 'point'"):
        final_rows(dyn.drop(columns="point"))


def test_unfinished_run_reads_the_points_written(run: dict, tmp_path: Path) -> None:
    folder = tmp_path / "partial"
    (folder / "dynamics").mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({"model": "m"}))
    for p in (0, 1):
        run["dyn"][run["dyn"]["point"] == p].to_parquet(folder / "dynamics" / f"point-{p:04d}.parquet")
    r = Run(folder)
    assert sorted(r.dynamics()["point"].unique()) == [0, 1]
    assert set(r.final()["point"]) == {1}
    assert r.diagnosis() is None and r.schedule() is None and r.convergence() is None
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="no dynamics yet"):
        Run(empty).dynamics()
    with pytest.raises(FileNotFoundError, match="config.json: names no data"):
        Run(empty).records()
    assert Run(empty).checkpoints() == [] and Run(empty).truth().empty


def test_checkpoints_one_per_step_points_preferred_base_first(run: dict) -> None:
    cks = Run(run["folder"]).checkpoints()
    assert all(isinstance(c, Checkpoint) for c in cks)
    assert [c.step for c in cks] == [0, 4, 8, 16]
    assert [c.name for c in cks] == ["base", "point-0001-step-000004", "point-0002-step-000008", "stage-1-end"]
    assert cks[0].path == "tiny-base" and cks[0].label == "step 0 (base)" and cks[0].point == 0
    assert cks[2].label == "step 8" and cks[2].point == 2 and cks[2].stage == "0" and cks[2].epoch == 2.0
    assert cks[3].lora and not cks[1].lora and cks[3].base_model == "tiny-base"
    assert [c.step for c in Run(run["folder"]).checkpoints(include_base=False)] == [4, 8, 16]


def test_checkpoint_without_metadata_counts_when_it_holds_a_model(run: dict) -> None:
    old = run["folder"] / "checkpoints" / "point-0003-step-000012"
    old.mkdir()
    (old / "config.json").write_text("{}")
    assert 12 in [c.step for c in Run(run["folder"]).checkpoints()]


def test_truth_of_the_world(run: dict, tmp_path: Path) -> None:
    truth = Run(run["folder"]).truth()
    assert truth.to_dict() == CAUSES and truth.name == "planted_cause"
    pd.testing.assert_series_equal(world_truth(run["world"]), truth)
    assert world_truth(None).empty and world_truth(tmp_path).empty
    # a workbench run folder: no world in its config, RUN/world beside it
    bench = run["world"].parent
    (bench / "config.json").write_text(json.dumps({"kind": "workbench", "preset": "smoke"}))
    assert Run(bench).truth().to_dict() == CAUSES
    assert [x.id for x in Run(bench).records()] == IDS


@pytest.mark.parametrize("text, message", [
    ('{"id": "a", "planted_cause": "none"}\nnot json\n', r"truth.jsonl, line 2: not JSON"),
    ('{"id": "a"}\n', r"truth.jsonl, line 1: no 'planted_cause' field"),
    ('{"planted_cause": "none"}\n', r"truth.jsonl, line 1: no 'id' field"),
    ('[1, 2]\n', r"truth.jsonl, line 1: expected an object"),
    ('{"id": "a", "planted_cause": "none"}\n\n{"id": "a", "planted_cause": "x"}\n',
     r"truth.jsonl, line 3: id 'a' already given on line 1"),
])
def test_bad_truth_file_names_file_and_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "truth.jsonl"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        read_truth_file(path)


def test_not_a_run_names_the_folder(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent: not a run folder \(no such folder\)"):
        Run(tmp_path / "absent")
    with pytest.raises(FileNotFoundError, match=rf"{tmp_path.name}: not a run folder \(no config.json\)"):
        Run(tmp_path)
    with pytest.raises(FileNotFoundError, match="no truth file"):
        read_truth_file(tmp_path / "truth.jsonl")
    (tmp_path / "config.json").write_text("[1]")
    with pytest.raises(ValueError, match="config.json: expected a JSON object"):
        _ = Run(tmp_path).config
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(ValueError, match="config.json: not readable as JSON"):
        _ = Run(tmp_path).config


def test_records_errors_name_the_file(run: dict) -> None:
    r = Run(run["folder"])
    (run["world"] / "sft.jsonl").write_text('{"id": "a", "prompt": "p", "response": "r"}\n{"id": "b"}\n')
    with pytest.raises(RecordError, match="sft.jsonl, line 2"):
        r.records()
    (run["world"] / "sft.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="SFT records are gone"):
        r.records()


def test_reader_imports_neither_torch_nor_transformers(run: dict) -> None:
    code = (
        "import sys\n"
        "from ilpnb.runs import Run\n"
        f"r = Run({str(run['folder'])!r})\n"
        "r.config; r.records(); r.records_table(); r.base(); r.final(); r.diagnosis(); r.checkpoints()\n"
        "r.truth(); r.schedule(); r.convergence(); r.samples()\n"
        "import ilpnb.widgets.sources\n"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
