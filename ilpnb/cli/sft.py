"""The ``ilpnb sft`` and ``ilpnb stability`` subcommands (registered in :mod:`ilpnb.cli`).

    ilpnb sft --model M --data FILE --out RUN [--preset P] [--world DIR] [--lora]
              [--epochs N] [--lr X] [--batch-size B] [--criterion C]
              [--stages sequential|mixed] [--ordered] [--eval-every epoch|K]
              [--max-length L] [--resume] [--seed S]
    ilpnb stability RUN_A RUN_B [--criterion C]

``ilpnb sft`` fine-tunes with per-sample tracking (:func:`ilpnb.train.sft.run_sft`) and
prints where ``dynamics.parquet`` is and the share of samples still unlearned at the end.
It runs unchanged under ``torchrun`` / ``accelerate launch`` (only rank 0 prints).
``ilpnb stability`` prints the agreement (Cohen's kappa) of the unlearned sets of two runs.
A bad SFT file, an existing run folder or a bad flag exits with code 2 and a one-line
reason; a non-finite training loss exits with code 3 naming the last good checkpoint.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ilpnb.cli.registry import arguments, command

__all__ = ["sft_overrides"]


def _eval_every(text: str) -> str | int:
    if text == "epoch":
        return text
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'epoch' or a number of steps, got {text!r}") from None
    if k < 1:
        raise argparse.ArgumentTypeError(f"expected a positive number of steps, got {k}")
    return k


def _sft_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="model: registered short name, local folder or Hugging Face name "
                                   "(default with --world: the world's tiny base model)")
    p.add_argument("--data", help="SFT file (JSONL records, Alpaca or chat) or registered dataset name "
                                  "(default with --world: WORLD/sft.jsonl)")
    p.add_argument("--out", required=True, help="run folder to create (never overwritten; --resume continues it)")
    p.add_argument("--preset", default="default", help="smoke, default or full (default: default)")
    p.add_argument("--world", help="world folder: its SFT set and its tiny base model")
    p.add_argument("--lora", action="store_true", default=None, help="fine-tune LoRA adapters (peft) only")
    p.add_argument("--epochs", type=int, help="the most epochs per stage: the cap of the convergence rule "
                                              "(the exact count with --no-converge; default: the preset's)")
    p.add_argument("--no-converge", dest="converge", action="store_false", default=None,
                   help="train exactly --epochs per stage instead of stopping when converged")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="samples per step and device (default: the preset's)")
    p.add_argument("--criterion", choices=("exact", "token_acc", "loss", "mc"),
                   help="what 'learned' means at the end (default: the preset's, exact)")
    p.add_argument("--stages", choices=("sequential", "mixed"), default="sequential",
                   help="train records' stages in order, or all together (default: sequential)")
    p.add_argument("--ordered", action="store_true", default=None, help="keep the data order (no shuffling)")
    p.add_argument("--eval-every", type=_eval_every, help="evaluation points: 'epoch' or every K steps")
    p.add_argument("--max-length", type=int, help="longest sequence in tokens (longer ones are truncated and counted)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted run in --out")
    p.add_argument("--seed", type=int, help="seed of data order and LoRA initialisation")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    p.add_argument("--max-samples", type=int, help="train on a seeded subset of this many records "
                                                 "(default for a real model: the real-track preset's)")


def sft_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The :class:`ilpnb.config.SFTConfig` fields given on the command line."""
    names = {"epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "criterion": "criterion",
             "ordered": "ordered", "eval_every": "eval_every", "seed": "seed", "lora": "lora",
             "converge": "converge"}
    return {field: getattr(args, flag) for flag, field in names.items() if getattr(args, flag, None) is not None}


def _is_main() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


