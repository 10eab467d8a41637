"""The subcommand registry of the ``ilpnb`` command line.

A command module decorates its ``run(args)`` with :func:`command` (and :func:`arguments` for its
flags); :mod:`ilpnb.cli` imports every command module explicitly and builds one parser from
:data:`COMMANDS`. Command modules import this registry, never :mod:`ilpnb.cli` itself.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

__all__ = ["COMMANDS", "command", "arguments", "preset_arg"]

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


def preset_arg(p: argparse.ArgumentParser) -> None:
    """The ``--preset`` flag every step shares."""
    p.add_argument("--preset", default="default", help="smoke, default or full (default: default)")
