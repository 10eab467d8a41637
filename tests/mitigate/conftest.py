"""The diagnosed smoke run the mitigation tests share (one per session: an SFT run is costly).

The run's diagnosis is replaced by the planted truth (the smoke model learns too little for
its own diagnosis to hold every cause), so every cause has targets. Each test writes its own
arm folders (``RUN/mitigation/<cause>-<method>-x<k>``).
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest
import torch

from ilpnb.config import get_preset
from ilpnb.data.world import generate_world


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ilpnb.diagnose.attribution import write_diagnosis
    from ilpnb.train.sft import run_sft

    root = tmp_path_factory.mktemp("mitigate")
    old_cache, threads = os.environ.get("ILPNB_CACHE"), torch.get_num_threads()
    os.environ["ILPNB_CACHE"] = str(root / "cache")
    torch.set_num_threads(1)
    world = generate_world(get_preset("smoke").world, root / "world")
    folder = run_sft(root / "run", world=world, preset="smoke", progress=False)
    diagnosis = write_diagnosis(folder)
    truth = pd.read_json(world / "truth.jsonl", lines=True, dtype={"id": str}).set_index("id")["planted_cause"]
    diagnosis["cause"] = [("none" if ok else truth[i]) for i, ok in zip(diagnosis["id"], diagnosis["learned"])]
    diagnosis.to_parquet(folder / "diagnosis.parquet", index=False)
    yield folder
    torch.set_num_threads(threads)
    if old_cache is None:
        os.environ.pop("ILPNB_CACHE", None)
    else:
        os.environ["ILPNB_CACHE"] = old_cache
