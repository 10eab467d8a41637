"""Run folders: one folder per run, never overwritten silently, resumable.

A run folder (``runs/NAME/``) holds ``config.json`` (everything resolved), ``env.json``
(package versions, git commit, device) and whatever the stages of the run write:
``dynamics.parquet``, ``diagnosis.parquet``, figures, checkpoints, executed notebooks.

Creating a run folder that already exists is an error unless the caller asks to resume,
and resuming checks that the stored configuration matches the one given, so a resumed run
cannot silently change its settings half way.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import subprocess
import sys
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = [
    "RunExistsError",
    "RunFolder",
    "ConfigMismatchError",
    "env_info",
    "git_commit",
    "default_runs_dir",
    "new_run_name",
]

_TRACKED_PACKAGES = (
    "ilpnb",
    "torch",
    "transformers",
    "accelerate",
    "peft",
    "tokenizers",
    "pandas",
    "pyarrow",
    "papermill",
)


class RunExistsError(FileExistsError):
    """Raised when a run folder already holds a run and resuming was not asked for."""


class ConfigMismatchError(ValueError):
    """Raised when a run is resumed with a configuration that differs from the stored one."""


def default_runs_dir() -> Path:
    """The folder new runs go to: ``$ILPNB_RUNS`` or ``./runs``."""
    return Path(os.environ.get("ILPNB_RUNS", "runs"))


def new_run_name(prefix: str = "run") -> str:
    """A fresh, sortable run name such as ``run-20261124-061512``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return f"{prefix}-{stamp}"


def git_commit(cwd: Path | None = None) -> str | None:
    """The current git commit (with ``+dirty`` when the tree has changes), or None."""
    here = cwd or Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def env_info() -> dict[str, Any]:
    """Package versions, git commit, python, platform and device of this process."""
    versions: dict[str, str | None] = {}
    for name in _TRACKED_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    device = "cpu"
    try:
        import torch

        if torch.cuda.is_available():
            device = f"cuda:{torch.cuda.get_device_name(0)} x{torch.cuda.device_count()}"
        threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a hard dependency
        threads = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch_threads": threads,
        "device": device,
        "git_commit": git_commit(),
        "packages": versions,
        "created": _dt.datetime.now().isoformat(timespec="seconds"),
    }


def _dump(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


@dataclass
class RunFolder:
    """A run folder on disk.

    Use :meth:`create` to start a run and :meth:`open` to read or extend an existing one.

    Attributes:
        path: the folder.
    """

    path: Path

    @classmethod
    def create(
        cls, path: str | Path, config: dict[str, Any], *, resume: bool = False
    ) -> "RunFolder":
        """Start a run in ``path``, or resume the run already there.

        Args:
            path: the run folder; created with its parents.
            config: the resolved configuration, stored as ``config.json``.
            resume: when the folder already holds a run, continue it (the stored
                configuration must equal ``config``) instead of raising.

        Raises:
            RunExistsError: the folder holds a run (or other files) and ``resume`` is False.
            ConfigMismatchError: resuming with a configuration that differs, naming the keys.
        """
        path = Path(path)
        run = cls(path)
        if path.exists() and any(path.iterdir()):
            if not resume:
                raise RunExistsError(
                    f"{path}: run folder already exists and is not empty; choose another "
                    "--out, or pass --resume to continue that run"
                )
            if run.config_path.exists():
                stored = json.loads(run.config_path.read_text())
                normal = json.loads(_dump(config))
                if stored != normal:
                    keys = sorted(_diff_keys(stored, normal))
                    raise ConfigMismatchError(
                        f"{run.config_path}: cannot resume with a different configuration "
                        f"(differs at {', '.join(keys)})"
                    )
                return run
        path.mkdir(parents=True, exist_ok=True)
        run.write_json("config.json", config)
        run.write_json("env.json", env_info())
        return run

    @classmethod
    def open(cls, path: str | Path) -> "RunFolder":
        """Open an existing run folder.

        Raises:
            FileNotFoundError: no run folder (no ``config.json``) at ``path``.
        """
        run = cls(Path(path))
        if not run.config_path.exists():
            raise FileNotFoundError(f"{path}: not a run folder (no config.json)")
        return run

    @property
    def config_path(self) -> Path:
        """Path of ``config.json``."""
        return self.path / "config.json"

    @property
    def config(self) -> dict[str, Any]:
        """The stored configuration."""
        return json.loads(self.config_path.read_text())

    def file(self, name: str) -> Path:
        """Path of a file inside the run (parents created)."""
        target = self.path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    def exists(self, name: str) -> bool:
        """Whether the run already holds ``name`` (used to skip finished stages on resume)."""
        return (self.path / name).exists()

    def write_json(self, name: str, obj: Any) -> Path:
        """Write ``obj`` as JSON atomically (temporary file, then rename)."""
        target = self.file(name)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(_dump(obj))
        os.replace(tmp, target)
        return target

    def read_json(self, name: str) -> Any:
        """Read a JSON file of the run."""
        return json.loads((self.path / name).read_text())

    def __str__(self) -> str:
        return str(self.path)


def _diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two JSON values differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff_keys(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".") or "<root>"]
