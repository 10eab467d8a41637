"""The notebook runner on tiny throwaway notebooks: parameters, executed copies, index, resume."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat import v4

from ilpnb.pipeline.notebook_runner import (
    NotebookError,
    ParametersCellError,
    build_index,
    check_parameters_cell,
    ensure_kernel,
    find_notebooks,
    run_notebooks,
)
from ilpnb.pipeline.run_index import notebook_status
from ilpnb.runs import ConfigMismatchError, RunExistsError

# 1x1 transparent PNG, for a figure file a notebook "saved"
_PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII="
)


def _params_cell() -> nbformat.NotebookNode:
    cell = v4.new_code_cell('PRESET = "default"\nRUN = "runs/example"')
    cell.metadata["tags"] = ["parameters"]
    return cell


def _write(folder: Path, name: str, *sources: str, params: bool = True) -> Path:
    nb = v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.cells = [v4.new_markdown_cell(f"# {name}")]
    if params:
        nb.cells.append(_params_cell())
    nb.cells += [v4.new_code_cell(src) for src in sources]
    path = folder / f"{name}.ipynb"
    nbformat.write(nb, str(path))
    return path


ALPHA = """\
import json, os, sys
from pathlib import Path
import matplotlib.pyplot as plt
Path(RUN, "alpha.json").write_text(json.dumps(
    {"preset": PRESET, "run": RUN, "prefix": sys.prefix, "cwd": os.getcwd()}))
fig, ax = plt.subplots(figsize=(3, 2))
ax.plot([1, 2, 3], [1, 4, 9])
Path(RUN, "figures").mkdir(exist_ok=True)
fig.savefig(Path(RUN, "figures", "alpha_saved.png"))
plt.show()
"""

COUNT = """\
from pathlib import Path
with open(Path(RUN, "count_{name}.txt"), "a") as fh:
    fh.write("x")
"""

GATED = """\
from pathlib import Path
if not Path(RUN, "allow").exists():
    raise ValueError("boom: no allow file")
