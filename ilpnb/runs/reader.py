"""Reading a run folder: one torch-free reader for notebooks, widgets, diagnosis and reports.

:class:`Run` opens a run folder (``config.json`` required) and reads what its stages wrote:

* ``.config`` — ``config.json`` (read once);
* ``.records()`` / ``.records_table()`` — the SFT records the run trained on (its ``data``
  argument, else its world's ``sft.jsonl``);
* ``.dynamics()`` — ``dynamics.parquet`` (or, for an unfinished run, the points written so far);
  ``.base()`` / ``.final()`` — one row per sample at the first and at the last evaluation point;
* ``.samples()``, ``.diagnosis()``, ``.schedule()``, ``.convergence()`` — the other tables;
* ``.checkpoints()`` — the saved models as :class:`Checkpoint` (the base model first);
* ``.truth()`` — the planted cause per sample from the world's ``truth.jsonl`` (empty when the
  run has no world): for reports and scoring only, never read by the diagnosis.

Nothing here imports torch or transformers, so a widget or a report can read a run cheaply.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = [
    "Checkpoint",
    "Run",
    "read_config",
    "read_dynamics",
    "base_rows",
    "final_rows",
    "read_truth_file",
    "world_truth",
    "list_run_checkpoints",
]

_POINT = re.compile(r"^point-(\d+)-step-(\d+)$")
_STAGE = re.compile(r"^stage-(.+)-end$")
_STEP = re.compile(r"step-(\d+)")
_META = "ilpnb_checkpoint.json"


@dataclass(frozen=True)
class Checkpoint:
    """One model along a fine-tuning run (the base model is step 0).

    Attributes:
        step: Optimisation steps since the base model (0 for the base).
        name: ``base``, ``point-XXXX-step-YYYYYY`` or ``stage-S-end``.
        path: The model folder (or a model name for the base).
        epoch: Epoch within its stage (NaN for the base or when not recorded).
        lora: Whether the folder holds LoRA adapters over ``base_model``.
        base_model: The base model of the run.
        point: The evaluation point it was saved at (0 for the base; None when not recorded).
        stage: The stage it was saved in (None for the base or when not recorded).
    """

    step: int
    name: str
    path: str
    epoch: float = float("nan")
    lora: bool = False
    base_model: str = ""
    point: int | None = None
    stage: str | None = None

    @property
    def label(self) -> str:
        """Short text for a slider: ``"step 0 (base)"`` or ``"step 16"``."""
        return "step 0 (base)" if self.step == 0 else f"step {self.step}"


# -- module-level readers (used by Run, and by code holding a table already) ------------------

def read_config(run: str | Path, missing_ok: bool = False) -> dict[str, Any]:
    """A run's ``config.json``.

    Args:
        run: The run folder.
        missing_ok: Return ``{}`` when the file is missing or unreadable instead of raising.

    Raises:
        FileNotFoundError: No ``config.json`` (the folder is named).
        ValueError: ``config.json`` is not a JSON object (file and reason named).
    """
    path = Path(run) / "config.json"
    if not path.is_file():
        if missing_ok:
            return {}
        raise FileNotFoundError(f"{run}: not a run folder (no config.json)")
    try:
        config = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        if missing_ok:
            return {}
        raise ValueError(f"{path}: not readable as JSON ({err})") from None
    if not isinstance(config, dict):
        if missing_ok:
            return {}
        raise ValueError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def read_dynamics(run: str | Path) -> pd.DataFrame:
    """The dynamics table of a run: ``dynamics.parquet``, or the points written so far.

    Raises:
        FileNotFoundError: Neither ``dynamics.parquet`` nor ``dynamics/point-*.parquet``.
    """
    path = Path(run)
    if (path / "dynamics.parquet").exists():
        return pd.read_parquet(path / "dynamics.parquet")
    parts = sorted((path / "dynamics").glob("point-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"{run}: no dynamics yet (run `ilpnb sft` first)")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)


def _rows_at(dynamics: pd.DataFrame, last: bool) -> pd.DataFrame:
    if "point" not in dynamics or "id" not in dynamics:
        raise ValueError(f"a dynamics table needs 'id' and 'point' columns, got {list(dynamics.columns)}")
    point = dynamics["point"].max() if last else dynamics["point"].min()
    rows = dynamics[dynamics["point"] == point].drop_duplicates("id")
    return rows.assign(id=rows["id"].astype(str)).set_index("id")


def base_rows(dynamics: pd.DataFrame) -> pd.DataFrame:
    """One row per sample at the first evaluation point (step 0, the base model), indexed by id."""
    return _rows_at(dynamics, last=False)


def final_rows(dynamics: pd.DataFrame) -> pd.DataFrame:
    """One row per sample at the last evaluation point of the whole run (the end of the last
    stage, where "learned" is decided), indexed by id."""
    return _rows_at(dynamics, last=True)


def read_truth_file(path: str | Path) -> pd.Series:
    """``truth.jsonl`` as a Series id -> planted cause (named ``planted_cause``).

    Raises:
        FileNotFoundError: No such file.
        ValueError: A line that is not a JSON object, lacks ``id`` or ``planted_cause``, or
            repeats an id (file and line named).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no truth file")
    truth: dict[str, str] = {}
    first_line: dict[str, int] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError as err:
            raise ValueError(f"{path}, line {n}: not JSON ({err})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {n}: expected an object like {{\"id\": ..., \"planted_cause\": ...}}")
        for key in ("id", "planted_cause"):
            if key not in row:
                raise ValueError(f"{path}, line {n}: no '{key}' field "
                                 "(expected lines like {\"id\": ..., \"planted_cause\": ...})")
        sid = str(row["id"])
        if sid in truth:
            raise ValueError(f"{path}, line {n}: id {sid!r} already given on line {first_line[sid]}")
        truth[sid], first_line[sid] = str(row["planted_cause"]), n
    return pd.Series(truth, dtype=object, name="planted_cause").rename_axis("id")


