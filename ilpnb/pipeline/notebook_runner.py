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
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat

from ilpnb.pipeline.notebook_order import blocked_by, needs_of, ready
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
    jobs: int = 1,
) -> Path:
    """Execute the numbered notebooks into a run folder and write its index.

    Each notebook gets the papermill parameters ``PRESET=preset`` and ``RUN=<absolute run
    folder>``, runs with the parent of ``notebooks_dir`` (the repository root) as working
    directory, and is saved executed as ``RUN/notebooks/NN_name.ipynb``. A notebook starts
    once the notebooks it needs (:mod:`ilpnb.pipeline.notebook_order`) have finished; with
    ``jobs`` > 1 up to that many run at once, each in its own process with ``cores // jobs``
    torch threads (the results of a notebook can then differ in the last digits from a run
    with all cores: torch's reductions depend on the thread count).

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
        keep_going: after a failed notebook, run the others anyway (those that need it are
            not run and count as failed) and raise :class:`NotebooksFailedError` at the end;
            by default no notebook starts after a failure (those running finish).
        jobs: notebooks run at once (0: one per CPU core).

    Returns:
        The run folder (absolute); its ``index.html`` shows the results.

    Raises:
        ParametersCellError: a notebook lacks its single ``parameters`` cell (checked for
            every notebook before anything runs).
        NeedsError: a notebook's ``ilpnb.needs`` metadata is malformed.
        RunExistsError, ConfigMismatchError: from :meth:`RunFolder.create`.
        NotebookError: a notebook failed; the run stops, ``index.html`` is still written.
        NotebooksFailedError: with ``keep_going``, after every notebook ran, when any failed.
    """
    from tqdm.auto import tqdm

    if jobs < 0:
        raise ValueError(f"jobs must be 0 (one per CPU core) or a positive count, not {jobs}")
    paths = find_notebooks(notebooks_dir, only)
    for path in paths:
        check_parameters_cell(path)
    needs = needs_of(paths, find_notebooks(paths[0].parent))
    cwd = paths[0].resolve().parent.parent
    target = Path(out) if out is not None else _fresh_run_path(preset)
    config = {"kind": "notebooks", "preset": preset, "notebooks": [p.stem for p in paths]}
    run = RunFolder.create(target, config, resume=resume)
    run_path = run.path.resolve()
    kernel = ensure_kernel(kernel_name)
    (run_path / "notebooks").mkdir(parents=True, exist_ok=True)
    (run_path / "figures").mkdir(parents=True, exist_ok=True)
    jobs = max(1, min(jobs or (os.cpu_count() or 1), len(paths)))
    job = _Job(preset=preset, run=run_path, kernel=kernel, cwd=cwd, progress=progress)

    bar = tqdm(total=len(paths), desc="notebooks", unit="nb", disable=not progress, file=sys.stderr)
    failures: list[NotebookError] = []
    try:
        with _inline_matplotlib():
            if jobs == 1:
                _run_in_order(paths, needs, job, resume, keep_going, bar, failures)
            else:
                _run_at_once(paths, needs, job, resume, keep_going, bar, failures, jobs)
    finally:
        bar.close()
        build_index(run_path)
    if failures:
        if not keep_going:
            raise failures[0]
        raise NotebooksFailedError(run_path, failures)
    return run_path


@dataclass(frozen=True)
class _Job:
    """What every notebook of one run is executed with."""

    preset: str
    run: Path
    kernel: str
    cwd: Path
    progress: bool

    def executed(self, path: Path) -> Path:
        return self.run / "notebooks" / path.name


def _execute(path: Path, job: _Job, lane: int = 0) -> str | None:
    """Execute one notebook with papermill and mark its executed copy; the reason it failed, or None.

    Raises:
        BaseException: what is not an ``Exception`` (KeyboardInterrupt and friends), at once.
    """
    from papermill import execute_notebook

    executed = job.executed(path)
    start = time.perf_counter()
    bar: bool | dict[str, Any] = job.progress and ({"desc": path.stem, "position": lane, "leave": False}
                                                   if lane else True)
    try:
        execute_notebook(
            str(path),
            str(executed),
            parameters={"PRESET": job.preset, "RUN": str(job.run)},
            kernel_name=job.kernel,
            language="python",
            progress_bar=bar,
            cwd=str(job.cwd),
            extra_arguments=list(_KERNEL_ARGS),  # a copy: nbclient appends to it
        )
    except BaseException as err:
        reason = _reason(err)
        _mark(executed, {"status": "failed", "error": reason, "elapsed_s": time.perf_counter() - start})
        if not isinstance(err, Exception):
            raise
        return reason
    _mark(executed, {"status": "ok", "elapsed_s": time.perf_counter() - start, "preset": job.preset})
    return None


def _failure(path: Path, job: _Job, reason: str, elapsed: float | None) -> NotebookError:
    executed = job.executed(path)
    where = (f"the executed copy with the full traceback is {executed}" if executed.exists()
             else "it failed before papermill wrote an executed copy")
    after = f" after {elapsed:.1f} s" if elapsed is not None else ""
    return NotebookError(f"notebook {path.name} failed{after}: {reason}\n{where}", notebook=path.stem,
                         executed=executed)


