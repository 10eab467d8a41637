"""Notebook tier: every numbered notebook runs headless at the smoke preset through `ilpnb run`.

The notebooks share one run folder, as in `make run`, so they run once, two at a time where
they do not build on each other (as `make run` does), in a module-scoped fixture; each test then checks what one notebook left in the run folder. The
fixture keeps going past a failed notebook, so each failure is reported by its own test.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import nbformat
import pytest

from ilpnb.pipeline.notebook_runner import NotebooksFailedError, default_notebooks_dir, find_notebooks, run_notebooks
from ilpnb.pipeline.run_index import notebook_status

pytestmark = pytest.mark.notebooks

NOTEBOOKS = [p.name for p in find_notebooks(default_notebooks_dir())]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("nbrun")
    os.environ.setdefault("ILPNB_CACHE", str(root / "cache"))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # the real track's model ships in a package: no hub
    try:
        return run_notebooks(preset="smoke", out=root / "run", progress=False, keep_going=True, jobs=2)
    except NotebooksFailedError as err:  # each notebook's own test reports its failure
        return err.run


# Library noise a researcher should never meet in an executed notebook (ilpnb.quiet hides it):
# transformers' per-load/per-save bars, deprecation warnings, the Trainer's checkpoint-sorting
# note, and the kernel's own log.
NOISE = re.compile(r"Writing model shards|Loading weights|FutureWarning|DeprecationWarning"
                   r"|mtime may not be reliable|\[IPKernelApp\] WARNING")


def _output_lines(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(cell index, line)`` for every line a code cell printed or displayed as text."""
    lines: list[tuple[int, str]] = []
    for k, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream":
                text = out.get("text", "")
            elif out.get("output_type") == "error":
                continue  # a traceback is the error test's business
            else:
                text = out.get("data", {}).get("text/plain", "")  # a progress-bar widget shows its text here
            lines += [(k, line) for line in "".join(text).splitlines()]
    return lines


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_executes_without_error(smoke_run: Path, name: str) -> None:
    executed = smoke_run / "notebooks" / name
    status, _, error = notebook_status(executed)
    assert executed.exists(), f"{name} was not executed ({status}: {error})"
    nb = nbformat.read(executed, as_version=4)
    errors = [(k, o) for k, c in enumerate(nb.cells) if c.cell_type == "code"
              for o in c.get("outputs", []) if o.get("output_type") == "error"]
    if errors:
        k, first = errors[0]
        source = nb.cells[k].source.strip().splitlines()
        pytest.fail(f"{name}: cell {k} ({source[0] if source else 'empty'!r}): "
                    f"{first.get('ename')}: {first.get('evalue')}\nsee {executed}")
    assert status == "ok", f"{name}: {status}: {error}"
    params = [c for c in nb.cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_output_has_no_library_noise(smoke_run: Path, name: str) -> None:
    executed = smoke_run / "notebooks" / name
    if not executed.exists():
        pytest.fail(f"{name} was not executed ({notebook_status(executed)[0]})")
    lines = _output_lines(nbformat.read(executed, as_version=4))
    noisy = [(k, line) for k, line in lines if NOISE.search(line)]
    if noisy:
        k, line = noisy[0]
        pytest.fail(f"{name}: {len(noisy)} noise line(s); the first, in cell {k}: {line.strip()[:200]}")


def test_index_links_every_notebook(smoke_run: Path) -> None:
    html = (smoke_run / "index.html").read_text()
    for name in NOTEBOOKS:
        assert Path(name).stem in html
    assert "<img" in html


def test_quickstart_leaves_world_model_and_probe_report(smoke_run: Path) -> None:
    assert sorted(p.name for p in (smoke_run / "world").iterdir()) == sorted(
        ["sft.jsonl", "truth.jsonl", "pretrain.txt", "probes.jsonl", "world.json"])
    info = json.loads((smoke_run / "base_model.json").read_text())
    assert Path(info["path"], "config.json").exists()
    assert (smoke_run / "probes.parquet").exists()
    assert (smoke_run / "figures" / "00_probe_report.png").exists()


@pytest.mark.skipif("01_ilp_prevalence.ipynb" not in NOTEBOOKS, reason="notebook 01 not present")
def test_prevalence_leaves_dynamics_for_two_seeds(smoke_run: Path) -> None:
    import pandas as pd

    for name in ("sft", "sft_seed1"):
        dyn = pd.read_parquet(smoke_run / name / "dynamics.parquet")
        assert dyn["point"].min() == 0 and dyn["point"].nunique() >= 3


@pytest.mark.skipif("07_diagnosis.ipynb" not in NOTEBOOKS, reason="notebook 07 not present")
def test_diagnosis_notebook_leaves_contract_table(smoke_run: Path) -> None:
    import pandas as pd

    diag = pd.read_parquet(smoke_run / "sft" / "diagnosis.parquet")
    assert {"id", "learned", "cause", "evidence"} <= set(diag.columns)
    assert (smoke_run / "figures" / "07_confusion.png").exists()


@pytest.mark.skipif("10_sft_denoising_interactions.ipynb" not in NOTEBOOKS, reason="notebook 10 not present")
def test_interaction_notebooks_leave_tables_and_figures(smoke_run: Path) -> None:
    import json

    for run in (smoke_run / "sft_interactions", smoke_run / "real" / "sft-interactions"):  # world, real LLM
        for name in ("interactions.parquet", "interaction_summary.parquet", "interaction_orders.parquet",
                     "interaction_stopping.json", "interaction_validation.parquet"):
            assert (run / name).exists(), (run, name)
        split = json.loads((run / "interaction_stopping.json").read_text())["split"]
        assert split["validation"] and split["test"] and not set(split["validation"]) & set(split["test"])
    real = json.loads((smoke_run / "real" / "sft-interactions" / "config.json").read_text())
    assert real["sft"]["lora"] and real["sft"]["lr"] == 1e-4 and real["sft"]["lr_scheduler"] == "cosine"
    for name in ("10_fate_of_interactions.png", "10_real_fate.png", "11_real_stopping.png"):
        assert (smoke_run / "figures" / name).exists(), name


@pytest.mark.skipif("08_mitigation.ipynb" not in NOTEBOOKS, reason="notebook 08 not present")
def test_mitigation_notebook_leaves_results(smoke_run: Path) -> None:
    import pandas as pd

    parts = list((smoke_run / "sft" / "mitigation").glob("*/results.parquet"))
    assert parts
    table = pd.concat([pd.read_parquet(p) for p in parts])
    assert {"treated", "generic", "unmodified"} <= set(table["arm"]) <= {"treated", "generic", "placebo", "unmodified", "longer"}
    assert table["recovery"].dropna().between(0, 1).all()
    assert (smoke_run / "figures" / "08_recovery.png").exists()
    assert (smoke_run / "sft" / "mitigation" / "crossover.parquet").exists()


def test_planted_real_world_at_smoke(smoke_run: Path) -> None:
    """Notebook 09 builds the planted real world on the packaged SmolLM2: counts as asked, every
    cause but forgetting in both stages, the truth kept out of sft.jsonl, fidelity reported."""
    import json
    from collections import Counter

    from ilpnb.data.realworld import realworld_counts
    from ilpnb.data.records import read_records
    from ilpnb.runs import read_truth_file

    world = smoke_run / "real" / "world"
    meta = json.loads((world / "world.json").read_text())
    truth = read_truth_file(world / "truth.jsonl")
    records = read_records(world / "sft.jsonl")
    assert meta["model"] == "smollm2-135m-instruct" and meta["preset"] == "smoke"
    assert dict(Counter(truth)) == meta["counts"] == realworld_counts(8, 4)
    assert sorted(r.id for r in records) == sorted(truth.index)
    stages: dict[str, set[int]] = {}
    for r in records:
        stages.setdefault(truth[r.id], set()).add(r.stage)
    assert stages.pop("left_forgetting") == {0}
    assert all(s == {0, 1} for s in stages.values()), stages
    text = (world / "sft.jsonl").read_text()
    assert "planted" not in text and not any(c in text for c in truth.unique() if c != "none")
    assert "planted_cause" not in (world / "world.json").read_text()
    assert set(meta["fidelity"]) == set(truth.unique())
    assert all(0.0 <= f["share"] <= 1.0 and f["samples"] > 0 for f in meta["fidelity"].values())
