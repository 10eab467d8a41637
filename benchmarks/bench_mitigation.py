"""Benchmark: notebook 08's experiments on fresh worlds — the arms' table, the crossover matrix, the time.

The pre-registered methods and factors were fixed on world seed 0, and those of pretraining
conflicts and rare patterns again after worlds 1 and 2 (their former choices were the generic
control itself); this benchmark judges them on worlds of other seeds (``--worlds``, default 3
and 4: not used to choose any method). For each world it prepares (or
reuses) a run folder with the world, its base model and a diagnosed SFT run (the work of
notebooks 00/01/07, not timed), then times what notebook 08 does: every cause's pre-registered
intervention with its generic (compute-matched) control, its placebo and the unmodified run
over the seeds, and (``--crossover``) every pre-registered method on every cause's samples.
Prints per world and cause the recovery of each arm on its own cause, treated - generic with
its 95% interval (the difference that makes a fix cause-specific), the optimizer steps and
trained tokens of treated and generic; the crossover matrix (recovery and gain over the
unmodified run, with intervals over seeds); the figures pooled over worlds x seeds; and the
time of the experiments per world.

    python benchmarks/bench_mitigation.py [--preset default] [--worlds 3 4] [--seeds 2] [--crossover]
        [--crossover-seeds K] [--root DIR] [--workers 0] [--json [PATH]]

``--json`` also writes the pooled figures to ``benchmarks/results/bench_mitigation.json`` (or
PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from ilpnb.figures import add_json_option, figure, write_results


def _own_rows(summary: Any, world: int | str) -> list[dict[str, Any]]:
    """One row per cause: its own intervention's arms and the decisive difference."""
    rows = []
    for _, own in summary[summary["target"] == summary["cause"]].iterrows():
        rows.append({"world": world, "cause": own["cause"], "method": own["method"], "unlearned": own["unlearned"],
                     "treated": own["treated"], "generic": own["generic"], "placebo": own["placebo"],
                     "unmodified": own["unmodified"], "difference": own["vs_generic"], "ci_lo": own["vs_generic_lo"],
                     "ci_hi": own["vs_generic_hi"], "cause_specific": bool(own["cause_specific"]),
                     "steps_treated": own["steps_treated"], "steps_generic": own["steps_generic"],
                     "tokens_treated": own["tokens_treated"], "tokens_generic": own["tokens_generic"]})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--worlds", type=int, nargs="+", default=[3, 4], help="world seeds (0, 1 and 2 chose the methods)")
    parser.add_argument("--seeds", type=int, default=2, help="SFT seeds per arm")
    parser.add_argument("--crossover", action="store_true", help="also the crossover of the pre-registered methods")
    parser.add_argument("--crossover-seeds", type=int, default=0,
                        help="SFT seeds per crossover cell (0: --seeds); the matrix costs methods x causes arms")
    parser.add_argument("--root", default=None, help="folder of the per-world run folders (prepared or reused)")
    parser.add_argument("--workers", type=int, default=0, help="processes training arms at once (0: one per core)")
    add_json_option(parser)
    args = parser.parse_args()
    import pandas as pd

    from ilpnb.config import get_preset
    from ilpnb.mitigate.crossover import crossover_matrix, run_crossover
    from ilpnb.mitigate.experiment import run_mitigation, summarize
    from ilpnb.mitigate.interventions import PREREGISTERED
    from ilpnb.pipeline import workbench

    root = Path(args.root or tempfile.mkdtemp(prefix="ilpnb-mitigate-"))
    cross_seeds = args.crossover_seeds or args.seeds
    own_rows, pooled, matrices, seconds = [], [], [], {}
    for world in args.worlds:
        run = root / f"world-{world}"
        diagnosis = workbench.ensure_diagnosis(run, get_preset(args.preset, **{"world.seed": world}))
        shutil.rmtree(run / "sft" / "mitigation", ignore_errors=True)  # time the experiments from scratch
        causes = [c for c in PREREGISTERED if (diagnosis["cause"] == c).any()]
        start = time.perf_counter()
        results = pd.concat([run_mitigation(run / "sft", c, PREREGISTERED[c].method, args.seeds, PREREGISTERED[c].factor,
                                            workers=args.workers) for c in causes], ignore_index=True)
        seconds[f"world {world} experiments"] = round(time.perf_counter() - start, 1)
        own_rows += _own_rows(summarize(results), world)
        pooled.append(results.assign(seed=results["seed"] + 1000 * world))  # a (world, seed) pair is one run
        if args.crossover:
            start = time.perf_counter()
            methods = list(dict.fromkeys(PREREGISTERED[c].method for c in causes))
            table = run_crossover(run / "sft", causes, methods, cross_seeds, workers=args.workers)
            seconds[f"world {world} crossover"] = round(time.perf_counter() - start, 1)
            matrix = crossover_matrix(table).assign(world=world)
            matrices.append(matrix)
            print(f"\nworld {world}: crossover (recovery on each cause's unlearned samples; gain over unmodified)")
            print(matrix.pivot(index="method", columns="cause", values="recovery").round(2).to_string())
            print(matrix.pivot(index="method", columns="cause", values="gain").round(2).to_string())
        print(f"world {world}: {seconds}", flush=True)
    table = pd.DataFrame(own_rows)
    print("\nper world: each cause's pre-registered fix (recovery on its own unlearned samples, original labels)")
    print(table.round(3).to_string(index=False))
    both = _own_rows(summarize(pd.concat(pooled, ignore_index=True)), "pooled")
    print(f"\npooled over worlds {args.worlds} x {args.seeds} seeds (intervals over the {len(args.worlds) * args.seeds} "
          f"runs):")
    print(pd.DataFrame(both).round(3).to_string(index=False))
    if matrices:
        every = pd.concat(matrices, ignore_index=True)
        diagonal = every[every.apply(lambda r: PREREGISTERED[r["cause"]].method == r["method"], axis=1)]
        print("\ncrossover: does each fix help its own cause most? (gain on the diagonal vs the best other method)")
        for (world, cause), g in every.groupby(["world", "cause"]):
            own = diagonal[(diagonal["world"] == world) & (diagonal["cause"] == cause)]["gain"]
            others = g[g["method"] != PREREGISTERED[cause].method]["gain"]
            print(f"  world {world} {cause}: own {own.iloc[0] if len(own) else float('nan'):+.2f}, "
                  f"best other {others.max() if len(others) else float('nan'):+.2f}")
    wall = sum(seconds.values())
    print(f"\nnotebook 08 work: {wall:.0f} s ({wall / 60:.1f} min) over {len(args.worlds)} worlds with {args.seeds} seeds"
          + (f" ({cross_seeds} per crossover cell)" if args.crossover else "") + ", "
          f"workers {args.workers or os.cpu_count()}, cpus {os.cpu_count()}")
    n = len(args.worlds) * args.seeds
    figures = [figure(f"difference_{r['cause']}", f"mitigation of {r['cause'].replace('_', ' ')}: {r['method']} "
                      f"(recovery treated − generic control, fresh worlds {args.worlds})", r["difference"], digits=3,
                      ci=(r["ci_lo"], r["ci_hi"]), signed=True, n=n,
                      note=f"treated {r['treated']:.3f}, generic {r['generic']:.3f}, placebo {r['placebo']:.3f}; "
                           + ("cause-specific" if r["cause_specific"] else "not shown cause-specific"))
               for r in both]
    figures.append(figure("wall_s", f"notebook 08's work per world ({'experiments + crossover' if args.crossover else 'experiments'}, "
                          f"{args.seeds} seeds)", wall / len(args.worlds), "s", digits=0))
    write_results(args, __file__, figures, preset=args.preset,
                  seeds={"sft": list(range(args.seeds)), "world": list(args.worlds),
                         **({"crossover": list(range(cross_seeds))} if args.crossover else {})},
                  extra={"rows": own_rows, "pooled": both, "seconds": seconds,
                         "crossover": pd.concat(matrices).to_dict("records") if matrices else []})


if __name__ == "__main__":
    main()
