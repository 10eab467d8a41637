"""Write a clean notebook (no outputs) from a list of ("md"|"code"|"params", source) cells.

Used by the project's maintainers to (re)generate the numbered notebooks' skeletons:
    python tools/mknb.py SPEC.py  # SPEC defines NAME and CELLS
"""

from __future__ import annotations

import runpy
import sys
from pathlib import Path

import nbformat


def write_notebook(path: str | Path, cells: list[tuple[str, str]]) -> Path:
    """Write ``cells`` as a notebook at ``path`` with the python3 kernel and no outputs."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    for kind, src in cells:
        src = src.strip("\n")
        if kind == "md":
            nb.cells.append(nbformat.v4.new_markdown_cell(src))
        else:
            cell = nbformat.v4.new_code_cell(src)
            if kind == "params":
                cell.metadata["tags"] = ["parameters"]
            nb.cells.append(cell)
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"c{i:02d}"
    path = Path(path)
    nbformat.write(nb, path)
    return path


if __name__ == "__main__":
    spec = runpy.run_path(sys.argv[1])
    print(write_notebook(spec["NAME"], spec["CELLS"]))
