"""Machine-readable results of the benchmarks, for the README's measured-figures table.

A benchmark script adds the ``--json`` option with :func:`add_json_option` and, at its end,
hands its headline figures to :func:`write_results`; ``tools/figures.py`` turns every
``benchmarks/results/*.json`` into the table between the README's ``<!-- figures:start -->``
and ``<!-- figures:end -->`` markers (``make figures``). ``--json`` alone writes
``benchmarks/results/<script name>.json``; ``--json PATH`` writes PATH; without ``--json``
nothing is written. The file (schema 1) holds:

* ``schema`` (1), ``benchmark`` (the script's name without ``.py``), ``script`` (its path
  relative to the repository), ``command`` (the arguments it ran with, as a list);
* ``date`` (UTC, ISO 8601), ``wall_s`` (seconds since the process started);
* ``git``: ``commit`` (short hash, None outside a checkout) and ``dirty`` (uncommitted changes
  to tracked or untracked files, ``benchmarks/results/`` aside), as they were when the script
  started (``add_json_option`` records them); ``git_at_end`` (the same, when the file is
  written) only where the two differ: something was committed or edited while it ran;
* ``machine``: ``cpus``, ``cpu_model``, ``platform``, ``python``, ``torch``,
  ``torch_threads``, ``cpu_capability`` (torch's vector code path), ``transformers``,
  ``peft``, ``accelerate``, ``omp_num_threads`` (the variable, None unset), ``gpu`` (None without
  CUDA), ``load_average`` (1, 5 and 15 minutes, when the file is written);
* ``preset`` (None where the benchmark has none), ``seeds`` (a mapping from what is seeded to
  the list of seeds, e.g. ``{"sft": [0, 1]}``; empty where nothing random is measured),
  ``settings`` (the parsed arguments but ``json``);
* ``figures``: a list of headline figures, each a mapping with ``key`` (unique in the file),
  ``what`` (the row's description), ``value`` (a number; the mean where ``sd`` is given),
  ``unit`` (``""``, ``"s"``, ``"x"`` for a ratio, ``"%"``, ``"tokens/s"``, ...), ``digits``
  (decimals shown), and where they apply ``sd`` (sample sd over ``n`` seeded runs), ``n``,
  ``min``, ``max``, ``ci`` ([low, high], 95%), ``signed`` (show a + sign) and ``note`` (a
  short computed text shown after the figure).

Example (the whole change a benchmark needs)::

    from ilpnb.figures import add_json_option, figure, write_results

    add_json_option(parser)
    ...
    write_results(args, __file__, [figure("load_s", "first load", first, "s", digits=1)],
                  preset=args.preset, seeds={"sft": [0]})
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

__all__ = ["SCHEMA", "add_json_option", "figure", "git_info", "machine_info", "result_path", "write_results"]

SCHEMA = 1
AUTO = "auto"  # the value of ``--json`` given without a path
#: The checkout's state when the benchmark started (``add_json_option`` records it): the code
#: that ran is the code of the start, whatever was committed while it ran.
_AT_START: dict[str, Any] = {}


def add_json_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--json [PATH]``: alone, the results go to ``benchmarks/results/<name>.json``.
    Also records the checkout's commit and changes now, for :func:`write_results`."""
    _AT_START["git"] = git_info(Path(sys.argv[0]).resolve().parent if sys.argv and sys.argv[0] else Path.cwd())
    parser.add_argument("--json", nargs="?", const=AUTO, default=None, metavar="PATH",
                        help="also write the headline figures as JSON: to PATH, or without PATH to "
                             "benchmarks/results/<script name>.json (read by tools/figures.py)")


def figure(key: str, what: str, value: float | int, unit: str = "", *, digits: int = 2, sd: float | None = None,
           n: int | None = None, min: float | None = None, max: float | None = None,  # noqa: A002
           ci: Sequence[float] | None = None, signed: bool = False, note: str | None = None) -> dict[str, Any]:
    """One headline figure (see the module's docstring for the fields); NaN becomes None."""
    out: dict[str, Any] = {"key": key, "what": what, "value": _num(value), "unit": unit, "digits": int(digits)}
    for name, v in (("sd", sd), ("min", min), ("max", max)):
        if v is not None and _num(v) is not None:
            out[name] = _num(v)
    if n is not None:
        out["n"] = int(n)
    if ci is not None:
        out["ci"] = [_num(ci[0]), _num(ci[1])]
    if signed:
        out["signed"] = True
    if note:
        out["note"] = note
    return out


def result_path(option: str, script: str | Path) -> Path:
    """Where ``--json`` (the option's value) sends the results of ``script``."""
    script = Path(script).resolve()
    return script.parent / "results" / f"{script.stem}.json" if option == AUTO else Path(option)


