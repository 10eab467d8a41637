"""Run the numbered notebooks headlessly into a run folder, and write its ``index.html``.

``run_notebooks`` executes ``notebooks/NN_*.ipynb`` in order with papermill, each with the
parameters ``PRESET`` and ``RUN`` (the absolute run folder), from the repository root as
working directory. Executed copies go to ``RUN/notebooks/``. ``build_index`` writes
``RUN/index.html``: the run's settings and versions, every notebook with its status, time,
an HTML rendering and its figures inline, so results can be read without starting Jupyter.

A notebook's executed copy records its outcome in its metadata (papermill's own, plus an
``ilpnb`` entry written by the runner); resuming skips notebooks that finished cleanly. By
default the run stops at the first failure; ``keep_going=True`` runs every notebook and then
raises one :class:`NotebooksFailedError` naming each failed notebook, so a test tier (or a
person) sees every failure on its own rather than one error for the whole run.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import nbformat

from ilpnb.pipeline.run_index import build_index, notebook_status
from ilpnb.runs import RunFolder, default_runs_dir, new_run_name

__all__ = [
    "NotebookError",
    "NotebooksFailedError",
    "ParametersCellError",
    "run_notebooks",
    "build_index",
    "find_notebooks",
    "check_parameters_cell",
    "ensure_kernel",
    "default_notebooks_dir",
]

_INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
# The kernel's own log (not the notebook's output) at ERROR: at WARNING it prints, for every
# notebook, that a kernel on this machine talks to papermill over unencrypted local TCP.
_KERNEL_ARGS = ("--IPKernelApp.log_level=ERROR",)


class NotebookError(RuntimeError):
    """A notebook failed while running; names it and its executed copy.

    Attributes:
        notebook: the notebook's name (``NN_name``).
        executed: the executed copy holding the traceback.
    """

    def __init__(self, message: str, notebook: str, executed: Path) -> None:
        super().__init__(message)
        self.notebook = notebook
        self.executed = executed


class NotebooksFailedError(NotebookError):
    """Some notebooks of a ``keep_going`` run failed; the others ran to the end.

    Attributes:
        run: the run folder (its ``index.html`` shows every notebook's status).
        failures: one :class:`NotebookError` per failed notebook, in run order; ``notebook``
            and ``executed`` are those of the first.
    """

    def __init__(self, run: Path, failures: Sequence[NotebookError]) -> None:
        names = ", ".join(f.notebook for f in failures)
        lines = "\n".join(f"  {f}".replace("\n", "\n  ") for f in failures)
        super().__init__(f"{len(failures)} notebook(s) failed in {run}: {names}\n{lines}",
                         notebook=failures[0].notebook, executed=failures[0].executed)
        self.run = run
        self.failures = list(failures)


class ParametersCellError(ValueError):
    """A notebook does not have exactly one cell tagged ``parameters``."""


def default_notebooks_dir() -> Path:
    """The ``notebooks/`` folder of the repository ilpnb is installed from, else ``./notebooks``."""
    beside_package = Path(__file__).resolve().parent.parent / "notebooks"
    return beside_package if beside_package.is_dir() else Path.cwd() / "notebooks"


def find_notebooks(
    notebooks_dir: str | Path | None = None, only: Sequence[str] | str | None = None
) -> list[Path]:
    """The numbered notebooks ``NN_*.ipynb`` of a folder, in order.

    Args:
        notebooks_dir: the folder; defaults to :func:`default_notebooks_dir`.
        only: prefixes to keep, such as ``["00", "01"]`` (or ``"00,01"``).

    Raises:
        FileNotFoundError: no numbered notebook in the folder.
        ValueError: a prefix in ``only`` matches no notebook.
    """
    folder = Path(notebooks_dir) if notebooks_dir is not None else default_notebooks_dir()
    paths = sorted(p for p in folder.glob("[0-9][0-9]_*.ipynb") if p.is_file())
    if not paths:
        raise FileNotFoundError(f"{folder}: no numbered notebooks (NN_name.ipynb) found")
    if only is None:
        return paths
    prefixes = [s.strip() for s in (only.split(",") if isinstance(only, str) else only)]
    prefixes = [s for s in prefixes if s]
    unknown = [s for s in prefixes if not any(p.stem.startswith(s) for p in paths)]
    if unknown:
        names = ", ".join(p.stem for p in paths)
        raise ValueError(f"--only {','.join(unknown)}: no such notebook in {folder} ({names})")
    return [p for p in paths if any(p.stem.startswith(s) for s in prefixes)]


def check_parameters_cell(path: str | Path) -> None:
    """Check that a notebook has exactly one code cell tagged ``parameters``.

    Raises:
        ParametersCellError: naming the notebook and how many such cells it has.
    """
    nb = nbformat.read(str(path), as_version=4)
    tagged = [
        i
        for i, cell in enumerate(nb.cells)
        if "parameters" in (cell.get("metadata", {}).get("tags") or [])
    ]
    if len(tagged) != 1:
        raise ParametersCellError(
            f"{Path(path).name}: needs exactly one cell tagged 'parameters' holding PRESET "
            f"and RUN, found {len(tagged)}; tag it in JupyterLab (Property Inspector > "
            "Cell Tags) so papermill can inject the run's parameters"
        )
    if nb.cells[tagged[0]].cell_type != "code":
        raise ParametersCellError(
            f"{Path(path).name}: the cell tagged 'parameters' must be a code cell"
        )


def _runs_this_interpreter(argv: Sequence[str]) -> bool:
    """Whether a kernelspec's command starts the interpreter running this process."""
    if not argv:
        return False
    first = argv[0]
    major, minor = sys.version_info[:2]
    if first in {"python", f"python{major}", f"python{major}.{minor}"}:
        return True  # jupyter_client substitutes sys.executable for these names
    return Path(os.path.abspath(first)).parent == Path(os.path.abspath(sys.executable)).parent


def ensure_kernel(kernel_name: str | None = None) -> str:
    """Name of a Jupyter kernel that runs this Python interpreter, installing one if needed.

    ``python3`` is used when it resolves to this interpreter (the normal case inside a
    virtual environment); otherwise a kernelspec ``ilpnb`` pointing to ``sys.executable`` is
    installed into this environment (or, failing that, for the user).

    Args:
        kernel_name: use this kernel as it is (checked to exist).

    Raises:
        ValueError: ``kernel_name`` names no installed kernel.
    """
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    ksm = KernelSpecManager()
    if kernel_name:
        try:
            ksm.get_kernel_spec(kernel_name)
        except NoSuchKernel as err:
            known = ", ".join(sorted(ksm.find_kernel_specs()))
            raise ValueError(f"no Jupyter kernel named {kernel_name!r} (have: {known})") from err
        return kernel_name
    for name in ("python3", "ilpnb"):
        try:
            spec = ksm.get_kernel_spec(name)
        except NoSuchKernel:
            continue
        if _runs_this_interpreter(spec.argv):
            return name
    from ipykernel.kernelspec import install

    display = f"Python ({Path(sys.prefix).name}, ilpnb)"
    try:
        install(kernel_name="ilpnb", display_name=display, prefix=sys.prefix)
    except OSError:
        install(kernel_name="ilpnb", display_name=display, user=True)
    return "ilpnb"


@contextlib.contextmanager
def _inline_matplotlib() -> Iterator[None]:
    """Let kernels show figures inline even when the caller set ``MPLBACKEND=Agg``.

    ipykernel only picks its inline backend when ``MPLBACKEND`` is unset, and a kernel
    inherits this process's environment; without inline figures ``index.html`` has none.
    """
    old = os.environ.get("MPLBACKEND")
    os.environ["MPLBACKEND"] = _INLINE_BACKEND
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MPLBACKEND", None)
        else:
            os.environ["MPLBACKEND"] = old


def _mark(executed: Path, info: dict[str, Any]) -> None:
    """Record the runner's verdict in the executed copy's metadata (``ilpnb``)."""
    if not executed.exists():
        return
    try:
        nb = nbformat.read(str(executed), as_version=4)
    except Exception:  # noqa: BLE001 - a half-written copy stays as it is ("incomplete")
        return
    nb.metadata["ilpnb"] = info
    tmp = executed.with_suffix(".ipynb.tmp")
    nbformat.write(nb, str(tmp))
    os.replace(tmp, executed)


def _fresh_run_path(preset: str) -> Path:
    """``default_runs_dir() / new_run_name(preset)``, suffixed when that name is taken."""
    base = default_runs_dir() / new_run_name(preset)
    candidate, k = base, 2
    while candidate.exists():
        candidate, k = base.with_name(f"{base.name}-{k}"), k + 1
    return candidate


def _say(progress: bool, line: str) -> None:
    if progress:
        from tqdm.auto import tqdm

        tqdm.write(line, file=sys.stderr)


def run_notebooks(
    preset: str = "default",
    out: str | Path | None = None,
    only: Sequence[str] | str | None = None,
    notebooks_dir: str | Path | None = None,
    resume: bool = False,
    kernel_name: str | None = None,
    progress: bool = True,
    keep_going: bool = False,
) -> Path:
    """Execute the numbered notebooks in order into a run folder and write its index.

    Each notebook gets the papermill parameters ``PRESET=preset`` and ``RUN=<absolute run
    folder>``, runs with the parent of ``notebooks_dir`` (the repository root) as working
    directory, and is saved executed as ``RUN/notebooks/NN_name.ipynb``.

    Args:
        preset: ``smoke``, ``default`` or ``full``; passed to every notebook.
        out: the run folder; defaults to ``default_runs_dir() / new_run_name(preset)``.
        only: prefixes of the notebooks to run, such as ``["00", "01"]``.
        notebooks_dir: where the notebooks are; defaults to :func:`default_notebooks_dir`.
        resume: continue the run already in ``out``: notebooks that finished cleanly there
            are skipped, the others run again.
        kernel_name: Jupyter kernel to use; by default one running this interpreter.
        progress: show a bar over notebooks, papermill's bar over cells, and a line per
            notebook with its time (on stderr).
        keep_going: after a failed notebook, run the next ones anyway (they may fail in
            turn when they need its results) and raise :class:`NotebooksFailedError` at the
            end; by default the run stops at the first failure.

    Returns:
        The run folder (absolute); its ``index.html`` shows the results.

    Raises:
        ParametersCellError: a notebook lacks its single ``parameters`` cell (checked for
            every notebook before anything runs).
        RunExistsError, ConfigMismatchError: from :meth:`RunFolder.create`.
        NotebookError: a notebook failed; the run stops, ``index.html`` is still written.
        NotebooksFailedError: with ``keep_going``, after every notebook ran, when any failed.
    """
    from papermill import execute_notebook
    from tqdm.auto import tqdm

    paths = find_notebooks(notebooks_dir, only)
    for path in paths:
        check_parameters_cell(path)
    cwd = paths[0].resolve().parent.parent
    target = Path(out) if out is not None else _fresh_run_path(preset)
    config = {"kind": "notebooks", "preset": preset, "notebooks": [p.stem for p in paths]}
    run = RunFolder.create(target, config, resume=resume)
    run_path = run.path.resolve()
    kernel = ensure_kernel(kernel_name)
    (run_path / "notebooks").mkdir(parents=True, exist_ok=True)
    (run_path / "figures").mkdir(parents=True, exist_ok=True)

    bar = tqdm(paths, desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    failures: list[NotebookError] = []
    try:
        for path in bar:
            name = path.stem
            bar.set_postfix_str(name)
            executed = run_path / "notebooks" / path.name
            if resume and notebook_status(executed)[0] == "ok":
                _say(progress, f"{name}: skipped, finished in an earlier attempt")
                continue
            start = time.perf_counter()
            try:
                with _inline_matplotlib():
                    execute_notebook(
                        str(path),
                        str(executed),
                        parameters={"PRESET": preset, "RUN": str(run_path)},
                        kernel_name=kernel,
                        language="python",
                        progress_bar=progress,
                        cwd=str(cwd),
                        extra_arguments=list(_KERNEL_ARGS),  # a copy: nbclient appends to it
                    )
            except BaseException as err:
                elapsed = time.perf_counter() - start
                reason = _reason(err)
                _mark(executed, {"status": "failed", "error": reason, "elapsed_s": elapsed})
                _say(progress, f"{name}: FAILED after {elapsed:.1f} s ({reason})")
                if not isinstance(err, Exception):
                    raise  # KeyboardInterrupt and friends: stop at once
                where = (
                    f"the executed copy with the full traceback is {executed}"
                    if executed.exists()
                    else "it failed before papermill wrote an executed copy"
                )
                failure = NotebookError(
                    f"notebook {path.name} failed after {elapsed:.1f} s: {reason}\n{where}",
                    notebook=name,
                    executed=executed,
                )
                if not keep_going:
                    raise failure from err
                failures.append(failure)
                continue
            elapsed = time.perf_counter() - start
            _mark(executed, {"status": "ok", "elapsed_s": elapsed, "preset": preset})
            _say(progress, f"{name}: ok in {elapsed:.1f} s")
    finally:
        bar.close()
        build_index(run_path)
    if failures:
        raise NotebooksFailedError(run_path, failures)
    return run_path


def _reason(err: BaseException) -> str:
    """One line saying why a notebook failed."""
    ename = getattr(err, "ename", None)
    if ename:
        return f"{ename}: {getattr(err, 'evalue', '')}".strip().rstrip(":")
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__
