"""Benchmark: the wall time of `make run` (every notebook at a preset), per notebook and in all.

Runs the notebooks the way `make run` does (``ilpnb.pipeline.notebook_runner.run_notebooks``)
into a fresh run folder, with a fresh ``ILPNB_CACHE`` (so the tiny base model is pretrained,
the packaged real model converted and its knowledge measured, as on a new machine; ``--warm``
keeps the usual cache). Prints each notebook's time from its executed copy and the total
against the budget (25 minutes at `default` on 2 CPU cores).

    python benchmarks/bench_make_run.py [--preset default] [--only 08,09] [--warm] [--jobs 2] [--out DIR] [--json [PATH]]

A notebook's time is its own wall time; with ``--jobs`` 2 two of them run at once, so the times
add up to more than the total.

``--json`` also writes the figures to ``benchmarks/results/bench_make_run.json`` (or PATH) for
the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]

BUDGET_MIN = 25.0


def main(argv: list[str] | None = None) -> None:
    """Run the notebooks into a new folder and print their times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--only", default=None, help="comma-separated notebook numbers (default: all)")
    parser.add_argument("--warm", action="store_true", help="keep the usual model and knowledge cache")
    parser.add_argument("--out", default=None, help="run folder to create (default: a temporary one)")
    parser.add_argument("--jobs", type=int, default=1, help="notebooks at once (default 1, as `make run`'s JOBS)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if not args.warm:
        os.environ["ILPNB_CACHE"] = tempfile.mkdtemp(prefix="ilpnb-cache-")
    from ilpnb.pipeline.notebook_runner import run_notebooks
    from ilpnb.pipeline.run_index import notebook_status

    out = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ilpnb-make-run-")) / "run"
    only = args.only.split(",") if args.only else None
    start = time.perf_counter()
    run = run_notebooks(preset=args.preset, out=out, only=only, jobs=args.jobs)
    wall = time.perf_counter() - start
    rows = []
    for executed in sorted((run / "notebooks").glob("*.ipynb")):
        status, seconds, _ = notebook_status(executed)
        rows.append({"notebook": executed.stem, "status": status, "seconds": round(seconds or 0.0, 1)})
        print(f"{executed.stem:36s} {status:8s} {seconds or 0.0:7.0f} s", flush=True)
    scope = "every notebook" if only is None else f"notebooks {args.only}"
    cache = "warm cache" if args.warm else "fresh cache"
    print(f"\nmake run ({scope}, preset {args.preset}, {cache}, {args.jobs} at once): {wall / 60:.1f} min "
          f"(budget {BUDGET_MIN:.0f} min), cpus {os.cpu_count()}")
    figures = [figure("wall_min", f"make run ({scope}, {args.preset}, {cache}, {args.jobs} notebooks at once)", wall / 60, "min", digits=1,
                      note=f"budget {BUDGET_MIN:.0f} min on 2 CPU cores; slowest "
                           + ", ".join(f"{r['notebook'][:2]} {r['seconds'] / 60:.1f}"
                                       for r in sorted(rows, key=lambda r: -r["seconds"])[:3]) + " min")]
    write_results(args, __file__, figures, preset=args.preset, extra={"notebooks": rows, "run": str(run)})


if __name__ == "__main__":
    main()
