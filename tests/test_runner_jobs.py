"""The notebook runner with several notebooks at once: declared needs, concurrency, failures."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from ilpnb.pipeline.notebook_order import NeedsError, needs_of, notebook_needs
from ilpnb.pipeline.notebook_runner import NotebooksFailedError, run_notebooks
from ilpnb.pipeline.run_index import notebook_status
from ilpnb.pipeline.steps import record


def _params_cell() -> nbformat.NotebookNode:
    cell = v4.new_code_cell('PRESET = "default"\nRUN = "runs/example"')
    cell.metadata["tags"] = ["parameters"]
    return cell


def _write(folder: Path, name: str, *sources: str, needs: list[str] | None = None, meta: object = None) -> Path:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if needs is not None:
        nb.metadata["ilpnb"] = {"needs": needs}
    if meta is not None:
        nb.metadata["ilpnb"] = meta
    nb.cells = [_params_cell(), *(v4.new_code_cell(src) for src in sources)]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


# waits for a file the independent notebook writes: only finishes when both run at once
WAITS = """\
import json, os, time
from pathlib import Path
for _ in range(600):
    if Path(RUN, "go").exists():
        break
    time.sleep(0.1)
else:
    raise RuntimeError("the independent notebook never ran beside this one")
Path(RUN, "first.json").write_text(json.dumps({"threads": os.environ.get("OMP_NUM_THREADS")}))
"""
GO = 'from pathlib import Path\nPath(RUN, "go").write_text("")\n'
AFTER = 'from pathlib import Path\nassert Path(RUN, "first.json").exists()\nPath(RUN, "after").write_text("")\n'
FAILS = 'raise ValueError("boom")\n'


def test_needs_default_to_every_earlier_notebook_and_resolve_prefixes(tmp_path: Path) -> None:
    a = _write(tmp_path, "00_a", "x = 1")
    b = _write(tmp_path, "01_b", "x = 1")
    c = _write(tmp_path, "02_c", "x = 1", needs=["00"])
    d = _write(tmp_path, "03_d", "x = 1", needs=[])
    assert needs_of([a, b, c, d]) == {"00_a": [], "01_b": ["00_a"], "02_c": ["00_a"], "03_d": []}
    # a need left out of the run counts as met
    assert needs_of([b, c], [a, b, c, d]) == {"01_b": [], "02_c": []}


@pytest.mark.parametrize(("meta", "match"), [({"needs": "00"}, "list of notebook numbers"),
                                             ({"needs": ["05"]}, "names '05', which is no notebook before it")])
def test_malformed_needs_name_the_notebook(tmp_path: Path, meta: object, match: str) -> None:
    _write(tmp_path, "00_a", "x = 1")
    bad = _write(tmp_path, "01_b", "x = 1", meta=meta)
    with pytest.raises(NeedsError, match=f"01_b.ipynb: .*{match}"):
        notebook_needs(bad, ["00_a"])


def test_independent_notebooks_run_at_once_with_a_share_of_the_cores(tmp_path: Path) -> None:
    nbs = tmp_path / "repo" / "notebooks"
    nbs.mkdir(parents=True)
    _write(nbs, "00_waits", WAITS)
    _write(nbs, "01_after", AFTER)  # needs 00 (the default: every earlier notebook)
    _write(nbs, "02_go", GO, needs=[])
    run = run_notebooks("smoke", out=tmp_path / "run", notebooks_dir=nbs, progress=False, jobs=2)
    for name in ("00_waits", "01_after", "02_go"):
        assert notebook_status(run / "notebooks" / f"{name}.ipynb")[0] == "ok", name
    assert (run / "after").exists()
    threads = json.loads((run / "first.json").read_text())["threads"]
    assert threads == str(max(1, (os.cpu_count() or 1) // 2))
    assert "02_go" in (run / "index.html").read_text()


def test_a_failed_need_stops_its_dependents_only(tmp_path: Path) -> None:
    nbs = tmp_path / "repo" / "notebooks"
    nbs.mkdir(parents=True)
    _write(nbs, "00_fails", FAILS)
    _write(nbs, "01_after", AFTER)
    _write(nbs, "02_go", GO, needs=[])
    with pytest.raises(NotebooksFailedError) as info:
        run_notebooks("smoke", out=tmp_path / "run", notebooks_dir=nbs, progress=False, jobs=2, keep_going=True)
    run = info.value.run
    assert [f.notebook for f in info.value.failures] == ["00_fails", "01_after"]
    assert "boom" in str(info.value.failures[0])
    assert "needs 00_fails, which failed" in str(info.value.failures[1])
    assert notebook_status(run / "notebooks" / "02_go.ipynb")[0] == "ok"
    assert notebook_status(run / "notebooks" / "01_after.ipynb")[0] == "not run"
    # in order, one at a time, the same verdicts
    with pytest.raises(NotebooksFailedError) as info:
        run_notebooks("smoke", out=tmp_path / "run1", notebooks_dir=nbs, progress=False, keep_going=True)
    assert [f.notebook for f in info.value.failures] == ["00_fails", "01_after"]
    assert notebook_status(info.value.run / "notebooks" / "02_go.ipynb")[0] == "ok"


def test_without_keep_going_nothing_starts_after_a_failure(tmp_path: Path) -> None:
    nbs = tmp_path / "repo" / "notebooks"
    nbs.mkdir(parents=True)
    _write(nbs, "00_fails", FAILS)
    _write(nbs, "01_after", AFTER)
    with pytest.raises(Exception, match="00_fails.*boom"):
        run_notebooks("smoke", out=tmp_path / "run", notebooks_dir=nbs, progress=False, jobs=2)
    assert not (tmp_path / "run" / "notebooks" / "01_after.ipynb").exists()


def _stamp(run: str, who: int) -> None:
    for k in range(25):
        record(run, f"{who}-{k}", {"k": k})


def test_steps_stamped_from_two_processes_at_once_are_all_kept(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_stamp, args=(str(tmp_path), who)) for who in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    steps = json.loads((tmp_path / "steps.json").read_text())
    assert sorted(steps) == sorted(f"{w}-{k}" for w in range(2) for k in range(25))