def world_truth(world: str | Path | None) -> pd.Series:
    """The planted causes of a world folder (``WORLD/truth.jsonl``); empty when there is no
    world or it has no truth file (a real dataset)."""
    if not world or not (Path(world) / "truth.jsonl").is_file():
        return pd.Series(dtype=object, name="planted_cause").rename_axis("id")
    return read_truth_file(Path(world) / "truth.jsonl")


def _checkpoint_meta(folder: Path) -> dict[str, Any] | None:
    meta = folder / _META
    if meta.is_file():
        return json.loads(meta.read_text())
    has_model = (folder / "config.json").is_file() or (folder / "adapter_config.json").is_file()
    found = _STEP.search(folder.name)
    return {"step": int(found.group(1))} if has_model and found else None


def list_run_checkpoints(run: str | Path, config: dict[str, Any] | None = None,
                         include_base: bool = True) -> list[Checkpoint]:
    """The saved models of a run by step: one per step, a ``point-*`` checkpoint preferred to a
    ``stage-S-end`` one at the same step, the base model (``config["model"]``) first.

    A folder counts when it holds ``ilpnb_checkpoint.json`` (written with every checkpoint), or
    a model (``config.json`` / ``adapter_config.json``) and a ``step-N`` in its name.
    """
    run = Path(run)
    cfg = read_config(run, missing_ok=True) if config is None else config
    base = str(cfg["model"]) if cfg.get("model") else ""
    lora = bool((cfg.get("sft") or {}).get("lora", False))
    points: dict[int, Checkpoint] = {}
    ends: dict[int, Checkpoint] = {}
    folder = run / "checkpoints"
    for sub in sorted(folder.iterdir()) if folder.is_dir() else []:
        meta = _checkpoint_meta(sub) if sub.is_dir() else None
        if meta is None or meta.get("step") is None:
            continue
        stage = meta.get("stage")
        ck = Checkpoint(step=int(meta["step"]), name=sub.name, path=str(sub),
                        epoch=float(meta.get("epoch", float("nan"))), lora=bool(meta.get("lora", lora)),
                        base_model=str(meta.get("base_model", base)),
                        point=int(meta["point"]) if meta.get("point") is not None else None,
                        stage=str(stage) if stage is not None else None)
        (ends if _STAGE.match(sub.name) else points).setdefault(ck.step, ck)
    found = {**ends, **points}
    found.pop(0, None)  # the model at step 0 is the base model
    out = [found[s] for s in sorted(found)]
    if include_base and base:
        out.insert(0, Checkpoint(0, "base", base, lora=False, base_model=base, point=0))
    return out


# -- the reader --------------------------------------------------------------------------------