def write_results(args: argparse.Namespace | str | None, script: str | Path, figures: Iterable[Mapping[str, Any]],
                  *, preset: str | None = None, seeds: Mapping[str, Sequence[int]] | None = None,
                  extra: Mapping[str, Any] | None = None) -> Path | None:
    """Write the results file of a benchmark run, if ``--json`` asked for one.

    Args:
        args: The parsed arguments (their ``json`` attribute: None, ``"auto"`` or a path), or
            that value itself.
        script: The benchmark script (its ``__file__``).
        figures: The headline figures (:func:`figure`).
        preset: The preset the benchmark ran at, if any.
        seeds: What is seeded and with which seeds, e.g. ``{"sft": [0, 1], "world": [0]}``.
        extra: More JSON-able content, stored under ``extra``.

    Returns:
        The path written, or None without ``--json``.
    """
    option = args if args is None or isinstance(args, str) else getattr(args, "json", None)
    if option is None:
        return None
    path = result_path(option, script)
    script = Path(script).resolve()
    root = _git_root(script.parent)
    figures = [dict(f) for f in figures]
    keys = [f["key"] for f in figures]
    if len(set(keys)) != len(keys):
        raise ValueError(f"figure keys repeat: {keys}")
    settings = {k: v for k, v in vars(args).items() if k != "json"} if isinstance(args, argparse.Namespace) else {}
    result = {
        "schema": SCHEMA,
        "benchmark": script.stem,
        "script": _relative(script, root),
        "command": [_relative(script, root), *_argv_without_json(sys.argv[1:])],
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "wall_s": _process_seconds(),
        "git": _AT_START.get("git") or git_info(root or script.parent),
        "machine": machine_info(),
        "preset": preset,
        "seeds": {str(k): [int(s) for s in v] for k, v in (seeds or {}).items()},
        "settings": _jsonable(settings),
        "figures": _jsonable(figures),
    }
    if _AT_START.get("git") and _AT_START["git"] != (end := git_info(root or script.parent)):
        result["git_at_end"] = end  # committed or edited while it ran: ``git`` is what ran
    if extra:
        result["extra"] = _jsonable(dict(extra))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
    print(f"(headline figures in {path})", file=sys.stderr, flush=True)  # stdout's last lines stay the script's
    return path


def machine_info() -> dict[str, Any]:
    """CPU count and model, platform, Python, torch, its threads and CPU code path, GPU, load average,
    and the versions of the libraries that train (transformers, peft, accelerate)."""
    info: dict[str, Any] = {"cpus": os.cpu_count(), "cpu_model": _cpu_model(), "platform": platform.platform(),
                            "python": platform.python_version(), "torch": None, "torch_threads": None,
                            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "gpu": None,
                            "load_average": None}
    try:
        import torch

        info.update(torch=torch.__version__.split("+")[0], torch_threads=torch.get_num_threads())
        # the vector code path torch's CPU kernels use (AVX2, AVX512, ...): the figures of
        # seeded runs differ between paths (the Makefile pins one, CPU_ISA)
        capability = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
        info["cpu_capability"] = capability() if capability else None
        if torch.cuda.is_available():
            info["gpu"] = f"{torch.cuda.device_count()}x {torch.cuda.get_device_name(0)}"
    except ImportError:
        pass
    from importlib import metadata

    for name in ("transformers", "peft", "accelerate"):
        try:
            info[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            info[name] = None
    if hasattr(os, "getloadavg"):
        info["load_average"] = [round(x, 2) for x in os.getloadavg()]
    return info


def git_info(folder: str | Path) -> dict[str, Any]:
    """Short commit hash and whether the checkout has changes (``benchmarks/results/`` aside)."""
    def git(*cmd: str) -> str | None:
        try:
            done = subprocess.run(["git", *cmd], cwd=folder, capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = git("rev-parse", "--short", "HEAD")
    if commit is None:
        return {"commit": None, "dirty": None}
    status = git("status", "--porcelain", "--", ".", ":(exclude)benchmarks/results")
    return {"commit": commit.strip(), "dirty": None if status is None else bool(status.strip())}


# ----------------------------------------------------------------------------- helpers


def _num(x: Any) -> float | int | None:
    if x is None:
        return None
    if hasattr(x, "item"):  # numpy scalars
        x = x.item()
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    x = float(x)
    return None if math.isnan(x) or math.isinf(x) else x


def _jsonable(x: Any) -> Any:
    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, Path):
        return str(x)
    if isinstance(x, float) or hasattr(x, "item"):
        return _num(x)
    return x


def _git_root(folder: Path) -> Path | None:
    try:
        done = subprocess.run(["git", "rev-parse", "--show-toplevel"], cwd=folder, capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(done.stdout.strip()) if done.returncode == 0 else None


def _relative(path: Path, root: Path | None) -> str:
    if root is not None:
        try:
            return path.relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return path.as_posix()


def _argv_without_json(argv: Sequence[str]) -> list[str]:
    out, skip = [], False
    for i, a in enumerate(argv):
        if skip:
            skip = False
            continue
        if a == "--json":
            skip = i + 1 < len(argv) and not argv[i + 1].startswith("-")
            continue
        if a.startswith("--json="):
            continue
        out.append(a)
    return out


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _process_seconds() -> float | None:
    try:
        import psutil

        return round(time.time() - psutil.Process().create_time(), 1)
    except Exception:  # noqa: BLE001 (psutil missing or no process table: the field is optional)
        return None
