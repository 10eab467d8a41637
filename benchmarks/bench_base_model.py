"""Benchmark: the world's tiny base model at a preset — pretraining time, knowledge recall
and planting fidelity.

Prints the wall time of pretraining (from scratch, in a fresh cache), the greedy recall of
facts the corpus states vs facts it never states (with chance levels), the same for the
multiple-choice probe, recall per relation, and the planting fidelity of the world on this
base model (`ilpnb.probe.fidelity`). Targets at the `default` preset, on a fresh 2-core
machine with either thread count: recall of stated facts >= 95%, every fidelity share >= 95%
for none / pretrain_conflict / missing_knowledge, pretraining <= about 4 minutes. Run it
with `--threads 1` and `--threads 2`; the load average is printed, as other jobs on the
cores slow the timing (not the figures: training is seeded).

    python benchmarks/bench_base_model.py [--preset default] [--threads N] [--keep-cache] [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_base_model.json``
(or PATH; give one path per thread count) for the README's table (``make figures``).
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
    parser.add_argument("--keep-cache", action="store_true", help="reuse a cached model (skips the timing)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_json_option(parser)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="ilpnb-bench-"))
    if not args.keep_cache:
        os.environ["ILPNB_CACHE"] = str(tmp / "cache")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)

    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.models.pretrain import pretrain_base_model, pretrain_info
    from ilpnb.pipeline.workbench import load_base_model
    from ilpnb.probe.fidelity import planting_fidelity
    from ilpnb.probe.knowledge import probe_report, read_probes, run_probes, summarize_probes

    preset = get_preset(args.preset)
    world = generate_world(preset.world, tmp / "world")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    start = time.perf_counter()
    path = pretrain_base_model(world / "pretrain.txt", preset.model, preset.pretrain, progress=False)
    wall = time.perf_counter() - start
    info = pretrain_info(path)
    model, tok = load_base_model(path)
    report = probe_report(run_probes(model, tok, read_probes(world / "probes.jsonl")), world)
    table = summarize_probes(report)
    print(f"preset {args.preset}: {info['parameters']:,} parameters, {info['tokens_per_epoch']:,} tokens/epoch, "
          f"{preset.pretrain.epochs} epochs, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"pretraining wall time: {wall:.1f} s ({wall / 60:.2f} min; target <= 4 min); "
          f"load average {load:.2f} before, {end_load:.2f} after")
    print(table.round(3).to_string())
    stated, unstated = table.loc["stated"], table.loc["unstated"]
    print(f"recall stated {stated.greedy_recall:.1%} (target >= 95%); unstated {unstated.greedy_recall:.1%} "
          f"vs chance {unstated.chance_recall:.1%} (ratio {unstated.greedy_recall / unstated.chance_recall:.2f})")
    print(report[report["stated"]].groupby("relation")["recall"].agg(["mean", "size"]).round(3).to_string())
    fidelity = planting_fidelity(world, model, tok)
    print("planting fidelity (target >= 95% for none, pretrain_conflict, missing_knowledge):")
    print(fidelity.round(3).to_string())
    threads = torch.get_num_threads()
    figures = [
        figure("recall_stated", f"tiny base model ({args.preset}): recall of facts the corpus states",
               100 * stated.greedy_recall, "%", digits=1, n=int(stated.facts)),
        figure("recall_unstated", f"tiny base model ({args.preset}): recall of facts it never states",
               100 * unstated.greedy_recall, "%", digits=1, n=int(unstated.facts),
               note=f"chance {100 * unstated.chance_recall:.1f}%"),
        figure("pretrain_s", f"its pretraining time ({preset.pretrain.epochs} epochs, {threads} threads)", wall, "s",
               digits=0, note=f"load average {load:.2f} before, {end_load:.2f} after"),
    ]
    figures += [figure(f"fidelity_{row.cause}", f"planting fidelity ({args.preset}), {row.cause}: {row.criterion}",
                       100 * row.share, "%", digits=1, n=int(row.samples)) for row in fidelity.itertuples()]
    write_results(args, __file__, figures, preset=args.preset, seeds={"world": [preset.world.seed],
                                                                     "pretrain": [preset.pretrain.seed]})
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
