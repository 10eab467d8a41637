"""The ``ilpnb`` command line: one subcommand per step of the workbench.

    ilpnb world --config CONFIG.json --out DIR      generate a controlled world
    ilpnb pretrain --world DIR [--preset P]         pretrain (or fetch) its tiny base model
    ilpnb probe --world DIR [--preset P]            knowledge-probe report of the base model
    ilpnb run [--preset P] [--only 00,01] [--out DIR] [--resume]
                                                    execute the numbered notebooks

Each command module (:mod:`.world`, :mod:`.sft`, :mod:`.diagnose`, :mod:`.mitigate`,
:mod:`.interactions`) registers its subcommands in :data:`COMMANDS` (:mod:`.registry`); this
module imports them, never the reverse.
"""

from __future__ import annotations

import argparse
import sys

from ilpnb.cli.registry import COMMANDS, arguments, command

__all__ = ["main", "build_parser", "COMMANDS", "command", "arguments"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every registered subcommand."""
    _load_plugins()
    parser = argparse.ArgumentParser(prog="ilpnb", description="What did supervised fine-tuning fail to learn, and why?")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (help_text, add, _) in COMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def _load_plugins() -> None:
    """Import the command modules (each registers its subcommands in :data:`COMMANDS`)."""
    # imported when a parser is built, not with the package: the commands' modules load the steps
    from ilpnb.cli import world  # noqa: F401, I001  (registration; ``world`` first: the help lists it first)
    from ilpnb.cli import sft, diagnose, mitigate, interactions  # noqa: F401, I001


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``ilpnb`` command."""
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command][2](args)
    except (ValueError, FileExistsError, FileNotFoundError, KeyError) as err:
        print(f"ilpnb {args.command}: error: {err}", file=sys.stderr)
        return 2


