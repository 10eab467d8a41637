"""The causes are defined once (ilpnb.causes) and every cause has one detector and one default
mitigation; detectors are registered by an explicit list, not by importing a module."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ilpnb.causes import (
    ALL_CAUSES,
    CAUSES,
    DIAGNOSIS_LABELS,
    PLANTED_CAUSES,
    Cause,
    UnknownCauseError,
    check_cause,
    get_cause,
)
from ilpnb.diagnose.base import REGISTRY, Detector, DetectorRegistry, DetectorResult, build_registry, register
from ilpnb.diagnose.detectors import DEFAULT_DETECTORS
from ilpnb.mitigate.interventions import DEFAULT_METHOD, INTERVENTIONS


def test_five_causes_in_order_with_unique_names_and_labels() -> None:
    assert len(ALL_CAUSES) == 5
    assert [c.order for c in ALL_CAUSES] == list(range(1, len(ALL_CAUSES) + 1))
    assert len(set(CAUSES)) == len(CAUSES) == len({c.label for c in ALL_CAUSES})
    assert CAUSES == tuple(c.name for c in ALL_CAUSES)
    for cause in ALL_CAUSES:
        assert cause.description.endswith(".") and len(cause.description) > 30
        assert cause.name.isidentifier() and cause.label
    assert PLANTED_CAUSES == ("none", *CAUSES)
    assert DIAGNOSIS_LABELS[0] == "none" and DIAGNOSIS_LABELS[-1] == "unattributed"


def test_cause_is_frozen() -> None:
    with pytest.raises(AttributeError):
        ALL_CAUSES[0].name = "other"  # type: ignore[misc]


def test_lookup_and_clear_error() -> None:
    for cause in ALL_CAUSES:
        assert get_cause(cause.name) is cause
    with pytest.raises(UnknownCauseError, match=r"truth.jsonl: unknown cause 'missing_knowlege' \(known: missing"):
        get_cause("missing_knowlege", source="truth.jsonl")
    with pytest.raises(UnknownCauseError):
        get_cause(["not", "hashable"])  # type: ignore[arg-type]
    assert check_cause("none", allowed=PLANTED_CAUSES) == "none"
    with pytest.raises(UnknownCauseError, match="counts"):
        check_cause("none", source="counts")


def test_every_cause_has_exactly_one_default_detector() -> None:
    names = [cls.name for cls in DEFAULT_DETECTORS]
    assert sorted(names) == sorted(CAUSES) and len(names) == len(set(names))
    assert tuple(names) == CAUSES  # listed in the causes' order
    assert {n: REGISTRY[n] for n in CAUSES} == dict(zip(names, DEFAULT_DETECTORS))


def test_every_cause_has_one_default_mitigation_that_exists() -> None:
    assert set(INTERVENTIONS) == set(CAUSES)
    for cause in ALL_CAUSES:
        assert cause.mitigation in INTERVENTIONS[cause.name], cause.name
        assert DEFAULT_METHOD[cause.name] == cause.mitigation
        assert sum(cause.mitigation == m for m in INTERVENTIONS[cause.name]) == 1


def test_world_config_and_widgets_reexport_the_one_definition() -> None:
    from ilpnb.data import world_config
    from ilpnb.diagnose.attribution import CAUSE_ORDER
    from ilpnb.widgets import sources

    assert world_config.CAUSES is CAUSES and world_config.PLANTED_CAUSES is PLANTED_CAUSES
    assert CAUSE_ORDER is CAUSES and sources.CAUSES is CAUSES


def test_causes_module_imports_nothing_heavy() -> None:
    code = ("import sys, ilpnb.causes; heavy = [m for m in ('torch', 'transformers', 'pandas', 'numpy') "
            "if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_importing_the_detectors_registers_nothing() -> None:
    code = ("import ilpnb.diagnose.detectors, ilpnb.diagnose.base as b; "
            "print(b.REGISTRY._table is None)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


class _Plugin(Detector):
    name = "my_plugin_cause"
    description = "a detector of a user's own"

    def detect(self, ctx):  # type: ignore[no-untyped-def]
        return DetectorResult(score=None, evidence=None)  # type: ignore[arg-type]


def test_registering_a_plugin_and_duplicate_names() -> None:
    reg = DetectorRegistry(lambda: DEFAULT_DETECTORS)
    reg.add(_Plugin)
    assert list(reg)[-1] == "my_plugin_cause" and len(reg) == len(CAUSES) + 1
    reg.add(_Plugin)  # the same class again is harmless

    class Other(_Plugin):
        pass

    with pytest.raises(ValueError, match="already registered"):
        reg.add(Other)
    reg.add(Other, replace=True)
    assert reg["my_plugin_cause"] is Other
    reg.remove("my_plugin_cause")
    with pytest.raises(KeyError, match="no detector named 'my_plugin_cause'"):
        reg["my_plugin_cause"]


def test_global_register_decorator_adds_and_is_removable() -> None:
    try:
        assert register(_Plugin) is _Plugin and REGISTRY["my_plugin_cause"] is _Plugin
    finally:
        REGISTRY.remove("my_plugin_cause")
    assert "my_plugin_cause" not in REGISTRY


def test_build_registry_rejects_bad_detectors() -> None:
    class Nameless(Detector):
        description = "no name"

    with pytest.raises(ValueError, match="Nameless: a detector needs a name"):
        build_registry([Nameless])
    with pytest.raises(ValueError, match="already registered"):
        build_registry([DEFAULT_DETECTORS[0], DEFAULT_DETECTORS[0]])
    with pytest.raises(ValueError, match="subclass"):
        build_registry([Cause])  # type: ignore[list-item]
