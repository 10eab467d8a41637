"""The package's layers, read from the source (AST): library below, pipeline above, CLI on top.

* the library (``data``, ``models``, ``train``, ``probe``, ``diagnose``, ``mitigate``,
  ``interactions``, ``plots``, ``widgets``, and the shared ``config``, ``causes``, ``runs``,
  ``quiet``, ``figures``) imports neither :mod:`ilpnb.pipeline` nor :mod:`ilpnb.cli`;
* :mod:`ilpnb.pipeline` does not import :mod:`ilpnb.cli`;
* command modules import the registry, not :mod:`ilpnb.cli` itself.

Function-local imports count too: an upward import inside a function is the same dependency,
only hidden. A second test checks that module-level imports between ilpnb modules form no cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "ilpnb"
LIBRARY, PIPELINE, CLI, TOP = 1, 2, 3, 4
NAMES = {LIBRARY: "library", PIPELINE: "pipeline", CLI: "cli", TOP: "package entry"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> int:
    """The layer of a module of the package."""
    if module in ("ilpnb", "ilpnb.__main__"):
        return TOP
    if module == "ilpnb.cli" or module.startswith("ilpnb.cli."):
        return CLI
    if module == "ilpnb.pipeline" or module.startswith("ilpnb.pipeline."):
        return PIPELINE
    return LIBRARY


def imports(path: Path, module: str | None = None) -> Iterator[tuple[int, str, bool]]:
    """(line, imported ilpnb module, at module level) for every import in a file (``module``:
    its dotted name, by default read from its place in the package)."""
    module = module or module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    tree = ast.parse(path.read_text(), filename=str(path))
    top = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                stem = ".".join(base + ([node.module] if node.module else []))
            else:
                stem = node.module or ""
            # ``from ilpnb.x import y``: y may be a submodule; its layer is that of ilpnb.x.y
            targets = [f"{stem}.{a.name}" if stem in ("ilpnb", "ilpnb.pipeline", "ilpnb.cli") else stem
                       for a in node.names]
        else:
            continue
        for target in targets:
            if target == "ilpnb" or target.startswith("ilpnb."):
                yield node.lineno, target, id(node) in top


FILES = sorted(PACKAGE.rglob("*.py"))


def test_the_layers_exist() -> None:
    modules = {module_name(p) for p in FILES}
    assert {"ilpnb.pipeline.workbench", "ilpnb.pipeline.realtrack", "ilpnb.cli.registry"} <= modules
    assert not {"ilpnb.workbench", "ilpnb.realtrack", "ilpnb.train.cli", "ilpnb.interactions.sweep"} & modules


def test_no_upward_import() -> None:
    upward = []
    for path in FILES:
        mine = layer(module_name(path))
        for line, target, _ in imports(path):
            theirs = layer(target)
            if theirs > mine and not (theirs == TOP and target == "ilpnb"):
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {NAMES[mine]} imports "
                              f"{target} ({NAMES[theirs]})")
            if mine == CLI and target == "ilpnb.cli" and module_name(path) != "ilpnb.cli":
                upward.append(f"{path.relative_to(PACKAGE.parent)}:{line}: a command module imports ilpnb.cli "
                              "(use ilpnb.cli.registry)")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def _resolve(target: str, modules: set[str]) -> str | None:
    while target and target not in modules:
        target = target.rpartition(".")[0]
    return target or None


def test_module_level_imports_have_no_cycle() -> None:
    modules = {module_name(p) for p in FILES}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for path in FILES:
        me = module_name(path)
        for _, target, at_top in imports(path):
            dep = _resolve(target, modules)
            if at_top and dep and dep != me and not me.startswith(dep + "."):  # a package's own parent
                graph[me].add(dep)
    done: set[str] = set()

    def visit(node: str, stack: list[str]) -> None:
        if node in stack:
            cycle = stack[stack.index(node):] + [node]
            pytest.fail("import cycle: " + " -> ".join(cycle))
        if node in done:
            return
        for dep in sorted(graph[node]):
            visit(dep, stack + [node])
        done.add(node)

    for m in sorted(graph):
        visit(m, [])


def test_the_walker_sees_local_and_relative_imports(tmp_path: Path) -> None:
    """The walker finds a function-local upward import and resolves relative ones (so the
    checks above can fail)."""
    source = ("from .features import signals\n"
              "def f():\n    from ilpnb.pipeline import workbench\n    return workbench, signals\n")
    path = tmp_path / "probe.py"
    path.write_text(source)
    found = list(imports(path, module="ilpnb.diagnose.probe"))
    assert found == [(1, "ilpnb.diagnose.features", True), (3, "ilpnb.pipeline.workbench", False)]
    assert layer(found[1][1]) == PIPELINE > layer("ilpnb.diagnose.probe")
