"""Rewrite the README's measured-figures table from the benchmarks' result files.

Reads every ``benchmarks/results/*.json`` (written by ``benchmarks/bench_*.py --json``, see
``ilpnb/figures.py`` for the schema) and replaces what lies between the ``<!-- figures:start -->``
and ``<!-- figures:end -->`` markers of README.md by a table with one row per figure: what,
the figure (mean ± sd where seeded runs were averaged), the machine / threads / seeds it was
measured with, the script and its arguments, the commit and date. Benchmark scripts with no
result file yet are named below the table. The rest of the README is left byte for byte.

    python tools/figures.py [--results benchmarks/results] [--readme README.md] [--check]

``--check`` changes nothing and exits 1 when the README's table is not the one the results
give. Exits 2 with a message when the markers are missing or a result file is malformed.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

START, END = "<!-- figures:start -->", "<!-- figures:end -->"
ROOT = Path(__file__).resolve().parents[1]
# the order of the rows (benchmarks not listed follow, alphabetically)
ORDER = ("bench_base_model", "bench_diagnosis", "bench_shortcuts", "bench_sft_exact", "bench_tracking_overhead",
         "bench_trl_throughput", "bench_interactions", "bench_registry", "bench_real_track", "bench_mitigation")
REQUIRED = ("benchmark", "script", "date", "git", "machine", "figures")
HEADER = ("| what | figure | machine · threads · seeds | script | commit |\n"
          "| --- | --- | --- | --- | --- |")


class FiguresError(Exception):
    """A README without the markers, or a result file that cannot be read."""


# ----------------------------------------------------------------------------- reading


def load_results(folder: str | Path) -> list[dict[str, Any]]:
    """Every ``*.json`` of ``folder`` (none if it does not exist), in the table's order."""
    folder = Path(folder)
    results = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise FiguresError(f"{path}: not a readable JSON file ({err})") from err
        missing = [k for k in REQUIRED if k not in data] if isinstance(data, dict) else list(REQUIRED)
        if missing:
            raise FiguresError(f"{path}: not a benchmark result file (missing {', '.join(missing)}); "
                               "write it with a benchmark's --json")
        for i, f in enumerate(data["figures"]):
            lacking = [k for k in ("key", "what", "value") if k not in f]
            if lacking:
                raise FiguresError(f"{path}: figure {i} lacks {', '.join(lacking)}")
        data["_path"] = str(path)
        results.append(data)
    rank = {name: i for i, name in enumerate(ORDER)}
    return sorted(results, key=lambda r: (rank.get(r["benchmark"], len(ORDER)), r["benchmark"], r["_path"]))


# ----------------------------------------------------------------------------- formatting