class Run:
    """A run folder, read (see the module docstring). Writing is :class:`ilpnb.runs.RunFolder`'s.

    Args:
        path: The run folder (it must hold ``config.json``).

    Raises:
        FileNotFoundError: No ``config.json`` in ``path`` (the folder is named).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not (self.path / "config.json").is_file():
            what = "no such folder" if not self.path.exists() else "no config.json"
            raise FileNotFoundError(f"{self.path}: not a run folder ({what})")

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    def __fspath__(self) -> str:
        return str(self.path)

    @cached_property
    def config(self) -> dict[str, Any]:
        """``config.json`` (read once)."""
        return read_config(self.path)

    @property
    def world(self) -> Path | None:
        """The run's world folder: ``config["world"]``, else ``RUN/world`` (a workbench run),
        else None."""
        spec = self.config.get("world")
        if spec:
            return Path(spec)
        return self.path / "world" if (self.path / "world").is_dir() else None

    def file(self, name: str) -> Path:
        """Path of a file in the run (not created)."""
        return self.path / name

    # records
    def records(self) -> list[Any]:
        """The SFT records the run trained on (:class:`ilpnb.data.records.SFTRecord`).

        Read from ``config["data"]`` (a file, a world folder or a registered dataset), else
        from the run's world's ``sft.jsonl``.

        Raises:
            FileNotFoundError: The run names no data, or none of what it names exists.
            RecordError: A bad line in the SFT file (file and line named).
        """
        from ilpnb.data.packaged import resolve_data

        specs = [s for s in (self.config.get("data"), self.world) if s]
        if not specs:
            raise FileNotFoundError(f"{self.path / 'config.json'}: names no data and no world; "
                                    "cannot tell which SFT records the run used")
        errors = []
        for spec in specs:
            try:
                return resolve_data(spec)
            except FileNotFoundError as err:
                errors.append(str(err))
        raise FileNotFoundError(f"{self.path}: the run's SFT records are gone ({'; '.join(errors)})")

    def records_table(self) -> pd.DataFrame:
        """The SFT records as a table indexed by id: ``prompt``, ``response``, ``stage``, ``options``."""
        rows = [{"id": str(r.id), "prompt": r.prompt, "response": r.response, "stage": int(r.stage),
                 "options": list(r.options or [])} for r in self.records()]
        return pd.DataFrame(rows, columns=["id", "prompt", "response", "stage", "options"]).set_index("id")

    # tables
    def dynamics(self) -> pd.DataFrame:
        """``dynamics.parquet`` (one row per sample x evaluation point; see :func:`read_dynamics`)."""
        return read_dynamics(self.path)

    def base(self, dynamics: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per sample at the base point (step 0), indexed by id."""
        return base_rows(self.dynamics() if dynamics is None else dynamics)

    def final(self, dynamics: pd.DataFrame | None = None) -> pd.DataFrame:
        """One row per sample at the last point of the run, indexed by id."""
        return final_rows(self.dynamics() if dynamics is None else dynamics)

    def _table(self, name: str) -> pd.DataFrame | None:
        path = self.path / name
        return pd.read_parquet(path) if path.is_file() else None

    def samples(self) -> pd.DataFrame | None:
        """``samples.parquet`` (one row per sample with its learning history), or None."""
        return self._table("samples.parquet")

    def diagnosis(self) -> pd.DataFrame | None:
        """``diagnosis.parquet`` (ids as strings), or None before the run is diagnosed."""
        table = self._table("diagnosis.parquet")
        if table is not None:
            table["id"] = table["id"].astype(str)
        return table

    def schedule(self) -> pd.DataFrame | None:
        """``schedule.parquet`` (which sample was trained at which step), the parts written so
        far, or None for a run without one."""
        table = self._table("schedule.parquet")
        if table is not None:
            return table
        parts = sorted((self.path / "schedule").glob("point-*.parquet"))
        return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else None

    def convergence(self) -> dict[str, Any] | None:
        """``convergence.json`` (the convergence verdict per stage), or None."""
        path = self.path / "convergence.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def checkpoints(self, include_base: bool = True) -> list[Checkpoint]:
        """The saved models by step, the base model first (see :func:`list_run_checkpoints`)."""
        return list_run_checkpoints(self.path, self.config, include_base)

    def truth(self) -> pd.Series:
        """Planted cause by sample id from the world's ``truth.jsonl`` (empty without one)."""
        return world_truth(self.world)
