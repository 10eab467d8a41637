"""Train independent mitigation arms in several processes at once.

A mitigation experiment trains many small fine-tuning runs (arms) that do not depend on each
other: one chain of arms per seed, one crossover cell per (seed, cause, method). On a CPU a
tiny model's training step does not keep two cores busy, so two processes of one torch thread
each train two arms in much less than twice the time one arm takes with two threads.

:func:`run_jobs` calls a module-level function on each job, in this process when one worker
is asked for (or there is one job), else in a pool of ``spawn``-ed processes (a fork would
copy torch's thread pool). Each worker uses ``cores() // workers`` torch threads, so results
can differ in the last digits from a sequential run (torch's reductions depend on the thread
count); every arm's own seed is set by the arm, not by the worker, so they do not depend on
which worker ran them or in what order. Each job must write its own folders: two jobs never
train the same arm (the callers train what jobs share, such as the unmodified run, first).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

__all__ = ["cores", "resolve_workers", "run_jobs"]

T = TypeVar("T")


def cores() -> int:
    """The cores this process may use: its torch thread count (the CPU's cores unless
    ``OMP_NUM_THREADS`` or ``torch.set_num_threads`` says fewer, e.g. in a notebook that
    ``ilpnb run --jobs`` runs beside another)."""
    import torch

    return max(1, torch.get_num_threads())


def resolve_workers(workers: int, jobs: int) -> int:
    """How many processes run ``jobs`` jobs: ``workers`` (0: one per core of :func:`cores`), at most one per job.

    Raises:
        ValueError: ``workers`` is negative.
    """
    if workers < 0:
        raise ValueError(f"workers must be 0 (one per CPU core) or a positive count, not {workers}")
    wanted = workers or cores()
    return max(1, min(wanted, jobs))


def _start_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_jobs(fn: Callable[..., T], jobs: Sequence[tuple[Any, ...]], workers: int = 1) -> list[T]:
    """``[fn(*job) for job in jobs]``, in ``workers`` processes (see :func:`resolve_workers`).

    ``fn`` and the jobs' arguments must be picklable (``fn`` defined at a module's top level).
    The results keep the jobs' order; the first job to fail raises its error here.
    """
    n = resolve_workers(workers, len(jobs))
    if n <= 1:
        return [fn(*job) for job in jobs]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, cores() // n)
    with ProcessPoolExecutor(n, mp_context=multiprocessing.get_context("spawn"), initializer=_start_worker,
                             initargs=(threads,)) as pool:
        return list(pool.map(fn, *zip(*jobs)))
