"""Benchmark: does the fine-tuned model still know what its base model knew?

Generates the preset's world, pretrains its tiny base model (cached under the output folder),
fine-tunes it with the preset's SFT (until converged, as the diagnosis does; stage-end
checkpoints kept), then runs the world's knowledge probes on the base model and on each
stage's end (``ilpnb.probe.retention``). Prints recall of stated facts and the probability of
the right option (``mc_p_gold``, blind to answer style) per checkpoint and per group of
subjects: those SFT trained on, by stage, and those it never saw.

The diagnosis and the planting are read on the base model; this shows how much of that still
describes the fine-tuned model. ``--sft`` overrides SFT settings (JSON), e.g. to compare
full fine-tuning with LoRA: ``--sft '{"lora": true, "lora_r": 4, "lr": 2e-3}'``.

    python benchmarks/bench_retention.py [--preset default] [--threads N] [--sft JSON] [--out DIR] [--json [PATH]]

``--out`` keeps the world, model and run (and reuses them when run again with the same
settings); ``--json`` writes the headline figures to ``benchmarks/results/bench_retention.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--sft", default="{}", help="SFT overrides as JSON (default: the preset's SFT)")
    parser.add_argument("--seed", type=int, default=0, help="SFT seed")
    parser.add_argument("--out", default=None, help="folder to keep world, model and run in (default: temporary)")
    add_json_option(parser)
    args = parser.parse_args()
    overrides = {**json.loads(args.sft), "seed": args.seed}
    keep = args.out is not None
    root = Path(args.out) if keep else Path(tempfile.mkdtemp(prefix="ilpnb-bench-retention-"))
    root.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("ILPNB_CACHE", str(root / "cache"))

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.pipeline.steps import settings_hash
    from ilpnb.probe.retention import NOT_IN_SFT, knowledge_retention, retention_summary
    from ilpnb.train.sft import run_sft

    preset = get_preset(args.preset)
    world = generate_world(preset.world, root / "world")
    start = time.perf_counter()
    pretrain_base_model(world / "pretrain.txt", preset.model, preset.pretrain, progress=False)
    run_dir = root / f"run-{settings_hash(overrides)}"
    run = run_dir if (run_dir / "samples.parquet").exists() else run_sft(
        run_dir, world=world, preset=args.preset, sft=overrides, checkpoints="stages", progress=False,
        resume=run_dir.exists())
    convergence = json.loads((Path(run) / "convergence.json").read_text())
    trained = time.perf_counter() - start
    table = knowledge_retention(run)
    print(f"preset {args.preset}, SFT overrides {overrides}, torch threads {torch.get_num_threads()}, "
          f"world seed {preset.world.seed}; pretraining + SFT {trained:.0f} s")
    for k, stage in enumerate(convergence.get("stages", [])):
        print(f"stage {k}: {'converged' if stage.get('converged') else 'not converged'} at epoch {stage.get('epoch')}")
    print("recall of stated facts (greedy, exact answer) by checkpoint and subject group:")
    print(retention_summary(table, "recall").round(3).to_string())
    print("probability of the right option among the probe's options (blind to answer style):")
    print(retention_summary(table, "mc_p_gold").round(3).to_string())
    base = table[table["checkpoint"] == "base"].set_index("group")
    end = table[table["step"] == table["step"].max()].set_index("group")
    trained_groups = [g for g in base.index if g != NOT_IN_SFT]

    def share(frame, groups, col):
        g = frame.loc[groups]
        return float((g[col] * g["facts"]).sum() / g["facts"].sum())

    lines, figures = [], []
    for label, groups in (("subjects SFT trained on", trained_groups), ("subjects SFT never saw", [NOT_IN_SFT])):
        if not all(g in base.index and g in end.index for g in groups) or not groups:
            continue
        b, e = share(base, groups, "recall"), share(end, groups, "recall")
        pb, pe = share(base, groups, "mc_p_gold"), share(end, groups, "mc_p_gold")
        lines.append(f"{label}: recall {b:.1%} at the base -> {e:.1%} after SFT; mc_p_gold {pb:.3f} -> {pe:.3f}")
        key = "trained" if "trained" in label else "unseen"
        figures.append(figure(f"recall_after_sft_{key}", f"recall of stated facts after SFT ({args.preset}), "
                              f"{label}", 100 * e, "%", digits=1, n=int(end.loc[groups, "facts"].sum()),
                              note=f"base model {100 * b:.1f}%"))
    for line in lines:
        print(line)
    write_results(args, __file__, figures, preset=args.preset,
                  seeds={"world": [preset.world.seed], "pretrain": [preset.pretrain.seed], "sft": [args.seed]})
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
