"""The crossover matrix: every intervention applied to the diagnosed samples of every cause.

A fix that works *because of the cause* recovers its own cause's samples and does little for
the others' — seen only when every method is also tried where it should not help.
:func:`run_crossover` trains, for each cause with diagnosed samples and each method of
:data:`ilpnb.mitigate.interventions.INTERVENTIONS` (all families), the treated arm on that
cause's targets (the same arm folders :func:`ilpnb.mitigate.experiment.run_mitigation` uses,
so both reuse each other's runs) and the unmodified run of each seed, and measures the cell's
recovery on that cause's unlearned samples (original labels). :func:`crossover_matrix` gives
one row per cell: mean recovery with its 95% t-interval over seeds, and the gain over the
unmodified run (per seed, with its interval). Written to ``RUN/mitigation/crossover.parquet``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ilpnb.causes import CAUSES
from ilpnb.mitigate.experiment import Experiment, MitigationSettings, t_interval
from ilpnb.mitigate.interventions import DEFAULT_FACTOR, INTERVENTIONS, Plan, targets_of

__all__ = ["ALL_METHODS", "run_crossover", "crossover_matrix"]

#: Every method once, in the order of the families.
ALL_METHODS: tuple[str, ...] = tuple(dict.fromkeys(m for ms in INTERVENTIONS.values() for m in ms))


def run_crossover(run: str | Path, causes: list[str] | None = None, methods: list[str] | None = None,
                  seeds: int | list[int] = 2, factor: int | None = None,
                  settings: dict[str, Any] | MitigationSettings | None = None, progress: bool = False,
                  workers: int = 1) -> pd.DataFrame:
    """Apply every method to every diagnosed cause's samples and measure each cell over seeds.

    Args:
        run: a diagnosed SFT run folder.
        causes: the causes (rows' targets; default: every cause with diagnosed samples).
        methods: the methods (default: :data:`ALL_METHODS`).
        seeds: number of seeds (0..K-1) or the list of seeds.
        factor: k of weights/copies/resampling (default per method).
        settings: :class:`ilpnb.mitigate.experiment.MitigationSettings` fields.
        progress: tqdm bars.
        workers: processes training cells at once (0: one per CPU core; 1: here, in turn); the
            unmodified run of each seed is trained first (every cell of the seed reads it).

    Returns:
        One row per seed × method × cause (``recovery``, ``unmodified``), also saved as
        ``RUN/mitigation/crossover_results.parquet``; the matrix in ``crossover.parquet``.
    """
    from ilpnb.mitigate.parallel import resolve_workers, run_jobs

    exp = Experiment(run, settings, progress)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    causes = causes or [c for c in CAUSES if targets_of(exp.diagnosis, c)]
    methods = methods or list(ALL_METHODS)
    unknown = sorted(set(methods) - set(ALL_METHODS))
    if unknown:
        raise ValueError(f"crossover: unknown method(s) {', '.join(unknown)} (known: {', '.join(ALL_METHODS)})")
    cells = [(seed, cause, method, factor or DEFAULT_FACTOR.get(method, 4))
             for seed in seeds for cause in causes for method in methods]
    if resolve_workers(workers, len(cells)) <= 1:  # one process: this experiment, no rebuilt copies
        rows = [_cell(exp, *cell) for cell in cells]
    else:
        run_jobs(_unmodified_in_worker, [(exp.run, exp.settings, seed) for seed in seeds], workers)
        rows = run_jobs(_cell_in_worker, [(exp.run, exp.settings, *cell) for cell in cells], workers)
    table = pd.DataFrame(rows)
    out = exp.run / "mitigation"
    table.to_parquet(out / "crossover_results.parquet", index=False)
    matrix = crossover_matrix(table)
    matrix.to_parquet(out / "crossover.parquet", index=False)
    matrix.to_csv(out / "crossover.csv", index=False)
    return table


def _unmodified_in_worker(run: Path, settings: MitigationSettings, seed: int) -> None:
    Experiment(run, settings).unmodified(seed)


def _cell_in_worker(run: Path, settings: MitigationSettings, seed: int, cause: str, method: str,
                    k: int) -> dict[str, Any]:
    return _cell(Experiment(run, settings), seed, cause, method, k)


def _cell(exp: Experiment, seed: int, cause: str, method: str, k: int) -> dict[str, Any]:
    """Train (or reuse) one cell's treated arm and measure it against the seed's unmodified run."""
    plain = exp.unmodified(seed)
    seed_dir = exp.run / "mitigation" / f"{cause}-{method}-x{k}" / f"seed-{seed}"
    if method == "progressive":  # extra epochs raised until the targets' loss stops improving
        folder, plan, _ = exp.progressive(cause, k, seed, seed_dir)
    else:
        plan = exp.plan(cause, method, k, seed)
        folder = exp.arm(seed_dir / "treated", plan, seed)
    judged = exp.judged(plan)
    own = next(r for r in exp.measure(folder, plan, judged, seed) if r["cause"] == cause)
    base = next(r for r in exp.measure(plain, Plan(), judged, seed) if r["cause"] == cause)
    return {"seed": seed, "method": method, "cause": cause, "factor": k, "unlearned": own["unlearned"],
            "recovery": own["recovery"], "unmodified": base["recovery"], "recovery_truth": own["recovery_truth"],
            "steps": own["steps"], "tokens": own["tokens"]}


def crossover_matrix(results: pd.DataFrame) -> pd.DataFrame:
    """One row per (method, cause): recovery (mean, 95% CI over seeds), the unmodified run's
    recovery and the gain treated − unmodified per seed (mean, CI), and the number of seeds."""
    rows = []
    for (method, cause), g in results.groupby(["method", "cause"], sort=False):
        m, lo, hi = t_interval(g["recovery"].to_numpy())
        gm, glo, ghi = t_interval((g["recovery"] - g["unmodified"]).to_numpy())
        rows.append({"method": method, "cause": cause, "unlearned": int(g["unlearned"].iloc[0]), "recovery": m,
                     "recovery_lo": lo, "recovery_hi": hi, "unmodified": float(g["unmodified"].mean()),
                     "gain": gm, "gain_lo": glo, "gain_hi": ghi, "seeds": int(g["seed"].nunique())})
    return pd.DataFrame(rows)
