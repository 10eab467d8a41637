"""Lazy package exports (PEP 562): a package lists its public names and the module each lives in,
and a name's module is imported the first time the name is read.

``import ilpnb`` and ``import ilpnb.data`` stay light this way (no torch, no transformers),
while ``from ilpnb import run_sft`` works as if the package had imported it. Used by the
package ``__init__`` files::

    _EXPORTS = {".records": ("SFTRecord", "read_records")}
    __all__ = exported_names(_EXPORTS)
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["exported_names", "lazy_exports"]


def _by_name(exports: Mapping[str, Sequence[str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for module, names in exports.items():
        for name in names:
            if name in out:
                raise ValueError(f"{name!r} is exported twice (from {out[name]} and {module})")
            out[name] = module
    return out


def exported_names(exports: Mapping[str, Sequence[str]]) -> list[str]:
    """Every exported name, in the order listed (a package's ``__all__``)."""
    return list(_by_name(exports))


def lazy_exports(package: str, exports: Mapping[str, Sequence[str]]
                 ) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The module-level ``__getattr__`` and ``__dir__`` of ``package``.

    Args:
        package: the package's ``__name__``.
        exports: module (relative like ``".records"`` or absolute) -> the names it provides.

    Raises:
        ValueError: a name listed under two modules.
    """
    where = _by_name(exports)

    def __getattr__(name: str) -> Any:
        if name not in where:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(where[name], package), name)
        setattr(sys.modules[package], name, value)  # later reads skip this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(where))

    return __getattr__, __dir__
