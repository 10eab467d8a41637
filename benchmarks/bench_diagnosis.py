"""Benchmark: diagnosis quality (macro-F1 against the planted truth) over worlds it was not
tuned on — other seeds, other mixes of `counts`, other sizes — at a preset's model and SFT.

For each world: generate it, pretrain its base model (cached), fine-tune with per-sample
tracking, diagnose, and score over the unlearned samples. Prints per-cause F1 per world, the
macro-F1 per world, and the mean and minimum over worlds; also the wall time of each step.

    python benchmarks/bench_diagnosis.py [--preset default] [--worlds 5] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

WORLDS = [
    ("seed 0, default mix", {"seed": 0}),
    ("seed 1, default mix", {"seed": 1}),
    ("seed 2, default mix", {"seed": 2}),
    ("seed 3, skewed mix", {"seed": 3, "counts": {"none": 120, "missing_knowledge": 50, "pretrain_conflict": 15,
                                                  "data_conflict": 40, "left_forgetting": 20, "rare_pattern": 25}}),
    ("seed 4, small world", {"seed": 4, "counts": {"none": 60, "missing_knowledge": 12, "pretrain_conflict": 12,
                                                   "data_conflict": 12, "left_forgetting": 12, "rare_pattern": 12}}),
    ("seed 5, no forgetting", {"seed": 5, "counts": {"none": 150, "missing_knowledge": 40, "pretrain_conflict": 40,
                                                     "data_conflict": 30, "left_forgetting": 0, "rare_pattern": 30}}),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--worlds", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--out", default=None, help="folder for the worlds and runs (default: a temp folder)")
    args = parser.parse_args()
    import pandas as pd
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.data.world_config import WorldConfig
    from ilpnb.diagnose.attribution import write_diagnosis
    from ilpnb.diagnose.scoring import read_truth_file, score_diagnosis
    from ilpnb.train.sft import run_sft

    root = Path(args.out or tempfile.mkdtemp(prefix="ilpnb-diag-"))
    rows, f1s = [], {}
    for name, change in WORLDS[: args.worlds]:
        preset = get_preset(args.preset)
        cfg = WorldConfig.from_dict({**preset.world.to_dict(), **change})
        tag = name.split(",")[0].replace(" ", "")
        world = generate_world(cfg, root / f"world-{tag}")
        t0 = time.perf_counter()
        run = run_sft(root / f"run-{tag}", world=world, preset=args.preset, progress=False,
                      resume=(root / f"run-{tag}").exists())
        t1 = time.perf_counter()
        diagnosis = write_diagnosis(run)
        t2 = time.perf_counter()
        score = score_diagnosis(diagnosis, read_truth_file(world / "truth.jsonl"))
        f1s[name] = score.per_cause["f1"]
        rows.append({"world": name, "samples": len(diagnosis), "unlearned": score.scored,
                     "macro_f1": score.macro_f1, "pretrain+sft_s": round(t1 - t0, 1), "diagnose_s": round(t2 - t1, 1)})
        print(f"{name}: macro-F1 {score.macro_f1:.3f} over {score.scored} unlearned samples", flush=True)
    table = pd.DataFrame(rows).set_index("world")
    print()
    print(pd.DataFrame(f1s).T.round(3).to_string())
    print()
    print(table.round(3).to_string())
    print(f"\nmacro-F1 over {len(table)} worlds: mean {table['macro_f1'].mean():.3f}, min {table['macro_f1'].min():.3f} "
          f"(target >= 0.85); threads {torch.get_num_threads()}, cpus {os.cpu_count()}")


if __name__ == "__main__":
    main()