def _skip_finished(path: Path, job: _Job, resume: bool) -> bool:
    if resume and notebook_status(job.executed(path))[0] == "ok":
        _say(job.progress, f"{path.stem}: skipped, finished in an earlier attempt")
        return True
    return False


def _not_run(path: Path, job: _Job, missing: list[str]) -> NotebookError:
    reason = f"not run: it needs {', '.join(missing)}, which failed"
    _say(job.progress, f"{path.stem}: {reason}")
    return NotebookError(f"notebook {path.name} {reason}", notebook=path.stem, executed=job.executed(path))


def _run_in_order(paths: Sequence[Path], needs: dict[str, list[str]], job: _Job, resume: bool,
                  keep_going: bool, bar: Any, failures: list[NotebookError]) -> None:
    """One notebook at a time, in this process, in number order."""
    failed: set[str] = set()
    for path in paths:
        bar.set_postfix_str(path.stem)
        if _skip_finished(path, job, resume):
            bar.update()
            continue
        missing = blocked_by(path.stem, needs, failed)
        if missing:
            failures.append(_not_run(path, job, missing))
            failed.add(path.stem)
            bar.update()
            continue
        start = time.perf_counter()
        reason = _execute(path, job)
        elapsed = time.perf_counter() - start
        bar.update()
        if reason is None:
            _say(job.progress, f"{path.stem}: ok in {elapsed:.1f} s")
            continue
        _say(job.progress, f"{path.stem}: FAILED after {elapsed:.1f} s ({reason})")
        failures.append(_failure(path, job, reason, elapsed))
        failed.add(path.stem)
        if not keep_going:
            return


def _run_at_once(paths: Sequence[Path], needs: dict[str, list[str]], job: _Job, resume: bool,
                 keep_going: bool, bar: Any, failures: list[NotebookError], jobs: int) -> None:
    """Up to ``jobs`` notebooks at once, each in a child process (``python -m`` this module), a
    notebook starting when its needs are done, lowest number first. A child gets
    ``cores // jobs`` threads (``OMP_NUM_THREADS``); Ctrl-C reaches the children too."""
    by_name = {p.stem: p for p in paths}
    order = [p.stem for p in paths]
    threads = max(1, (os.cpu_count() or 1) // jobs)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    done: set[str] = set()
    failed: set[str] = set()
    running: dict[str, tuple[subprocess.Popen, float, int]] = {}
    for name in order:
        if _skip_finished(by_name[name], job, resume):
            done.add(name)
            bar.update()
    try:
        while True:
            for name in order:
                missing = blocked_by(name, needs, failed)
                if missing and name not in done | failed | set(running):
                    failures.append(_not_run(by_name[name], job, missing))
                    failed.add(name)
                    bar.update()
            stop = bool(failed) and not keep_going
            free = [lane for lane in range(1, jobs + 1) if lane not in {r[2] for r in running.values()}]
            for name in ([] if stop else ready(order, needs, done, done | failed | set(running)))[: len(free)]:
                lane = free.pop(0)
                args = [sys.executable, "-m", "ilpnb.pipeline.notebook_runner", str(by_name[name]),
                        job.preset, str(job.run), job.kernel, str(job.cwd), str(int(job.progress)), str(lane)]
                beside = ", ".join(running) or "nothing else"
                _say(job.progress, f"{name}: started ({threads} torch thread{'s' * (threads > 1)}, beside {beside})")
                running[name] = (subprocess.Popen(args, env=env), time.perf_counter(), lane)
            if not running:
                return
            time.sleep(0.5)
            for name, (proc, start, _) in list(running.items()):
                if proc.poll() is None:
                    continue
                del running[name]
                elapsed = time.perf_counter() - start
                bar.update()
                status, _, error = notebook_status(job.executed(by_name[name]))
                if proc.returncode == 0 and status == "ok":
                    done.add(name)
                    _say(job.progress, f"{name}: ok in {elapsed:.1f} s")
                    continue
                reason = error or f"its process ended with exit status {proc.returncode}"
                _say(job.progress, f"{name}: FAILED after {elapsed:.1f} s ({reason})")
                failures.append(_failure(by_name[name], job, reason, elapsed))
                failed.add(name)
    finally:
        for proc, _, _ in running.values():  # an interrupt (or an error here): no child is left behind
            proc.terminate()
        for proc, _, _ in running.values():
            proc.wait()


def _main(argv: Sequence[str]) -> int:
    """A child of :func:`_run_at_once`: execute one notebook; exit status 1 when it failed."""
    path, preset, run, kernel, cwd, progress, lane = argv
    job = _Job(preset=preset, run=Path(run), kernel=kernel, cwd=Path(cwd), progress=progress == "1")
    return 0 if _execute(Path(path), job, int(lane)) is None else 1


def _reason(err: BaseException) -> str:
    """One line saying why a notebook failed."""
    ename = getattr(err, "ename", None)
    if ename:
        return f"{ename}: {getattr(err, 'evalue', '')}".strip().rstrip(":")
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
