"""Fixtures of the widget tests: one `smoke` SFT run per session (temporary model cache), and a
copy of it with a synthetic ``diagnosis.parquet`` that follows DESIGN.md's contract.

Set ``ILPNB_WIDGETS_RUN`` to an existing run folder (with its world) to reuse it instead of
training one (the copy with a diagnosis is still made in a temporary folder).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class SmokeRun:
    """A finished smoke run: its folder, its world and the model cache it used."""

    run: Path
    world: Path
    cache: Path


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True, scope="module")
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest single-threaded on a shared machine; restored after the module."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> SmokeRun:
    """A `smoke` world and one SFT run on it (about a minute on 2 cores, once per session)."""
    reuse = os.environ.get("ILPNB_WIDGETS_RUN")
    if reuse:
        run = Path(reuse)
        cfg = json.loads((run / "config.json").read_text())
        return SmokeRun(run, Path(cfg["world"]), Path(os.environ.get("ILPNB_CACHE", run / ".." / "cache")))
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.train.sft import run_sft

    root = tmp_path_factory.mktemp("widgets-smoke")
    cache = root / "cache"
    with pytest.MonkeyPatch.context() as mp, one_thread():
        mp.setenv("ILPNB_CACHE", str(cache))
        world = generate_world(get_preset("smoke").world, root / "world")
        run = run_sft(root / "run", world=world, preset="smoke", progress=False)
    return SmokeRun(Path(run), Path(world), cache)


@pytest.fixture(scope="session")
def diagnosed_run(smoke_run: SmokeRun, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the smoke run with a synthetic ``diagnosis.parquet`` (siblings included)."""
    from widgets_helpers import write_synthetic_diagnosis

    target = tmp_path_factory.mktemp("widgets-diagnosed") / smoke_run.run.name
    shutil.copytree(smoke_run.run, target, ignore=shutil.ignore_patterns("trainer"))
    write_synthetic_diagnosis(target, smoke_run.world)
    return target


@pytest.fixture(autouse=True)
def _cache(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test sees a temporary model cache: the smoke run's when it uses it."""
    if "smoke_run" in request.fixturenames or "diagnosed_run" in request.fixturenames:
        smoke: SmokeRun = request.getfixturevalue("smoke_run")
        monkeypatch.setenv("ILPNB_CACHE", str(smoke.cache))
    else:
        monkeypatch.setenv("ILPNB_CACHE", str(request.getfixturevalue("tmp_path") / "cache"))
