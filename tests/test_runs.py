"""Run folders: never overwritten, resumable with the same config, env.json recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ilpnb.runs import (
    ConfigMismatchError,
    RunExistsError,
    RunFolder,
    default_runs_dir,
    env_info,
    new_run_name,
)

CONFIG = {"preset": "smoke", "model": {"name": "tiny", "layers": 2}, "seed": 0}


def test_create_writes_config_and_env(tmp_path: Path) -> None:
    run = RunFolder.create(tmp_path / "r", CONFIG)
    assert run.config == CONFIG
    env = run.read_json("env.json")
    assert "git_commit" in env
    assert env["packages"]["ilpnb"]
    assert env["packages"]["torch"]
    assert env["python"] and env["device"]


def test_existing_run_is_never_overwritten(tmp_path: Path) -> None:
    run = RunFolder.create(tmp_path / "r", CONFIG)
    (run.path / "result.txt").write_text("precious")
    with pytest.raises(RunExistsError, match="resume"):
        RunFolder.create(tmp_path / "r", CONFIG)
    with pytest.raises(RunExistsError):
        RunFolder.create(tmp_path / "r", {"other": 1})
    assert (run.path / "result.txt").read_text() == "precious"
    assert run.config == CONFIG


def test_non_empty_folder_without_run_is_not_taken(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "notes.txt").write_text("mine")
    with pytest.raises(RunExistsError):
        RunFolder.create(tmp_path / "r", CONFIG)
    assert not (tmp_path / "r" / "config.json").exists()


def test_empty_folder_is_used(tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    RunFolder.create(tmp_path / "r", CONFIG)
    assert (tmp_path / "r" / "config.json").exists()


def test_resume_with_same_config_keeps_everything(tmp_path: Path) -> None:
    run = RunFolder.create(tmp_path / "r", CONFIG)
    env_before = (run.path / "env.json").read_text()
    (run.path / "stage1.json").write_text("{}")
    again = RunFolder.create(tmp_path / "r", json.loads(json.dumps(CONFIG)), resume=True)
    assert again.path == run.path
    assert again.exists("stage1.json")
    assert (run.path / "env.json").read_text() == env_before


def test_resume_with_different_config_names_the_key(tmp_path: Path) -> None:
    RunFolder.create(tmp_path / "r", CONFIG)
    changed = {**CONFIG, "model": {"name": "tiny", "layers": 4}}
    with pytest.raises(ConfigMismatchError, match=r"model\.layers"):
        RunFolder.create(tmp_path / "r", changed, resume=True)
    with pytest.raises(ConfigMismatchError, match="extra"):
        RunFolder.create(tmp_path / "r", {**CONFIG, "extra": True}, resume=True)
    assert RunFolder.open(tmp_path / "r").config == CONFIG


def test_open_needs_a_run(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="not a run folder"):
        RunFolder.open(tmp_path)
    RunFolder.create(tmp_path / "r", CONFIG)
    assert RunFolder.open(tmp_path / "r").config == CONFIG


def test_write_json_leaves_no_temporary(tmp_path: Path) -> None:
    run = RunFolder.create(tmp_path / "r", CONFIG)
    run.write_json("sub/metrics.json", {"a": 1})
    assert run.read_json("sub/metrics.json") == {"a": 1}
    assert not list(run.path.rglob("*.tmp"))


def test_names_and_default_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert re.fullmatch(r"smoke-\d{8}-\d{6}", new_run_name("smoke"))
    monkeypatch.setenv("ILPNB_RUNS", str(tmp_path))
    assert default_runs_dir() == tmp_path
    monkeypatch.delenv("ILPNB_RUNS")
    assert default_runs_dir() == Path("runs")


def test_env_info_is_json() -> None:
    info = env_info()
    assert json.loads(json.dumps(info, default=str))["packages"].keys() >= {"torch", "ilpnb"}
