"""Reusing a step's stored output only when it was made with the same settings.

A pipeline step (the world of a notebook run, its base model, the probe report, an SFT run)
is made once and then reused, so re-running a notebook is cheap. Reuse is only right when the
stored output was made with the settings asked for now: changing ``PRESET`` on the same run
folder in Jupyter must not silently hand back the old preset's results. Each step therefore
stores a hash of its settings in ``RUN/steps.json`` when it is made; :func:`reuse` compares it
with the hash of the settings asked for now and

* returns False when the step has not been made yet (make it, then :func:`record`);
* returns True when it was made with these settings (reuse it);
* raises :class:`StepSettingsError` when it was made with other settings, naming the step,
  the run and the settings that differ: a run folder is never overwritten, so the answer is a
  new ``RUN`` folder (or the old settings).

Outputs made before steps were stamped (no entry in ``steps.json``) are reused and stamped
with the settings asked for, once; the stamp then guards every later reuse.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ilpnb.runs import ConfigMismatchError

__all__ = ["STEPS_FILE", "StepSettingsError", "settings_hash", "reuse", "record"]

STEPS_FILE = "steps.json"


class StepSettingsError(ConfigMismatchError):
    """A step's stored output was made with other settings than the ones asked for."""


def _canonical(settings: Any) -> str:
    return json.dumps(settings, sort_keys=True, default=str, separators=(",", ":"))


def settings_hash(settings: Any) -> str:
    """A short, stable hash of JSON-able settings (key order does not matter)."""
    return hashlib.sha256(_canonical(settings).encode()).hexdigest()[:16]


def _read(run: Path) -> dict[str, Any]:
    path = run / STEPS_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err.msg}, line {err.lineno}); it records which settings "
                         "made each step of the run") from err


def _differences(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out: list[str] = []
        for key in sorted(set(old) | set(new), key=str):
            name = f"{prefix}.{key}" if prefix else str(key)
            if key not in old or key not in new:
                out.append(f"{name}: {'missing' if key not in old else old[key]!r} -> "
                           f"{'missing' if key not in new else new[key]!r}")
            else:
                out += _differences(old[key], new[key], name)
        return out
    return [] if _canonical(old) == _canonical(new) else [f"{prefix or 'settings'}: {old!r} -> {new!r}"]


@contextlib.contextmanager
def _locked(run: Path) -> Iterator[None]:
    """Hold ``RUN/steps.json.lock`` exclusively: notebooks running at once stamp their own
    steps of one run, and a read-modify-write must not lose another's stamp."""
    with open(run / (STEPS_FILE + ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record(run: str | Path, step: str, settings: Any) -> None:
    """Stamp ``step`` of ``run`` as made with ``settings``."""
    run = Path(run)
    with _locked(run):
        steps = _read(run)
        steps[step] = {"hash": settings_hash(settings), "settings": json.loads(_canonical(settings))}
        tmp = run / f"{STEPS_FILE}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(steps, indent=1, sort_keys=True) + "\n")
        tmp.replace(run / STEPS_FILE)


def reuse(run: str | Path, step: str, settings: Any, made: bool) -> bool:
    """Whether the stored output of ``step`` can be reused for ``settings``.

    Args:
        run: the run folder holding ``steps.json``.
        step: the step's name (e.g. ``world``, ``sft:sft_seed1``).
        settings: everything that decides the step's output (JSON-able).
        made: the step's output exists.

    Returns:
        False when the output does not exist yet; True when it was made with these settings.

    Raises:
        StepSettingsError: It was made with other settings (the differences are named).
    """
    if not made:
        return False
    stored = _read(Path(run)).get(step)
    if stored is None:  # made before steps were stamped
        record(run, step, settings)
        return True
    if stored.get("hash") == settings_hash(settings):
        return True
    diff = _differences(stored.get("settings"), json.loads(_canonical(settings)))
    shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
    raise StepSettingsError(
        f"{Path(run)}: step {step!r} was made with other settings ({shown}); a run folder is never "
        "overwritten: use a new RUN folder for these settings, or the ones it was made with")
