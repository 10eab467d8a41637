"""Fixtures of the SFT tests: a smoke world and its smoke base model (built once per session,
in a temporary ``ILPNB_CACHE``), and one reference run made through ``ilpnb sft --world``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sft_helpers import CliRun, Smoke, one_thread, run_cli


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models run fastest single-threaded on a shared machine; restored after the module."""
    with one_thread():
        yield


@pytest.fixture(scope="session")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> Smoke:
    """The smoke world and its pretrained smoke base model (cached in a temporary folder)."""
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.models.pretrain import pretrain_base_model

    root = tmp_path_factory.mktemp("sft-smoke")
    cache = root / "cache"
    preset = get_preset("smoke")
    with pytest.MonkeyPatch.context() as mp, one_thread():
        mp.setenv("ILPNB_CACHE", str(cache))
        world = generate_world(preset.world, root / "world")
        model = pretrain_base_model(world / "pretrain.txt", preset.model, preset.pretrain, progress=False)
    return Smoke(world=Path(world), model=Path(model), cache=cache)


@pytest.fixture(autouse=True)
def _cache(smoke: Smoke, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test of this folder uses the session's temporary model cache."""
    monkeypatch.setenv("ILPNB_CACHE", str(smoke.cache))


@pytest.fixture(scope="session")
def world_run(smoke: Smoke, tmp_path_factory: pytest.TempPathFactory) -> CliRun:
    """``ilpnb sft --world W --out RUN --preset smoke``: the reference run (seed 0, shuffled)."""
    out = tmp_path_factory.mktemp("runs") / "world-seed0"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ILPNB_CACHE", str(smoke.cache))
        code, stdout, stderr = run_cli(["sft", "--world", str(smoke.world), "--out", str(out),
                                        "--preset", "smoke", "--no-progress"])
    return CliRun(out=out, code=code, stdout=stdout, stderr=stderr)
