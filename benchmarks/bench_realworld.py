"""Benchmark: the diagnosis scored on a real LLM with planted causes (the planted real world).

The whole chain a user runs, timed step by step: build the planted real world for the packaged
SmolLM2-135M-Instruct (``ilpnb.pipeline.realworld.build_realworld``: measure what it knows,
plant, verify; the knowledge table is cached per model, so say whether it was), fine-tune
with LoRA until the convergence rule holds (the real track's settings of the preset), diagnose
(the real track's evidence settings), and score against ``truth.jsonl`` beside every
model-free baseline on the same unlearned samples. Prints the planting fidelity, the
convergence verdict per stage, the unlearned share per planted cause, the per-cause F1 and
macro-F1 of the diagnosis and of the baselines, and the seconds of each step.

    python benchmarks/bench_realworld.py [--preset default] [--seeds 0 1] [--threads N] [--sft JSON]
                                         [--out DIR] [--json [PATH]]

``--seeds``: world seeds (the country draw and the planting; SFT seed 0). ``--sft``: SFT
overrides as JSON (e.g. ``'{"lr": 2e-3}'``). ``--out`` keeps the worlds and runs (reused when
run again); ``--json`` writes the headline figures to ``benchmarks/results/bench_realworld.json``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def _one(root: Path, preset: str, seed: int, overrides: dict) -> dict:
    import pandas as pd

    from ilpnb.diagnose.attribution import write_diagnosis
    from ilpnb.pipeline.realtrack import evidence_settings, real_job
    from ilpnb.pipeline.realworld import (
        _cache_dir,
        build_realworld,
        score_with_baselines,
        unlearned_by_cause,
        world_summary,
    )
    from ilpnb.train.convergence import describe
    from ilpnb.train.sft import run_sft

    world, run = root / f"world-seed{seed}", root / f"run-seed{seed}"
    cached = any(_cache_dir().glob("*.parquet"))
    t0 = time.perf_counter()
    reused = [name for name, done in (("build", (world / "world.json").exists()),
                                      ("SFT", (run / "samples.parquet").exists())) if done]
    if not (world / "world.json").exists():
        build_realworld(world, preset=preset, seed=seed, progress=False)
    t1 = time.perf_counter()
    job = real_job(preset)
    job["sft"] = {**job["sft"], "eval_every": "epoch", **overrides}
    if not (run / "samples.parquet").exists():
        run_sft(run, model="smollm2-135m-instruct", data=str(world / "sft.jsonl"), progress=False,
                resume=run.exists(), **job)
    t2 = time.perf_counter()
    diagnosis = write_diagnosis(run, evidence=evidence_settings(preset))
    t3 = time.perf_counter()
    scores = score_with_baselines(world, diagnosis)
    print(f"\n== world seed {seed} ({'knowledge cached' if cached else 'knowledge measured'}): "
          f"build {t1 - t0:.0f} s, SFT {t2 - t1:.0f} s, diagnosis {t3 - t2:.0f} s"
          + (f" ({' and '.join(reused)} reused from --out: not timed)" if reused else ""))
    with pd.option_context("display.width", 160, "display.max_colwidth", 60):
        print(world_summary(world)[["samples", "stages", "answer words", "fidelity"]].to_string())
        print(describe(json.loads((run / "convergence.json").read_text())["stages"]))
        print(unlearned_by_cause(world, diagnosis).round(2).to_string())
        print(scores.drop(columns=["reads"]).round(3).to_string())
    sft_only = scores[scores["reads"] == "sft.jsonl"]["macro_f1"]
    return {"seed": seed, "macro_f1": float(scores.loc["diagnosis", "macro_f1"]),
            "best_sft_only": float(sft_only.max()) if len(sft_only) else float("nan"),
            "scored": scores.attrs["scored"], "unlearned_share": scores.attrs["scored"] / len(diagnosis),
            "seconds": {"build": t1 - t0, "sft": t2 - t1, "diagnosis": t3 - t2}, "cached": cached,
            "reused": reused,
            "per_cause": scores.loc["diagnosis"].drop(["reads", "macro_f1"]).to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sft", default="{}", help="SFT overrides as JSON (default: the real track's)")
    parser.add_argument("--out", default=None, help="folder to keep worlds and runs in (default: temporary)")
    add_json_option(parser)
    args = parser.parse_args()
    keep = args.out is not None
    root = Path(args.out) if keep else Path(tempfile.mkdtemp(prefix="ilpnb-bench-realworld-"))
    root.mkdir(parents=True, exist_ok=True)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = json.loads(args.sft)
    print(f"preset {args.preset}, torch threads {torch.get_num_threads()}, SFT overrides {overrides}, "
          f"world seeds {args.seeds}")
    results = [_one(root, args.preset, seed, overrides) for seed in args.seeds]
    f1 = [r["macro_f1"] for r in results]
    base = [r["best_sft_only"] for r in results]
    # the chain is timed only where nothing was reused from --out
    chain = [sum(r["seconds"].values()) for r in results if not r["reused"]]
    sd = statistics.stdev(f1) if len(f1) > 1 else 0.0
    print(f"\nplanted real world, {len(f1)} world(s): diagnosis macro-F1 {statistics.mean(f1):.3f} "
          f"(sd {sd:.3f}, min {min(f1):.3f}); best sft.jsonl-only baseline {statistics.mean(base):.3f}; "
          f"unlearned {statistics.mean(r['unlearned_share'] for r in results):.1%}; "
          + (f"chain {statistics.mean(chain) / 60:.1f} min per world ({len(chain)} timed)" if chain
             else "chain not timed (every world reused a step)"))
    figures = [
        figure("realworld_macro_f1", f"diagnosis macro-F1 on the planted real world (SmolLM2-135M, {args.preset})",
               statistics.mean(f1), digits=3, sd=sd if len(f1) > 1 else None, min=min(f1), n=len(f1),
               note=f"best sft.jsonl-only baseline {statistics.mean(base):.3f}"),
    ]
    if chain:
        timed = [r for r in results if not r["reused"]]
        figures.append(figure(
            "realworld_chain_minutes", f"planted real world chain (build, SFT to convergence, diagnosis; "
            f"{args.preset})", statistics.mean(chain) / 60, "min", digits=1, n=len(chain),
            note="knowledge cached" if all(r["cached"] for r in timed) else "knowledge measured once"))
    write_results(args, __file__, figures, preset=args.preset, seeds={"world": args.seeds, "sft": [0]},
                  extra={"runs": results, "sft_overrides": overrides})
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
