"""Arms trained in several processes: the job order is kept, each worker has its share of the
cores, and an experiment run by two workers gives the rows a sequential run gives."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from ilpnb.mitigate.parallel import cores, resolve_workers, run_jobs


def where(tag: str) -> tuple[str, int, int]:
    import torch

    return tag, os.getpid(), torch.get_num_threads()


def fails(tag: str) -> str:
    raise ValueError(f"job {tag} failed")


def test_resolve_workers() -> None:
    assert resolve_workers(1, 5) == 1
    assert resolve_workers(4, 2) == 2  # never more workers than jobs
    assert resolve_workers(0, 100) == cores()
    assert resolve_workers(3, 0) == 1
    with pytest.raises(ValueError, match="workers must be"):
        resolve_workers(-1, 3)


def test_jobs_run_in_other_processes_in_order() -> None:
    out = run_jobs(where, [("a",), ("b",), ("c",)], workers=2)
    assert [tag for tag, _, _ in out] == ["a", "b", "c"]
    assert os.getpid() not in {pid for _, pid, _ in out}
    assert {threads for _, _, threads in out} == {max(1, cores() // 2)}
    assert run_jobs(where, [("a",)], workers=2)[0][1] == os.getpid()  # one job: here


def test_a_failing_job_raises_here() -> None:
    with pytest.raises(ValueError, match="job b failed"):
        run_jobs(fails, [("b",), ("c",)], workers=2)


def test_two_workers_give_the_rows_of_a_sequential_run(run: Path) -> None:
    from ilpnb.mitigate.experiment import run_mitigation

    parallel = run_mitigation(run, "pretrain_conflict", "upweight", seeds=[0, 1], arms=("treated",), workers=2)
    assert sorted(parallel["seed"].unique()) == [0, 1]
    shutil.rmtree(run / "mitigation" / "pretrain_conflict-upweight-x4" / "seed-1")
    again = run_mitigation(run, "pretrain_conflict", "upweight", seeds=[1], arms=("treated",), workers=1)
    mine = parallel[parallel["seed"] == 1].reset_index(drop=True)
    # the schedule is the arm's own (seeded), not the worker's
    for col in ("cause", "unlearned", "steps", "examples", "tokens"):
        assert mine[col].tolist() == again[col].tolist(), col
    # the losses agree up to torch's thread-dependent rounding
    assert mine["learned_loss"].to_numpy() == pytest.approx(again["learned_loss"].to_numpy(), rel=1e-2)


def test_several_experiments_share_one_pool_and_their_unmodified_runs(run: Path) -> None:
    from ilpnb.mitigate.experiment import load_results, run_mitigations

    table = run_mitigations(run, [("pretrain_conflict", "upweight", 2), ("rare_pattern", "upsample", 2)],
                            seeds=[0, 1], arms=("treated", "unmodified"), workers=2)
    assert sorted(map(tuple, table[["target", "seed"]].drop_duplicates().to_numpy())) == [
        ("pretrain_conflict", 0), ("pretrain_conflict", 1), ("rare_pattern", 0), ("rare_pattern", 1)]
    assert set(table["arm"]) == {"treated", "unmodified"}
    for name in ("pretrain_conflict-upweight-x2", "rare_pattern-upsample-x2"):
        assert (run / "mitigation" / name / "results.parquet").is_file()
    # the unmodified run of each seed, trained once before the pool's jobs
    for seed in (0, 1):
        assert (run / "mitigation" / "unmodified" / f"seed-{seed}" / "samples.parquet").is_file()
    assert len(load_results(run)) >= len(table)