def _number(x: float | int | None, digits: int, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    sign = "+" if signed else ""
    return f"{x:{sign},.{max(0, digits)}f}"


def format_figure(f: Mapping[str, Any]) -> str:
    """The figure cell: the value in bold with its unit, then ± sd, the interval, n, min/max, note."""
    digits, signed, unit = int(f.get("digits", 2)), bool(f.get("signed")), f.get("unit", "") or ""
    if unit == "x":
        suffix = "×"
    elif unit == "%":
        suffix = "%"
    else:
        suffix = f" {unit}" if unit else ""

    def num(x: Any, sign: bool = False) -> str:
        return _number(x, digits, sign)

    text = f"**{num(f['value'], signed)}**"
    if f.get("sd") is not None:
        text += f" ± {num(f['sd'])}"
    if f["value"] is not None:
        text += suffix
    stats = ["mean ± sd"] if f.get("sd") is not None else []
    if f.get("ci") is not None:
        lo, hi = f["ci"]
        text += f" [{num(lo, signed)}, {num(hi, signed)}]"
        stats.append("95% CI")
    if f.get("n") is not None:
        stats.append(f"n = {f['n']}")
    if f.get("min") is not None:
        stats.append(f"min {num(f['min'])}")
    if f.get("max") is not None:
        stats.append(f"max {num(f['max'])}")
    if stats:
        text += f" ({', '.join(stats)})"
    if f.get("note"):
        text += f"; {f['note']}"
    return text


def _span(values: Sequence[int]) -> str:
    """``0–8`` for consecutive seeds, else ``0, 3, 5``."""
    v = sorted(int(x) for x in values)
    if len(v) > 2 and v == list(range(v[0], v[-1] + 1)):
        return f"{v[0]}–{v[-1]}"
    return ", ".join(str(x) for x in v)


def format_machine(result: Mapping[str, Any]) -> str:
    """The machine cell: CPUs and GPU, torch threads, load, seeds, preset."""
    m = result.get("machine") or {}
    cpus = m.get("cpus")
    parts = [f"{cpus} CPU{'s' if cpus != 1 else ''}" if cpus else "CPUs unknown"]
    parts[0] += f", GPU {m['gpu']}" if m.get("gpu") else ", no GPU"
    threads = m.get("torch_threads")
    if threads is not None:
        parts.append(f"{threads} torch thread{'s' if threads != 1 else ''}"
                     + (f" ({m['cpu_capability']})" if m.get("cpu_capability") else ""))
    load = m.get("load_average")
    if load:
        parts.append(f"load {load[1]:.1f}")
    seeds = result.get("seeds") or {}
    if seeds:
        parts.append("seeds: " + "; ".join(f"{name} {{{_span(v)}}}" for name, v in seeds.items()))
    else:
        parts.append("no seeds (nothing random measured)")
    if result.get("preset"):
        parts.append(f"preset `{result['preset']}`")
    return " · ".join(parts)


def format_script(result: Mapping[str, Any]) -> str:
    command = result.get("command") or [result["script"]]
    return "`" + " ".join(str(c) for c in command) + "`"


def format_commit(result: Mapping[str, Any]) -> str:
    git = result.get("git") or {}
    commit = f"`{git['commit']}`" if git.get("commit") else "no commit"
    if git.get("dirty"):
        commit += " + changes"
    return f"{commit}, {str(result.get('date', ''))[:10]}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render(results: Sequence[Mapping[str, Any]], scripts: Iterable[str] = ()) -> str:
    """The Markdown put between the markers: the table, then the scripts without a result."""
    lines = [HEADER]
    for r in results:
        machine, script, commit = format_machine(r), format_script(r), format_commit(r)
        for f in r["figures"]:
            lines.append("| " + " | ".join(_cell(c) for c in (f["what"], format_figure(f), machine, script, commit))
                         + " |")
    if not results:
        lines.append("| (no result files yet: run `make figures`) | | | | |")
    done = {r["benchmark"] for r in results}
    pending = [s for s in scripts if Path(s).stem not in done]
    text = "\n".join(lines)
    text += ("\n\nGenerated by `make figures` (`tools/figures.py`) from `benchmarks/results/*.json`; "
             "do not edit by hand. Load is the 5-minute load average when the benchmark finished.")
    if pending:
        text += "\nNo result yet: " + ", ".join(f"`{s}`" for s in pending) + "."
    return text


def replace_block(readme: str, block: str, name: str = "README.md") -> str:
    """``readme`` with the text between the markers replaced by ``block`` (markers kept)."""
    starts, ends = readme.count(START), readme.count(END)
    if starts != 1 or ends != 1:
        raise FiguresError(f"{name}: needs exactly one {START} and one {END} line around the figures table "
                           f"(found {starts} and {ends}); add them where the table goes")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    if END in head:
        raise FiguresError(f"{name}: {END} comes before {START}")
    return f"{head}{START}\n{block.strip()}\n{END}{tail}"


def benchmark_scripts(folder: str | Path, root: str | Path = ROOT) -> list[str]:
    """The ``bench_*.py`` scripts of a folder, as paths relative to ``root`` where possible."""
    out = []
    for p in sorted(Path(folder).glob("bench_*.py")):
        try:
            out.append(p.resolve().relative_to(Path(root).resolve()).as_posix())
        except ValueError:
            out.append(p.as_posix())
    return out


def update_readme(readme: str | Path, results_dir: str | Path, scripts_dir: str | Path | None = None,
                  check: bool = False) -> bool:
    """Rewrite (or with ``check`` only compare) the README's table; whether it changed."""
    readme = Path(readme)
    results_dir = Path(results_dir)
    old = readme.read_text()
    scripts = benchmark_scripts(scripts_dir if scripts_dir is not None else results_dir.parent, readme.parent)
    new = replace_block(old, render(load_results(results_dir), scripts), readme.name)
    if new != old and not check:
        readme.write_text(new)
    return new != old


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results"), help="folder of result JSON files")
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--scripts", default=None,
                        help="folder of the bench_*.py scripts (default: the results folder's parent)")
    parser.add_argument("--check", action="store_true", help="only check that the table is up to date")
    args = parser.parse_args(argv)
    try:
        changed = update_readme(args.readme, args.results, args.scripts, check=args.check)
    except (FiguresError, FileNotFoundError) as err:
        print(f"tools/figures.py: error: {err}", file=sys.stderr)
        return 2
    n = len(list(Path(args.results).glob("*.json"))) if Path(args.results).is_dir() else 0
    if args.check:
        print(f"{args.readme}: figures table {'out of date' if changed else 'up to date'} ({n} result files)")
        return 1 if changed else 0
    print(f"{args.readme}: figures table {'rewritten' if changed else 'unchanged'} from {n} result files in "
          f"{args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
