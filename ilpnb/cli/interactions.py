"""``ilpnb interactions RUN``: interaction dynamics across the checkpoints of a fine-tuning run.

    ilpnb interactions RUN [--prompts FILE] [--checkpoints 0,4,8] [--interactions.FIELD VALUE ...]
                           [--and-only] [--preset P] [--fresh] [--quiet]

The settings are the ``interactions`` sub-tree of the preset (:class:`ilpnb.config.DynamicsConfig`),
one generated flag per field (``--interactions.max_players 8``); the short flags of earlier
versions stay as aliases (``--n-players``, ``--n-prompts``, ``--baseline``, ``--target``,
``--reference``, ``--rule``, ``--salient-scale``). Writes ``RUN/interactions.parquet``,
``RUN/interaction_summary.parquet``, ``RUN/interaction_orders.parquet`` and
``RUN/interaction_stopping.json`` (see :mod:`ilpnb.pipeline.sweep`); a second call skips the
checkpoints already computed.
"""

from __future__ import annotations

import argparse
from typing import Any

from ilpnb.cli.registry import arguments, command

__all__ = ["add_arguments", "run_interactions"]


#: the short flags of earlier versions, kept as aliases of the generated ``--interactions.*`` flags
ALIASES = {"max_players": ["--n-players"], "n_prompts": ["--n-prompts"], "baseline": ["--baseline"],
           "target": ["--target"], "reference": ["--reference"], "stop_rule": ["--rule"],
           "salient_scale": ["--salient-scale"]}
#: settings of the fine-tuning run the notebooks make (ilpnb.pipeline.interactions), not of this command
RUN_ONLY = ("sft_epochs", "sft_eval_every", "sft_stages")


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of ``ilpnb interactions``."""
    from ilpnb.cli.flags import add_setting_flags
    from ilpnb.config import DynamicsConfig

    p.add_argument("run", help="fine-tuning run folder (from `ilpnb sft` or run_sft)")
    p.add_argument("--prompts", help="held-out prompts: an SFT-record file with gold answers "
                                     "(default for a world run: held-out world questions)")
    p.add_argument("--checkpoints", help="comma-separated steps (default: all; the base model, step 0, is always used)")
    p.add_argument("--and-only", dest="interactions.and_or", action="store_const", const=False,
                   default=argparse.SUPPRESS,
                   help="the same as --interactions.and_or false: AND and OR transforms, no AND-OR fit")
    p.add_argument("--preset", help="preset of the settings (default: the run's)")
    p.add_argument("--fresh", action="store_true", help="discard earlier interaction results of the run")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    group = p.add_argument_group("interaction settings (the interactions sub-tree of the preset; default: "
                                 "the run's preset)")
    add_setting_flags(group, DynamicsConfig, "interactions", aliases=ALIASES, exclude=RUN_ONLY)


@command("interactions", "interaction dynamics across the checkpoints of a fine-tuning run, and early stopping")
@arguments(add_arguments)
def run_interactions(args: argparse.Namespace) -> int:
    """Run the sweep and print the per-checkpoint summary and the stopping points."""
    from ilpnb.cli.flags import given_settings
    from ilpnb.pipeline.sweep import interaction_dynamics

    changes: dict[str, Any] = {k.split(".", 1)[1]: v for k, v in given_settings(args, "interactions").items()}
    tables = interaction_dynamics(args.run, prompts=args.prompts, checkpoints=args.checkpoints,
                                  preset=args.preset, fresh=args.fresh, progress=not args.quiet, **changes)
    cols = ["step", "n_preserved", "n_emerged", "n_removed", "rho_salient", "gamma_salient", "val_loss",
            "test_loss", "test_acc", "test_ce_preserved", "test_ce_all"]
    print(tables.summary[[c for c in cols if c in tables.summary]].round(3).to_string(index=False))
    stop = tables.stopping
    split = stop.get("split", {})
    print(f"stopping chosen on {len(split.get('validation', []))} validation prompts, reported on "
          f"{len(split.get('test', []))} test prompts")
    print(f"interaction-based stop: step {stop['interaction']['step']} — {stop['interaction']['reason']}")
    if stop.get("loss"):
        print(f"loss-based stop:        step {stop['loss']['step']} — {stop['loss']['reason']}")
    print(f"written to {tables.run}: interactions.parquet, interaction_summary.parquet, "
          "interaction_orders.parquet, interaction_stopping.json, interaction_validation.parquet")
    return 0