"""


@pytest.fixture()
def repo(tmp_path: Path) -> Path:
    """A throwaway repository with notebooks/00_alpha and notebooks/01_count."""
    root = tmp_path / "repo"
    (root / "notebooks").mkdir(parents=True)
    _write(root / "notebooks", "00_alpha", ALPHA, COUNT.format(name="00"))
    _write(root / "notebooks", "01_count", COUNT.format(name="01"))
    (root / "notebooks" / "scratch.ipynb").write_text("not a numbered notebook")
    return root


def _count(run: Path, name: str) -> int:
    path = run / f"count_{name}.txt"
    return len(path.read_text()) if path.exists() else 0


def test_find_notebooks_orders_and_filters(repo: Path) -> None:
    nbs = repo / "notebooks"
    assert [p.stem for p in find_notebooks(nbs)] == ["00_alpha", "01_count"]
    assert [p.stem for p in find_notebooks(nbs, only=["01"])] == ["01_count"]
    assert [p.stem for p in find_notebooks(nbs, only="00,01")] == ["00_alpha", "01_count"]
    with pytest.raises(ValueError, match="07"):
        find_notebooks(nbs, only=["07"])
    with pytest.raises(FileNotFoundError):
        find_notebooks(repo / "nowhere")


def test_kernelspec_check() -> None:
    from ilpnb.pipeline.notebook_runner import _runs_this_interpreter

    assert _runs_this_interpreter(["python", "-m", "ipykernel_launcher"])
    assert _runs_this_interpreter([sys.executable, "-m", "ipykernel_launcher"])
    assert not _runs_this_interpreter(["/nowhere/bin/python3.9", "-m", "ipykernel_launcher"])
    assert not _runs_this_interpreter([])
    with pytest.raises(ValueError, match="no Jupyter kernel named"):
        ensure_kernel("no-such-kernel-ilpnb")


def test_kernel_runs_this_interpreter() -> None:
    from jupyter_client.kernelspec import KernelSpecManager

    name = ensure_kernel()
    argv = KernelSpecManager().get_kernel_spec(name).argv
    assert argv[0] in {"python", "python3", f"python3.{sys.version_info[1]}"} or Path(
        argv[0]
    ).parent == Path(sys.executable).parent


def test_run_executes_in_order_with_parameters_and_writes_index(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")  # the runner must still get inline figures
    out = tmp_path / "runs" / "r1"
    run = run_notebooks("smoke", out=out, notebooks_dir=repo / "notebooks", progress=False)
    assert run == out.resolve()

    seen = json.loads((run / "alpha.json").read_text())
    assert seen["preset"] == "smoke"
    assert seen["run"] == str(run)
    assert Path(seen["prefix"]) == Path(sys.prefix)  # the kernel is this interpreter
    assert Path(seen["cwd"]).resolve() == repo.resolve()  # executed from the repo root

    config = json.loads((run / "config.json").read_text())
    assert config == {"kind": "notebooks", "preset": "smoke", "notebooks": ["00_alpha", "01_count"]}
    for name in ("00_alpha", "01_count"):
        assert (run / "notebooks" / f"{name}.ipynb").exists()
        assert (run / "notebooks" / f"{name}.html").exists()
        assert notebook_status(run / "notebooks" / f"{name}.ipynb")[0] == "ok"
    assert _count(run, "00") == 1 and _count(run, "01") == 1

    page = (run / "index.html").read_text()
    assert "00_alpha" in page and "01_count" in page
    assert "smoke" in page
    assert 'href="notebooks/00_alpha.html"' in page
    assert page.count("data:image/png;base64,") >= 2  # the inline figure and the saved file
    assert "figures/alpha_saved.png" in page
    assert "git commit" in page

    with pytest.raises(RunExistsError):
        run_notebooks("smoke", out=out, notebooks_dir=repo / "notebooks", progress=False)

    # resume skips notebooks that finished cleanly
    run_notebooks("smoke", out=out, notebooks_dir=repo / "notebooks", resume=True, progress=False)
    assert _count(run, "00") == 1 and _count(run, "01") == 1

    with pytest.raises(ConfigMismatchError, match="preset"):
        run_notebooks("full", out=out, notebooks_dir=repo / "notebooks", resume=True,
                      progress=False)


def test_missing_parameters_cell_is_named_before_anything_runs(
    repo: Path, tmp_path: Path
) -> None:
    bad = _write(repo / "notebooks", "02_noparams", "x = 1", params=False)
    with pytest.raises(ParametersCellError, match="02_noparams"):
        check_parameters_cell(bad)
    out = tmp_path / "runs" / "r2"
    with pytest.raises(ParametersCellError, match="02_noparams.ipynb"):
        run_notebooks("smoke", out=out, notebooks_dir=repo / "notebooks", progress=False)
    assert not out.exists()  # checked before the run folder is made


def test_two_parameters_cells_are_rejected(repo: Path) -> None:
    path = _write(repo / "notebooks", "03_twice", "x = 1")
    nb = nbformat.read(str(path), as_version=4)
    nb.cells.append(_params_cell())
    nbformat.write(nb, str(path))
    with pytest.raises(ParametersCellError, match="03_twice.*found 2"):
        check_parameters_cell(path)


def test_failure_names_notebook_writes_index_and_resume_reruns_it(
    repo: Path, tmp_path: Path
) -> None:
    _write(repo / "notebooks", "01_count", GATED, COUNT.format(name="01"))
    _write(repo / "notebooks", "02_after", COUNT.format(name="02"))
    out = tmp_path / "runs" / "r3"
    with pytest.raises(NotebookError, match="01_count") as info:
        run_notebooks("smoke", out=out, notebooks_dir=repo / "notebooks", progress=False)
    executed = out.resolve() / "notebooks" / "01_count.ipynb"
    assert info.value.notebook == "01_count"
    assert info.value.executed == executed
    assert str(executed) in str(info.value)
    assert "boom" in str(info.value)
    assert notebook_status(executed)[0] == "failed"
    assert not (out / "notebooks" / "02_after.ipynb").exists()  # the run stopped

    page = (out / "index.html").read_text()
    assert "01_count" in page and "failed" in page and "boom" in page
    assert "02_after" in page and "not run" in page

    (out / "allow").write_text("")
    run_notebooks("smoke", out=out, notebooks_dir=repo / "notebooks", resume=True, progress=False)
    assert _count(out, "00") == 1  # finished earlier: skipped
    assert _count(out, "01") == 1 and _count(out, "02") == 1
    assert "failed" not in (out / "index.html").read_text().split("<h2>Notebooks")[1]


def test_only_runs_the_chosen_notebooks(repo: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs" / "r4"
    run = run_notebooks("smoke", out=out, only=["01"], notebooks_dir=repo / "notebooks",
                        progress=False)
    assert _count(run, "01") == 1 and not (run / "alpha.json").exists()
    assert json.loads((run / "config.json").read_text())["notebooks"] == ["01_count"]


def test_default_out_goes_to_runs_dir(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ILPNB_RUNS", str(tmp_path / "myruns"))
    first = run_notebooks("smoke", only=["01"], notebooks_dir=repo / "notebooks", progress=False)
    second = run_notebooks("smoke", only=["01"], notebooks_dir=repo / "notebooks", progress=False)
    assert first.parent == second.parent == (tmp_path / "myruns").resolve()
    assert first != second and first.name.startswith("smoke-")


def test_build_index_alone_reports_states(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "notebooks").mkdir(parents=True)
    (run / "figures").mkdir()
    (run / "figures" / "loose.png").write_bytes(_PNG)
    (run / "config.json").write_text(json.dumps({"preset": "smoke", "notebooks": ["00_a", "01_b"]}))
    nb = v4.new_notebook()
    nb.metadata["papermill"] = {"start_time": "t", "end_time": None, "exception": None}
    nb.cells = [v4.new_code_cell("1")]
    nbformat.write(nb, str(run / "notebooks" / "00_a.ipynb"))
    assert notebook_status(run / "notebooks" / "00_a.ipynb")[0] == "incomplete"
    index = build_index(run)
    page = index.read_text()
    assert index == run.resolve() / "index.html"
    assert "incomplete" in page and "not run" in page and "01_b" in page
    assert "figures/loose.png" in page and "unknown" in page  # no env.json: said so


def test_keep_going_runs_every_notebook_and_names_each_failure(repo: Path, tmp_path: Path) -> None:
    from ilpnb.pipeline.notebook_runner import NotebooksFailedError

    _write(repo / "notebooks", "01_count", GATED, COUNT.format(name="01"))
    for path in (_write(repo / "notebooks", "02_after", COUNT.format(name="02")),
                 _write(repo / "notebooks", "03_also", 'raise KeyError("second boom")')):
        nb = nbformat.read(str(path), as_version=4)
        nb.metadata["ilpnb"] = {"needs": ["00"]}  # not 01: a notebook needing a failed one is not run
        nbformat.write(nb, str(path))
    out = tmp_path / "runs" / "r5"
    with pytest.raises(NotebooksFailedError) as info:
        run_notebooks("smoke", out=out, notebooks_dir=repo / "notebooks", progress=False, keep_going=True)
    run = out.resolve()
    assert info.value.run == run
    assert [f.notebook for f in info.value.failures] == ["01_count", "03_also"]
    assert info.value.notebook == "01_count"  # a NotebookError like the stopping run's
    assert "boom" in str(info.value) and "second boom" in str(info.value)
    assert _count(run, "02") == 1  # ran after the failure
    states = {n: notebook_status(run / "notebooks" / f"{n}.ipynb")[0]
              for n in ("00_alpha", "01_count", "02_after", "03_also")}
    assert states == {"00_alpha": "ok", "01_count": "failed", "02_after": "ok", "03_also": "failed"}
    page = (run / "index.html").read_text()
    assert "second boom" in page and "not run" not in page
