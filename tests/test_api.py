"""The public API: every name in every package's ``__all__`` resolves, and ``import ilpnb`` (and
importing a subpackage) stays light — no torch, no transformers."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import pytest

import ilpnb

#: the subpackages whose ``__init__`` curates an ``__all__``
SUBPACKAGES = ("data", "diagnose", "interactions", "mitigate", "models", "plots", "probe", "train", "widgets")
#: packages whose ``__init__`` must not import torch (their names load on first use)
LIGHT_PACKAGES = ("ilpnb", "ilpnb.data", "ilpnb.diagnose", "ilpnb.mitigate", "ilpnb.models", "ilpnb.plots",
                  "ilpnb.probe", "ilpnb.train")


def _heavy_after(statement: str) -> list[str]:
    code = (f"import sys; {statement}; "
            "print(','.join(m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return [m for m in out.stdout.strip().split(",") if m]


def test_every_subpackage_is_listed() -> None:
    found = {m.name for m in pkgutil.iter_modules(ilpnb.__path__) if m.ispkg}
    assert set(SUBPACKAGES) <= found
    for name in SUBPACKAGES:
        module = importlib.import_module(f"ilpnb.{name}")
        assert module.__doc__, f"ilpnb.{name} has no docstring"
        assert isinstance(module.__all__, list) and module.__all__, f"ilpnb.{name} has no __all__"
        assert len(set(module.__all__)) == len(module.__all__), f"ilpnb.{name}.__all__ lists a name twice"


@pytest.mark.parametrize("package", ["ilpnb", *(f"ilpnb.{n}" for n in SUBPACKAGES)])
def test_every_exported_name_resolves(package: str) -> None:
    module = importlib.import_module(package)
    missing = [name for name in module.__all__ if getattr(module, name, None) is None]
    assert not missing, f"{package}.__all__ names what it does not provide: {missing}"
    assert set(module.__all__) <= set(dir(module))


def test_main_entry_points_are_the_library_objects() -> None:
    from ilpnb.causes import CAUSES
    from ilpnb.diagnose.attribution import write_diagnosis
    from ilpnb.train.sft import run_sft

    assert ilpnb.run_sft is run_sft and ilpnb.write_diagnosis is write_diagnosis and ilpnb.CAUSES is CAUSES
    for name in ("get_preset", "generate_world", "run_sft", "write_diagnosis", "run_mitigation",
                 "compute_interactions", "Run"):
        assert name in ilpnb.__all__


def test_unknown_attribute_is_a_clear_attribute_error() -> None:
    with pytest.raises(AttributeError, match="module 'ilpnb' has no attribute 'no_such_name'"):
        ilpnb.no_such_name  # noqa: B018
    with pytest.raises(AttributeError, match="module 'ilpnb.data' has no attribute 'nope'"):
        importlib.import_module("ilpnb.data").nope  # noqa: B018


@pytest.mark.parametrize("package", LIGHT_PACKAGES)
def test_importing_the_package_does_not_import_torch(package: str) -> None:
    heavy = _heavy_after(f"import {package}")
    assert "torch" not in heavy and "transformers" not in heavy, f"import {package} imports {heavy}"


def test_a_light_entry_point_stays_light_and_a_heavy_one_loads_torch() -> None:
    assert _heavy_after("import ilpnb; ilpnb.get_cause('data_conflict'); ilpnb.get_preset('smoke')") == []
    assert "torch" in _heavy_after("import ilpnb; ilpnb.run_sft")
