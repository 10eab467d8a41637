"""Dotted keys of a tree of settings dataclasses: list, read, type-check and set them.

The presets of :mod:`ilpnb.config` are nested dataclasses; a setting is named by its path,
``"sft.lr"`` or ``"real.diagnose.n_samples"`` (``"world.counts.none"`` reaches into a dict).
:func:`apply_overrides` sets such keys after checking each one against the field's type
annotation, and names an unknown key together with the closest valid one.
"""

from __future__ import annotations

import copy
import difflib
import types
from collections.abc import Iterator, Mapping
from dataclasses import Field, fields, is_dataclass
from typing import Any, Union, get_args, get_origin, get_type_hints

__all__ = ["setting_fields", "get_setting", "check_value", "apply_overrides"]


def setting_fields(cls: type, prefix: str = "") -> Iterator[tuple[str, Field, Any]]:
    """Every leaf setting of a dataclass tree: (dotted key, field, type hint), in field order.

    A field whose type is a dataclass is walked into; a field whose metadata says
    ``"setting": False`` (the preset's ``name``) is not a setting.
    """
    hints = get_type_hints(cls)
    for f in fields(cls):
        if f.metadata.get("setting", True) is False:
            continue
        key, hint = f"{prefix}{f.name}", hints[f.name]
        if isinstance(hint, type) and is_dataclass(hint):
            yield from setting_fields(hint, key + ".")
        else:
            yield key, f, hint


def get_setting(tree: Any, key: str) -> Any:
    """The value at a dotted key (``get_setting(preset, "sft.lr")``)."""
    value = tree
    for part in key.split("."):
        value = value[part] if isinstance(value, Mapping) else getattr(value, part)
    return value


def check_value(value: Any, hint: Any, key: str, source: str = "settings") -> Any:
    """``value`` if it has the type ``hint`` (an int is taken for a float, as a float).

    Raises:
        ValueError: a value of another type; the message names ``source``, the key and the type.
    """
    if _matches(value, hint):
        return float(value) if hint is float else value
    raise ValueError(f"{source}: setting '{key}' must be {_type_name(hint)}, got {value!r} ({type(value).__name__})")


def _matches(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_matches(value, a) for a in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is Any:
        return True
    if origin is not None:  # dict[str, int], list[str]: the container, then the items of a dict
        if not isinstance(value, origin):
            return False
        args = get_args(hint)
        return origin is not dict or all(_matches(v, args[1]) for v in value.values())
    if hint is bool:
        return isinstance(value, bool)
    if hint in (int, float):
        return isinstance(value, (int, float) if hint is float else int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _type_name(hint: Any) -> str:
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in get_args(hint))
    return "None" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _flatten(changes: Mapping[str, Any], leaves: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted keys from nested mappings (a mapping given for a leaf, e.g. ``world.counts``, is its value)."""
    out: dict[str, Any] = {}
    for key, value in changes.items():
        if isinstance(value, Mapping) and f"{prefix}{key}" not in leaves:
            out.update(_flatten(value, leaves, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def apply_overrides(tree: Any, changes: Mapping[str, Any], source: str = "settings") -> set[str]:
    """Set dotted keys of a settings tree in place (``{"sft.lr": 1e-3, "world.counts.none": 10}``); returns it.

    A nested mapping (``{"sft": {"lr": 1e-3}}``) is read as dotted keys.

    Returns:
        The first part of every key that was set (``{"sft", "world"}``), so a caller can
        validate the sub-trees that changed.

    Raises:
        KeyError: an unknown key; the message names it, ``source`` and the closest valid key.
        ValueError: a value of the wrong type.
    """
    leaves = {key: hint for key, _, hint in setting_fields(type(tree))}
    flat = _flatten(changes, leaves)
    for key, value in flat.items():
        head, _, item = key.rpartition(".")
        if key in leaves:
            parent = get_setting(tree, head) if head else tree
            setattr(parent, item, check_value(copy.deepcopy(value), leaves[key], key, source))
        elif head in leaves and get_origin(leaves[head]) is dict and item in get_setting(tree, head):
            mapping = get_setting(tree, head)
            mapping[item] = check_value(value, get_args(leaves[head])[1], key, source)
        else:
            known = list(leaves) + [f"{k}.{c}" for k, h in leaves.items() if get_origin(h) is dict
                                    for c in get_setting(tree, k)]
            close = difflib.get_close_matches(key, known, n=1, cutoff=0.5)
            hint = (f"; did you mean '{close[0]}'?" if close
                    else f" (keys look like 'sft.lr'; see {type(tree).__name__})")
            raise KeyError(f"{source}: unknown setting '{key}'{hint}")
    return {k.split(".")[0] for k in flat}
