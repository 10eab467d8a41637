"""Headless: the inspectors' notebook runs through papermill without waiting for input, and the
executed copy (and its HTML rendering) shows the default state of both inspectors."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from lab_helpers import fixture_notebook, venv_kernelspec

pytestmark = [pytest.mark.notebooks, pytest.mark.timeout(400)]

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def test_fixture_notebook_is_clean() -> None:
    from lab_helpers import FIXTURE_NOTEBOOK

    nb = nbformat.read(str(FIXTURE_NOTEBOOK), as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None
    params = [c for c in nb.cells if "parameters" in (c.metadata.get("tags") or [])]
    assert len(params) == 1 and "RUN =" in params[0].source and "PRESET =" in params[0].source


def test_papermill_run_shows_both_inspectors_statically(diagnosed_run: Path, smoke_run, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import papermill as pm
    from nbconvert import HTMLExporter

    data = tmp_path / "jupyter-data"
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(data))
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))
    kernel = venv_kernelspec(data, {"ILPNB_CACHE": str(smoke_run.cache), "OMP_NUM_THREADS": "1"})
    source = fixture_notebook(tmp_path / "inspectors.ipynb", diagnosed_run, kernel)
    out = tmp_path / "inspectors.out.ipynb"
    pm.execute_notebook(str(source), str(out), kernel_name=kernel, progress_bar=False, cwd=str(tmp_path),
                        execution_timeout=300)
    nb = nbformat.read(str(out), as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    views = [o for o in outputs if WIDGET_VIEW in o.get("data", {})]
    static = [o["data"]["text/html"] for o in outputs if "ilpnb-fallback" in o.get("data", {}).get("text/html", "")]
    assert len(views) == 2 and len(static) == 2  # only the two inspectors: no progress-bar widgets
    from ilpnb.widgets import SampleState

    first = SampleState.from_run(diagnosed_run).current
    assert f'data-sample-id="{first}"' in static[0] and "learning curve" in static[0]
    assert 'data-prompt-id="' in static[1] and "top 10 interactions" in static[1]
    body, _ = HTMLExporter(template_name="lab").from_filename(str(out))
    assert f'data-sample-id="{first}"' in body and "ilpnb-interactions" in body
