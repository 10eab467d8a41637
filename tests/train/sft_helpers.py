"""Helpers of the SFT tests (imported by ``conftest.py`` and the test modules)."""

from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class Smoke:
    """The shared smoke world: its folder, its base model folder and the model cache."""

    world: Path
    model: Path
    cache: Path

    @property
    def data(self) -> Path:
        return self.world / "sft.jsonl"


@dataclass(frozen=True)
class CliRun:
    """A finished ``ilpnb sft`` run: its folder, exit code and printed text."""

    out: Path
    code: int
    stdout: str
    stderr: str


@contextlib.contextmanager
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``ilpnb ARGV`` in this process: exit code, stdout, stderr."""
    from ilpnb.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), one_thread():
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def subset(smoke: Smoke, path: Path, per_stage: dict[int, int]) -> Path:
    """The first ``n`` records of each stage of the world's SFT set, written to ``path``."""
    rows, taken = [], {s: 0 for s in per_stage}
    for r in read_jsonl(smoke.data):
        s = int(r.get("stage", 0))
        if s in taken and taken[s] < per_stage[s]:
            rows.append(r)
            taken[s] += 1
    assert taken == per_stage, f"the smoke world has too few records per stage: {taken}"
    return write_jsonl(path, rows)
