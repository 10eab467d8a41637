"""Benchmark: the wall time of notebook 08's experiments at a preset, and their verdicts.

Prepares (or reuses) a run folder with the world, its base model and a diagnosed SFT run
(the work of notebooks 00/01/07, not timed), then times what notebook 08 does: every cause's
pre-registered intervention with its generic (compute-matched) control, its placebo and the
unmodified run over the seeds. Prints each experiment's time, the recovery of each arm on its
own cause, treated - generic with its 95% interval (the difference that makes a fix
cause-specific), the optimizer steps and trained tokens of treated and generic, and the total
against the target (<= 10 minutes at `default` on 2 CPU cores).

    python benchmarks/bench_mitigation.py [--preset default] [--run DIR] [--seeds 3] [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_mitigation.json`` (or
PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from ilpnb.figures import add_json_option, figure, write_results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--run", default=None, help="run folder to prepare or reuse")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0)
    add_json_option(parser)
    args = parser.parse_args()
    import pandas as pd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ilpnb.mitigate.experiment import run_mitigation, summarize
    from ilpnb.mitigate.interventions import PREREGISTERED
    from ilpnb.pipeline import workbench

    run = Path(args.run or tempfile.mkdtemp(prefix="ilpnb-mitigate-"))
    diagnosis = workbench.ensure_diagnosis(run, args.preset)
    shutil.rmtree(run / "sft" / "mitigation", ignore_errors=True)  # time the experiments from scratch
    causes = [c for c in PREREGISTERED if (diagnosis["cause"] == c).any()]
    total, rows = time.perf_counter(), []
    for cause in causes:
        t = time.perf_counter()
        pre = PREREGISTERED[cause]
        summary = summarize(run_mitigation(run / "sft", cause, pre.method, args.seeds, pre.factor))
        own = summary[summary["cause"] == cause].iloc[0]
        rows.append({"cause": cause, "method": own["method"], "unlearned": own["unlearned"], "treated": own["treated"],
                     "generic": own["generic"], "placebo": own["placebo"], "difference": own["vs_generic"],
                     "ci_lo": own["vs_generic_lo"], "ci_hi": own["vs_generic_hi"],
                     "cause_specific": bool(own["cause_specific"]), "steps_treated": own["steps_treated"],
                     "steps_generic": own["steps_generic"], "tokens_treated": own["tokens_treated"],
                     "tokens_generic": own["tokens_generic"], "seconds": round(time.perf_counter() - t, 1)})
        print(f"{cause}: {rows[-1]['seconds']} s", flush=True)
    wall = time.perf_counter() - total
    print(pd.DataFrame(rows).round(3).to_string(index=False))
    print(f"\nnotebook 08 experiments: {wall:.0f} s ({wall / 60:.1f} min; target <= 10 min at default) "
          f"with {args.seeds} seeds, threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    figures = [figure(f"difference_{r['cause']}", f"mitigation of {r['cause'].replace('_', ' ')}: {r['method']} "
                      f"(recovery treated − generic control, {r['unlearned']} unlearned)", r["difference"], digits=3,
                      ci=(r["ci_lo"], r["ci_hi"]), signed=True, n=args.seeds,
                      note=f"treated {r['treated']:.3f}, generic {r['generic']:.3f}, placebo {r['placebo']:.3f}; "
                           + ("cause-specific" if r["cause_specific"] else "not shown cause-specific"))
               for r in rows]
    figures.append(figure("wall_s", f"notebook 08's experiments ({len(rows)} causes, treated + generic + placebo + unmodified, "
                          f"{args.seeds} seeds)", wall, "s", digits=0, note="target <= 10 min at default"))
    write_results(args, __file__, figures, preset=args.preset, seeds={"mitigation": list(range(args.seeds))},
                  extra={"rows": rows})


if __name__ == "__main__":
    main()
