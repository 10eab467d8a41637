"""Benchmark: the world's tiny base model at a preset — pretraining time and knowledge recall.

Prints the wall time of pretraining (from scratch, in a fresh cache), the greedy recall of
facts the corpus states vs facts it never states (with chance levels), and the same for the
multiple-choice probe. Targets of the foundation issue at the `default` preset: recall of
stated facts >= 90%, unstated near chance, pretraining <= 5 minutes on 2 CPU cores.

    python benchmarks/bench_base_model.py [--preset default] [--keep-cache]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--keep-cache", action="store_true", help="reuse a cached model (skips the timing)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
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
    from ilpnb.probe.knowledge import probe_report, read_probes, run_probes, summarize_probes
    from ilpnb.workbench import load_base_model

    preset = get_preset(args.preset)
    world = generate_world(preset.world, tmp / "world")
    start = time.perf_counter()
    path = pretrain_base_model(world / "pretrain.txt", preset.model, preset.pretrain, progress=False)
    wall = time.perf_counter() - start
    info = pretrain_info(path)
    model, tok = load_base_model(path)
    table = summarize_probes(probe_report(run_probes(model, tok, read_probes(world / "probes.jsonl")), world))
    print(f"preset {args.preset}: {info['parameters']:,} parameters, {info['tokens_per_epoch']:,} tokens/epoch, "
          f"{preset.pretrain.epochs} epochs, torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}")
    print(f"pretraining wall time: {wall:.1f} s ({wall / 60:.2f} min; target <= 5 min)")
    print(table.round(3).to_string())
    stated, unstated = table.loc["stated"], table.loc["unstated"]
    print(f"recall stated {stated.greedy_recall:.1%} (target >= 90%); unstated {unstated.greedy_recall:.1%} "
          f"vs chance {unstated.chance_recall:.1%} (ratio {unstated.greedy_recall / unstated.chance_recall:.2f})")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
