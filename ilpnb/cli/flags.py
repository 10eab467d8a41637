"""Command-line flags generated from the settings tree (one parser, as TRL's configs have).

Every leaf field of a settings dataclass of :mod:`ilpnb.config` becomes one flag named by its
dotted key, ``--<prefix>.<field>`` (``--sft.lr 1e-3``, ``--sft.lora false``): its type comes
from the annotation, its help from ``metadata["help"]`` followed by its value at each preset,
its choices from ``metadata["choices"]``. So ``--help`` always shows the defaults that apply.
A flag that is not typed leaves no attribute (``argparse.SUPPRESS``), so ``--real.samples none``
is told apart from no flag; :func:`given_settings` returns only the flags that were typed,
as dotted keys for :func:`ilpnb.config.get_preset` or :func:`ilpnb.config.apply_overrides`.

Like transformers' ``HfArgumentParser`` (which TRL's parser extends), but with the preset's
defaults instead of the dataclass's, ``str | int`` fields (``eval_every``) and ``None`` for
optional ones; and no transformers import, so ``ilpnb ... --help`` stays instant.
"""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Union, get_args, get_origin

from ilpnb.config import PRESETS, Preset, get_setting, setting_fields

__all__ = ["add_setting_flags", "given_settings", "parse_value", "preset_defaults"]

_TRUE, _FALSE = ("true", "yes", "1", "on"), ("false", "no", "0", "off")


def parse_value(text: str, hint: Any) -> Any:
    """A flag's text as a value of the type ``hint`` (``bool``, ``int``, ``float``, ``str``,
    ``dict`` as JSON, a union such as ``str | int`` or ``int | None``).

    Raises:
        ValueError: text that is no value of the type.
    """
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        options = get_args(hint)
        if type(None) in options and text.strip().lower() in ("none", "null"):
            return None
        rank = {bool: 0, int: 1, float: 2}  # the narrowest type first; str takes anything
        for option in sorted((o for o in options if o is not type(None)), key=lambda o: rank.get(o, 3)):
            try:
                return parse_value(text, option)
            except ValueError:
                continue
        raise ValueError(f"expected {' or '.join(getattr(o, '__name__', str(o)) for o in options)}, got {text!r}")
    if hint is bool:
        if text.strip().lower() in _TRUE + _FALSE:
            return text.strip().lower() in _TRUE
        raise ValueError(f"expected true or false, got {text!r}")
    if hint is int or hint is float:
        try:
            return hint(text)
        except ValueError:
            raise ValueError(f"expected {'an integer' if hint is int else 'a number'}, got {text!r}") from None
    if origin is dict or hint is dict:
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise ValueError(f"expected a JSON object, got {text!r} ({err.msg})") from None
        if not isinstance(value, dict):
            raise ValueError(f"expected a JSON object, got {text!r}")
        return value
    return text


def _converter(hint: Any, name: str) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return parse_value(text, hint)
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None

    convert.__name__ = name
    return convert


def _show(value: Any) -> str:
    return json.dumps(value) if isinstance(value, dict) else str(value)


def preset_defaults(key: str, presets: Mapping[str, Preset] = PRESETS) -> str:
    """The value of a dotted key at every preset: ``"8"`` when they agree, else ``"smoke 8, default 30, full 30"``."""
    values = {name: _show(get_setting(p, key)) for name, p in presets.items()}
    if len(set(values.values())) == 1:
        return next(iter(values.values()))
    return ", ".join(f"{name} {value}" for name, value in values.items())


def add_setting_flags(parser: argparse.ArgumentParser | Any, cls: type, prefix: str,
                      aliases: Mapping[str, Sequence[str]] | None = None,
                      converters: Mapping[str, Callable[[str], Any]] | None = None,
                      presets: Mapping[str, Preset] = PRESETS, exclude: Sequence[str] = ()) -> list[str]:
    """Add one flag per leaf field of the dataclass ``cls``, the sub-tree ``prefix`` of a :class:`Preset`.

    Args:
        parser: an argparse parser or argument group.
        cls: the settings dataclass (e.g. :class:`ilpnb.config.SFTConfig`).
        prefix: its key in the tree (``"sft"``); flags are ``--sft.<field>``, dests ``"sft.<field>"``.
        aliases: more option strings of a field (``{"batch_size": ["--batch-size"]}``), e.g.
            the short flags a command had before.
        converters: a converter of a field's text in place of the one the annotation gives.
        presets: the presets whose values the help lists.
        exclude: fields that get no flag (settings the command does not use).

    Returns:
        The dotted keys added.
    """
    aliases, converters = aliases or {}, converters or {}
    added = []
    for key, f, hint in setting_fields(cls, prefix + "."):
        name = key[len(prefix) + 1:]
        if name in exclude:
            continue
        text = f.metadata.get("help")
        if not text:
            raise ValueError(f"{cls.__name__}.{name}: a setting needs metadata['help'] to become a flag")
        help_text = f"{text} (default: {preset_defaults(key, presets)})".replace("%", "%%")
        kwargs: dict[str, Any] = {"dest": key, "default": argparse.SUPPRESS, "help": help_text,
                                  "type": converters.get(name) or _converter(hint, name)}
        if "choices" in f.metadata:
            kwargs["choices"] = tuple(f.metadata["choices"])
        if hint is bool:  # --sft.lora alone means true; --sft.lora false
            kwargs.update(nargs="?", const=True, metavar="{true,false}")
        elif "choices" not in kwargs:
            kwargs["metavar"] = getattr(hint, "__name__", "VALUE").upper() if isinstance(hint, type) else "VALUE"
        parser.add_argument(f"--{key}", *aliases.get(name, ()), **kwargs)
        added.append(key)
    return added


def given_settings(args: argparse.Namespace, prefix: str) -> dict[str, Any]:
    """The settings under ``prefix`` given on the command line, as dotted keys (``{"sft.lr": 0.001}``)."""
    start = prefix + "."
    return {k: v for k, v in vars(args).items() if k.startswith(start)}