@command("sft", "fine-tune a causal LM with per-sample learning dynamics into a run folder")
@arguments(_sft_arguments)
def _sft(args: argparse.Namespace) -> int:
    import pandas as pd

    from ilpnb.train.sft import run_sft
    from ilpnb.train.trainer import NonFiniteLossError

    if args.world is None and (args.model is None or args.data is None):
        raise ValueError("give --model and --data, or --world")
    job: dict[str, Any] = {"stages": args.stages}
    overrides = sft_overrides(args)
    if args.world is None and not Path(args.model).exists():
        # a registered or hub model (a real LLM, not a local tiny one): the real track's settings
        # unless flags say otherwise
        from ilpnb.pipeline.realtrack import real_settings

        real = real_settings(args.preset)
        defaults = {"lora": True, "lr": real.lora_lr, "lora_r": real.lora_r, "epochs": real.epochs,
                    "batch_size": real.batch_size}
        if overrides.get("lora") is False or "lr" in overrides:
            defaults = {k: v for k, v in defaults.items() if k in ("epochs", "batch_size")}
        overrides = {**defaults, **overrides}
        job["max_length"] = real.max_length
        job["max_samples"] = real.samples
        if _is_main():
            print(f"real model: preset '{args.preset}' uses {overrides} on "
                  f"{real.samples or 'all'} samples (override with flags)", file=sys.stderr)
    if args.max_samples is not None:
        job["max_samples"] = args.max_samples
    if args.max_length is not None:
        job["max_length"] = args.max_length
    try:
        out = run_sft(args.out, model=args.model, data=args.data, world=args.world, preset=args.preset,
                      sft=overrides, resume=args.resume, progress=not args.no_progress, **job)
    except NonFiniteLossError as err:
        print(f"ilpnb sft: stopped: {err}", file=sys.stderr)
        return 3
    if not _is_main():
        return 0
    samples = pd.read_parquet(Path(out) / "samples.parquet")
    unlearned = int((~samples["learned"].astype(bool)).sum())
    criterion = _stored_criterion(out)
    if (Path(out) / "convergence.json").exists():
        from ilpnb.train.convergence import describe

        print(describe(json.loads((Path(out) / "convergence.json").read_text())["stages"]))
    print(f"dynamics: {Path(out) / 'dynamics.parquet'}")
    print(f"unlearned at the end ({criterion}): {unlearned} of {len(samples)} samples "
          f"({unlearned / max(len(samples), 1):.1%})")
    return 0


def _stored_criterion(run: str | Path) -> str:
    from ilpnb.runs import RunFolder

    return str(RunFolder.open(run).config.get("sft", {}).get("criterion", "exact"))


def _samples(run: str, criterion: str | None) -> Any:
    import pandas as pd

    from ilpnb.train.derived import summarize_samples
    from ilpnb.train.sft import load_dynamics

    path = Path(run)
    if criterion is None and (path / "samples.parquet").exists():
        return pd.read_parquet(path / "samples.parquet")
    return summarize_samples(load_dynamics(path), criterion or _stored_criterion(path))


@command("stability", "agreement (Cohen's kappa) of the unlearned sets of two runs, e.g. two seeds")
@arguments(lambda p: (p.add_argument("run_a", metavar="RUN_A", help="first run folder"),
                      p.add_argument("run_b", metavar="RUN_B", help="second run folder"),
                      p.add_argument("--criterion", choices=("exact", "token_acc", "loss", "mc"),
                                     help="recompute 'learned' with this criterion (default: each run's own)")))
def _stability(args: argparse.Namespace) -> int:
    from ilpnb.train.derived import seed_agreement

    agree = seed_agreement(_samples(args.run_a, args.criterion), _samples(args.run_b, args.criterion))
    if agree["samples"] == 0:
        raise ValueError(f"{args.run_a} and {args.run_b} share no sample ids")
    print(f"Cohen's kappa of the unlearned sets: {agree['kappa']:.3f} over {agree['samples']} samples")
    print(f"same verdict: {agree['agreement']:.1%}; unlearned: {agree['unlearned_a']:.1%} (A), "
          f"{agree['unlearned_b']:.1%} (B); Jaccard of the unlearned sets: {agree['jaccard']:.3f}")
    return 0
