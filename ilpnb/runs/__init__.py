"""Run folders: :class:`RunFolder` writes them (never overwritten, resumable) and :class:`Run`
reads them (torch-free). See :mod:`ilpnb.runs.folder` and :mod:`ilpnb.runs.reader`."""

from __future__ import annotations

from ilpnb.runs.folder import (
    ConfigMismatchError,
    RunExistsError,
    RunFolder,
    default_runs_dir,
    env_info,
    git_commit,
    new_run_name,
)
from ilpnb.runs.reader import (
    Checkpoint,
    Run,
    base_rows,
    final_rows,
    list_run_checkpoints,
    read_config,
    read_dynamics,
    read_truth_file,
    world_truth,
)

__all__ = [
    "RunExistsError",
    "RunFolder",
    "ConfigMismatchError",
    "env_info",
    "git_commit",
    "default_runs_dir",
    "new_run_name",
    "Checkpoint",
    "Run",
    "base_rows",
    "final_rows",
    "list_run_checkpoints",
    "read_config",
    "read_dynamics",
    "read_truth_file",
    "world_truth",
]
