"""A step's stored output is reused only when it was made with the same settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ilpnb.pipeline import workbench
from ilpnb.pipeline.steps import STEPS_FILE, StepSettingsError, record, reuse, settings_hash


def test_hash_ignores_key_order_and_sees_values() -> None:
    assert settings_hash({"a": 1, "b": {"c": 2}}) == settings_hash({"b": {"c": 2}, "a": 1})
    assert settings_hash({"a": 1}) != settings_hash({"a": 2})


def test_reuse_cycle(tmp_path: Path) -> None:
    settings = {"lr": 1e-3, "model": {"layers": 3}}
    assert reuse(tmp_path, "sft", settings, made=False) is False  # not made yet
    record(tmp_path, "sft", settings)
    assert reuse(tmp_path, "sft", dict(settings), made=True) is True
    with pytest.raises(StepSettingsError) as err:
        reuse(tmp_path, "sft", {"lr": 3e-4, "model": {"layers": 3}}, made=True)
    text = str(err.value)
    assert "'sft'" in text and "lr: 0.001 -> 0.0003" in text and "new RUN folder" in text
    assert "layers" not in text  # only what differs is named


def test_unstamped_output_is_adopted_then_guarded(tmp_path: Path) -> None:
    assert reuse(tmp_path, "world", {"seed": 0}, made=True) is True
    assert json.loads((tmp_path / STEPS_FILE).read_text())["world"]["settings"] == {"seed": 0}
    with pytest.raises(StepSettingsError, match="seed: 0 -> 1"):
        reuse(tmp_path, "world", {"seed": 1}, made=True)


def test_bad_steps_file_names_the_file(tmp_path: Path) -> None:
    (tmp_path / STEPS_FILE).write_text("{not json")
    with pytest.raises(ValueError, match=STEPS_FILE):
        reuse(tmp_path, "world", {}, made=True)


def test_changing_the_preset_on_a_run_is_an_error_not_old_results(tmp_path: Path) -> None:
    run = tmp_path / "run"
    world = workbench.ensure_world(run, "smoke")
    assert workbench.ensure_world(run, "smoke") == world  # same settings: reused
    with pytest.raises(StepSettingsError, match="'world'"):
        workbench.ensure_world(run, "default")
    with pytest.raises(StepSettingsError, match="seed: 0 -> 5"):
        workbench.ensure_world(run, "smoke", seed=5)
    p = workbench.get_preset("smoke")
    workbench.ensure_world(tmp_path / "other", p, seed=5)
    assert p.world.seed == 0  # the override did not change the preset object
