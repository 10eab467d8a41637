"""The ``ilpnb`` command line: one subcommand per step of the workbench.

    ilpnb world --config CONFIG.json --out DIR      generate a controlled world
    ilpnb pretrain --world DIR [--preset P]         pretrain (or fetch) its tiny base model
    ilpnb probe --world DIR [--preset P]            knowledge-probe report of the base model
    ilpnb run [--preset P] [--only 00,01] [--out DIR] [--resume]
                                                    execute the numbered notebooks

Subcommands of later steps register themselves in :data:`COMMANDS`.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

__all__ = ["main", "build_parser", "COMMANDS"]

#: name -> (help, add_arguments, run); each ``run(args)`` returns an exit code.
COMMANDS: dict[str, tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]] = {}


def command(name: str, help: str) -> Callable:
    """Register a subcommand: decorate ``run(args)``; ``run.add_arguments(parser)`` adds flags."""

    def wrap(fn: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
        COMMANDS[name] = (help, getattr(fn, "arguments", lambda p: None), fn)
        return fn

    return wrap


def arguments(adder: Callable[[argparse.ArgumentParser], None]) -> Callable:
    """Attach an argument adder to a command function (use below ``@command``)."""

    def wrap(fn: Callable) -> Callable:
        fn.arguments = adder  # type: ignore[attr-defined]
        return fn

    return wrap


def _preset_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--preset", default="default", help="smoke, default or full (default: default)")


@command("world", "generate a controlled world folder from a JSON config")
@arguments(lambda p: (p.add_argument("--config", help="world config JSON (default: the preset's world)"),
                      p.add_argument("--out", required=True, help="world folder to write"),
                      _preset_arg(p)))
def _world(args: argparse.Namespace) -> int:
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.data.world_config import load_world_config

    cfg = load_world_config(args.config) if args.config else get_preset(args.preset).world
    out = generate_world(cfg, args.out)
    counts = json.loads((out / "world.json").read_text())["counts"]
    print(f"world written to {out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


@command("pretrain", "pretrain (or fetch from cache) the tiny base model of a world")
@arguments(lambda p: (p.add_argument("--world", required=True, help="world folder"), _preset_arg(p)))
def _pretrain(args: argparse.Namespace) -> int:
    from ilpnb.config import get_preset
    from ilpnb.models.pretrain import pretrain_base_model, pretrain_info

    p = get_preset(args.preset)
    path = pretrain_base_model(Path(args.world) / "pretrain.txt", p.model, p.pretrain)
    info = pretrain_info(path)
    print(f"base model: {path} ({info['parameters']:,} parameters, pretrained in {info['seconds']:.0f} s)")
    return 0


@command("probe", "knowledge-probe report of a world's base model (stated vs unstated facts)")
@arguments(lambda p: (p.add_argument("--world", required=True, help="world folder"), _preset_arg(p)))
def _probe(args: argparse.Namespace) -> int:
    from ilpnb.config import get_preset
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.probe.knowledge import probe_report, read_probes, run_probes, summarize_probes
    from ilpnb.workbench import load_base_model

    p = get_preset(args.preset)
    model, tok = load_base_model(pretrain_base_model(Path(args.world) / "pretrain.txt", p.model, p.pretrain))
    report = probe_report(run_probes(model, tok, read_probes(Path(args.world) / "probes.jsonl")), args.world)
    print(summarize_probes(report).round(3).to_string())
    return 0


@command("run", "execute the numbered notebooks into a new run folder")
@arguments(lambda p: (_preset_arg(p),
                      p.add_argument("--only", help="comma-separated notebook numbers, e.g. 00,01"),
                      p.add_argument("--out", help="run folder (default: runs/<preset>-<time>)"),
                      p.add_argument("--resume", action="store_true", help="continue an interrupted run"),
                      p.add_argument("--keep-going", action="store_true",
                                     help="run the later notebooks after one fails; report every failure at the end")))
def _run(args: argparse.Namespace) -> int:
    from ilpnb.notebook_runner import NotebookError, NotebooksFailedError, run_notebooks

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    try:
        path = run_notebooks(preset=args.preset, out=args.out, only=only, resume=args.resume,
                             keep_going=args.keep_going)
    except NotebookError as err:  # the message names each failed notebook and its executed copy
        run = err.run if isinstance(err, NotebooksFailedError) else err.executed.parent.parent
        print(f"ilpnb run: {err}\nResults: {run / 'index.html'}", file=sys.stderr)
        return 1
    print(f"Results: {Path(path) / 'index.html'}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    _load_plugins()
    parser = argparse.ArgumentParser(prog="ilpnb", description="What did supervised fine-tuning fail to learn, and why?")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _load_plugins() -> None:
    """Import the modules that register later subcommands (missing ones are skipped)."""
    import importlib

    for module in ("ilpnb.train.cli", "ilpnb.diagnose.cli", "ilpnb.mitigate.cli", "ilpnb.interactions.cli"):
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ilpnb`` command."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as err:
        print(f"ilpnb {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover - use the registry of the imported module
    from ilpnb.cli import main as _main

    sys.exit(_main())
