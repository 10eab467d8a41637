"""``ilpnb interactions RUN``: interaction dynamics across the checkpoints of a fine-tuning run.

    ilpnb interactions RUN [--prompts FILE] [--checkpoints 0,4,8] [--n-players N]
                           [--baseline zero|mean|learned] [--target gold|response|greedy]
                           [--n-prompts K] [--reference MODEL|auto|none] [--and-only]
                           [--rule net|turn|plateau] [--salient-scale own|base] [--preset P] [--fresh]

Writes ``RUN/interactions.parquet``, ``RUN/interaction_summary.parquet``,
``RUN/interaction_orders.parquet`` and ``RUN/interaction_stopping.json`` (see
:mod:`ilpnb.pipeline.sweep`); a second call skips the checkpoints already computed.
"""

from __future__ import annotations

import argparse
from typing import Any

from ilpnb.cli.registry import arguments, command

__all__ = ["add_arguments", "run_interactions"]


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``ilpnb interactions``."""
    p.add_argument("run", help="fine-tuning run folder (from `ilpnb sft` or run_sft)")
    p.add_argument("--prompts", help="held-out prompts: an SFT-record file with gold answers "
                                     "(default for a world run: held-out world questions)")
    p.add_argument("--checkpoints", help="comma-separated steps (default: all; the base model, step 0, is always used)")
    p.add_argument("--n-players", type=int, help="players per prompt at most (default 10)")
    p.add_argument("--baseline", choices=("zero", "mean", "learned"), help="masking baseline (default zero)")
    p.add_argument("--target", choices=("gold", "response", "greedy"),
                   help="what v scores: the gold answer's first token (default), the whole gold answer, "
                        "or each model's own first token")
    p.add_argument("--n-prompts", type=int, help="held-out world prompts to draw (default: 8 smoke, 24 default)")
    p.add_argument("--reference", help="second model for the generalisation ratio: a folder or name, "
                                       "'auto' (a world run: the world's base model of another "
                                       "architecture) or 'none'")
    p.add_argument("--salient-scale", choices=("own", "base"),
                   help="salience threshold relative to each checkpoint's own max|I| (default) or the base model's")
    p.add_argument("--and-only", action="store_true", help="AND and OR transforms, no AND-OR fit")
    p.add_argument("--rule", choices=("net", "turn", "plateau"), help="end-of-denoising rule (default net)")
    p.add_argument("--preset", help="preset of the settings (default: the run's)")
    p.add_argument("--fresh", action="store_true", help="discard earlier interaction results of the run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")


@command("interactions", "interaction dynamics across the checkpoints of a fine-tuning run, and early stopping")
@arguments(add_arguments)
def run_interactions(args: argparse.Namespace) -> int:
    """Run the sweep and print the per-checkpoint summary and the stopping points."""
    from ilpnb.pipeline.sweep import interaction_dynamics

    changes: dict[str, Any] = {}
    for flag, name in (("n_players", "max_players"), ("baseline", "baseline"), ("target", "target"),
                       ("n_prompts", "n_prompts"), ("reference", "reference"), ("rule", "stop_rule"),
                       ("salient_scale", "salient_scale")):
        value = getattr(args, flag)
        if value is not None:
            changes[name] = value
    if args.and_only:
        changes["and_or"] = False
    tables = interaction_dynamics(args.run, prompts=args.prompts, checkpoints=args.checkpoints,
                                  preset=args.preset, fresh=args.fresh, progress=not args.quiet, **changes)
    cols = ["step", "n_preserved", "n_emerged", "n_removed", "rho_salient", "gamma_salient", "val_loss",
            "heldout_acc"]
    print(tables.summary[[c for c in cols if c in tables.summary]].round(3).to_string(index=False))
    stop = tables.stopping
    print(f"interaction-based stop: step {stop['interaction']['step']} — {stop['interaction']['reason']}")
    if stop.get("loss"):
        print(f"loss-based stop:        step {stop['loss']['step']} — {stop['loss']['reason']}")
    print(f"written to {tables.run}: interactions.parquet, interaction_summary.parquet, "
          "interaction_orders.parquet, interaction_stopping.json")
    return 0
