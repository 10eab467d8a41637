"""Committed notebooks are clean: no outputs, no execution counts, one `parameters` cell."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parent.parent / "notebooks").glob("*.ipynb"))
REQUIRED = {"PRESET", "RUN"}


def _assigned(source: str) -> set[str]:
    """Names a cell assigns at top level."""
    names: set[str] = set()
    for node in ast.parse(source).body:
        targets = node.targets if isinstance(node, ast.Assign) else (
            [node.target] if isinstance(node, ast.AnnAssign) else []
        )
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Name):
                    names.add(sub.id)
    return names


_PARAMS = [pytest.param(p, id=p.name) for p in NOTEBOOKS] or [
    pytest.param(None, id="none", marks=pytest.mark.skip(reason="no notebooks committed yet"))
]


@pytest.mark.parametrize("path", _PARAMS)
def test_notebook_is_clean(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    for k, cell in enumerate(nb.cells):
        if cell.cell_type == "code":
            assert cell.get("outputs") == [], f"{path.name}: cell {k} has outputs; clear them"
            assert cell.get("execution_count") is None, f"{path.name}: cell {k} has a count"
        tags = cell.get("metadata", {}).get("tags") or []
        assert "injected-parameters" not in tags, f"{path.name}: papermill's injected cell"
    assert "papermill" not in nb.metadata, f"{path.name}: an executed copy was committed"


@pytest.mark.parametrize("path", _PARAMS)
def test_notebook_has_one_parameters_cell(path: Path) -> None:
    nb = nbformat.read(str(path), as_version=4)
    cells = [c for c in nb.cells if "parameters" in (c.get("metadata", {}).get("tags") or [])]
    assert len(cells) == 1, f"{path.name}: {len(cells)} cells tagged 'parameters', want 1"
    assert cells[0].cell_type == "code"
    missing = REQUIRED - _assigned(cells[0].source)
    assert not missing, f"{path.name}: parameters cell does not set {sorted(missing)}"
