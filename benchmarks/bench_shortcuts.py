"""Benchmark: model-free baselines (shortcuts) on a world, beside the diagnosis.

Runs the baselines of `ilpnb.diagnose.baselines` — response length, stage, normalised
duplicates, option content, a cross-validated surface classifier, a corpus lookup and the
rules stacked — on a world folder and prints their macro-F1 and per-cause F1 (the project's
scorer). With `--run`, also scores that run's `diagnosis.parquet` and the baselines restricted
to its unlearned samples, the set the diagnosis is scored on. The goal of DESIGN.md ("No
shortcuts"): every baseline that reads only `sft.jsonl` stays <= 0.45 on the default world.

    python benchmarks/bench_shortcuts.py [--world DIR] [--run RUN] [--seed 0] [--folds 5] [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_shortcuts.json`` (or
PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from ilpnb.figures import add_json_option, figure, write_results

GOAL = 0.45


def _world_of_run(run: Path) -> Path | None:
    cfg = run / "config.json"
    if not cfg.exists():
        return None
    world = json.loads(cfg.read_text()).get("world")
    return Path(world) if world else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", default=None,
                        help="a world folder (default: the run's world, else the 'default' preset's, generated)")
    parser.add_argument("--run", default=None, help="an SFT run folder with diagnosis.parquet")
    parser.add_argument("--seed", type=int, default=0, help="seed of the surface classifier's folds")
    parser.add_argument("--folds", type=int, default=5)
    add_json_option(parser)
    args = parser.parse_args()
    import pandas as pd

    from ilpnb.diagnose.attribution import CAUSE_ORDER
    from ilpnb.diagnose.baselines import max_sft_only_macro_f1, score_baselines
    from ilpnb.diagnose.scoring import read_truth_file, score_diagnosis

    pd.set_option("display.width", 200)
    run = Path(args.run) if args.run else None
    world = Path(args.world) if args.world else (_world_of_run(run) if run else None)
    preset, seeds = None, {"surface folds": [args.seed]}
    if world is None:
        from ilpnb.config import get_preset
        from ilpnb.data.world import generate_world

        preset, seeds["world"] = "default", [get_preset("default").world.seed]
        world = generate_world(get_preset("default").world, Path(tempfile.mkdtemp(prefix="ilpnb-shortcuts-")) / "world")
        print(f"world: the 'default' preset's, generated in {world}")
    else:
        print(f"world: {world}")

    cols = ["name", "reads", "macro_f1", *CAUSE_ORDER, "detail"]
    figures: list[dict] = []
    t0 = time.perf_counter()
    table = score_baselines(world, folds=args.folds, seed=args.seed)
    print(f"\nbaselines over all {table.attrs['scored']} samples ({time.perf_counter() - t0:.1f} s)")
    print(table[cols].round(3).to_string(index=False))

    if run is not None:
        diagnosis = pd.read_parquet(run / "diagnosis.parquet")
        truth = read_truth_file(world / "truth.jsonl")
        score = score_diagnosis(diagnosis, truth)
        unlearned = diagnosis.loc[~diagnosis["learned"].astype(bool), "id"].astype(str).tolist()
        print(f"\ndiagnosis of {run}: macro-F1 {score.macro_f1:.3f} over {score.scored} unlearned samples")
        if unlearned:
            sub = score_baselines(world, ids=unlearned, folds=args.folds, seed=args.seed)
            row = {"name": "diagnosis", "reads": "model", "macro_f1": score.macro_f1,
                   **score.per_cause["f1"].to_dict(), "detail": f"{run}/diagnosis.parquet"}
            sub = pd.concat([pd.DataFrame([row]), sub], ignore_index=True)
            print(f"\nthe diagnosis and the baselines over the {len(unlearned)} unlearned samples")
            print(sub[cols].round(3).to_string(index=False))
            print(f"max sft-only baseline macro-F1 over the unlearned samples: {max_sft_only_macro_f1(sub):.2f}")
            figures += [
                figure("diagnosis_macro_f1_unlearned", f"diagnosis of the run, over its {score.scored} unlearned "
                       "samples", score.macro_f1, "", digits=3, note="macro-F1"),
                figure("max_sft_only_macro_f1_unlearned", "best shortcut baseline reading only sft.jsonl, over the "
                       "run's unlearned samples", max_sft_only_macro_f1(sub), "", digits=2,
                       note=f"macro-F1, {_best(sub)}"),
            ]
    print(f"\nmax sft-only baseline macro-F1: {max_sft_only_macro_f1(table):.2f} (goal <= {GOAL})")
    where = f"the 'default' world, all {table.attrs['scored']} samples" if preset else f"world {world}"
    head = [figure("max_sft_only_macro_f1", f"best shortcut baseline reading only sft.jsonl ({where})",
                   max_sft_only_macro_f1(table), "", digits=2, note=f"macro-F1, {_best(table)}; goal <= {GOAL}")]
    corpus = table.loc[table["name"] == "corpus", "macro_f1"]
    if len(corpus):
        head.append(figure("corpus_macro_f1", f"corpus baseline, reads pretrain.txt too ({where})",
                           float(corpus.iloc[0]), "", digits=2, note="macro-F1"))
    write_results(args, __file__, head + figures, preset=preset, seeds=seeds)


def _best(table) -> str:
    """The name of the sft-only baseline with the highest macro-F1."""
    from ilpnb.diagnose.baselines import SFT_ONLY

    sft = table[table["reads"] == SFT_ONLY]
    return str(sft.loc[sft["macro_f1"].idxmax(), "name"]) if sft["macro_f1"].notna().any() else "none"


if __name__ == "__main__":
    main()
