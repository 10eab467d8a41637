"""tools/figures.py: the README's measured-figures table from benchmark result files, and
ilpnb.figures, which writes those files. No benchmark is run."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pytest
from script_loader import load_script

from ilpnb.figures import add_json_option, figure, write_results

tf = load_script("tools/figures.py", "tools_figures")

README = """# project

Intro text | with a pipe, kept.

## Measured figures

Some prose.

<!-- figures:start -->
| old | hand-typed | table |
| --- | --- | --- |
| 1 | 2 | 3 |
<!-- figures:end -->

Trailing prose, kept byte for byte.
"""


def _result(name: str, figures: list[dict], *, seeds: dict, threads: int, preset: str | None = None,
            command: list[str] | None = None) -> dict:
    return {"schema": 1, "benchmark": name, "script": f"benchmarks/{name}.py",
            "command": command or [f"benchmarks/{name}.py"], "date": "2025-03-04T05:06:07+00:00", "wall_s": 12.0,
            "git": {"commit": "abc1234", "dirty": True},
            "machine": {"cpus": 2, "cpu_model": "Test CPU", "platform": "Linux", "python": "3.11",
                        "torch": "2.13.0", "torch_threads": threads, "omp_num_threads": "1", "gpu": None,
                        "load_average": [1.0, 3.25, 2.0]},
            "preset": preset, "seeds": seeds, "settings": {}, "figures": figures}


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    """A README copy, benchmarks/ with three scripts and two result files (one seeded)."""
    (tmp_path / "README.md").write_text(README)
    bench = tmp_path / "benchmarks"
    (bench / "results").mkdir(parents=True)
    for name in ("bench_diagnosis", "bench_registry", "bench_mitigation"):
        (bench / f"{name}.py").write_text("")
    diag = _result("bench_diagnosis", [
        figure("macro_f1", "diagnosis vs the planted truth", 0.9551, digits=3, sd=0.0123, n=12, min=0.938,
               note="macro-F1"),
        figure("best_sft_only", "best shortcut baseline", 0.31, digits=2),
    ], seeds={"sft": [0, 1, 2], "project worlds": [4, 0]}, threads=1, preset="default",
        command=["benchmarks/bench_diagnosis.py", "--seeds", "3"])
    reg = _result("bench_registry", [figure("first_load_s", "first load (GGUF → safetensors)", 31.26, "s", digits=1),
                                     figure("ratio", "first / cached", 98.4, "x", digits=0)],
                  seeds={}, threads=2)
    (bench / "results" / "bench_diagnosis.json").write_text(json.dumps(diag))
    (bench / "results" / "bench_registry.json").write_text(json.dumps(reg))
    return tmp_path


def _block(text: str) -> str:
    return text.split(tf.START, 1)[1].split(tf.END, 1)[0]


def test_renders_rows_between_markers(tree: Path) -> None:
    readme = tree / "README.md"
    assert tf.main(["--readme", str(readme), "--results", str(tree / "benchmarks" / "results")]) == 0
    text = readme.read_text()
    # the markers stay, once each, and everything outside them is untouched
    assert text.count(tf.START) == 1 and text.count(tf.END) == 1
    assert text.split(tf.START)[0] == README.split(tf.START)[0]
    assert text.split(tf.END)[1] == README.split(tf.END)[1]
    block = _block(text)
    assert "hand-typed" not in block
    rows = [line for line in block.splitlines() if line.startswith("| ") and "---" not in line]
    assert rows[0].startswith("| what | figure | machine")
    body = rows[1:]
    assert len(body) == 4  # one row per figure; diagnosis (ORDER) before registry
    assert body[0].startswith("| diagnosis vs the planted truth |")
    # mean ± sd where seeds were averaged, with n and min
    assert "**0.955** ± 0.012 (mean ± sd, n = 12, min 0.938); macro-F1" in body[0]
    # machine, threads and seeds on every row
    for row in body:
        assert "2 CPUs, no GPU" in row and "load 3.2" in row and "`abc1234` + changes, 2025-03-04" in row
    assert "1 torch thread ·" in body[0] and "seeds: sft {0–2}; project worlds {0, 4}" in body[0]
    assert "preset `default`" in body[0] and "`benchmarks/bench_diagnosis.py --seeds 3`" in body[0]
    assert "2 torch threads" in body[2] and "no seeds" in body[2]
    assert "**31.3** s" in body[2] and "**98**×" in body[3] and " ± " not in body[2]
    # a benchmark with no result file is named, the others not
    pending = [line for line in block.splitlines() if line.startswith("No result yet")]
    assert pending == ["No result yet: `benchmarks/bench_mitigation.py`."]
    # a second run changes nothing; --check agrees
    assert tf.update_readme(readme, tree / "benchmarks" / "results") is False
    assert tf.main(["--readme", str(readme), "--results", str(tree / "benchmarks" / "results"), "--check"]) == 0


def test_check_flags_a_stale_table(tree: Path) -> None:
    assert tf.main(["--readme", str(tree / "README.md"), "--results", str(tree / "benchmarks" / "results"),
                    "--check"]) == 1
    assert (tree / "README.md").read_text() == README  # --check writes nothing


def test_missing_markers_is_a_clear_error(tree: Path, capsys: pytest.CaptureFixture[str]) -> None:
    readme = tree / "README.md"
    readme.write_text(README.replace(tf.END + "\n", ""))
    with pytest.raises(tf.FiguresError, match="figures:end"):
        tf.update_readme(readme, tree / "benchmarks" / "results")
    readme.write_text("# no markers at all\n")
    assert tf.main(["--readme", str(readme), "--results", str(tree / "benchmarks" / "results")]) == 2
    err = capsys.readouterr().err
    assert "<!-- figures:start -->" in err and "<!-- figures:end -->" in err and "found 0 and 0" in err
    assert readme.read_text() == "# no markers at all\n"


def test_malformed_result_file_names_the_file(tree: Path) -> None:
    bad = tree / "benchmarks" / "results" / "bench_bad.json"
    bad.write_text(json.dumps({"benchmark": "bench_bad"}))
    with pytest.raises(tf.FiguresError, match="bench_bad.json.*missing"):
        tf.load_results(bad.parent)


def test_write_results_schema(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeds", type=int, default=2)
    add_json_option(parser)
    script = tmp_path / "bench_thing.py"
    script.write_text("")
    monkeypatch.setattr(sys, "argv", [str(script), "--json", "--seeds", "2"])
    args = parser.parse_args(sys.argv[1:])
    assert args.json == "auto"
    assert write_results(parser.parse_args([]), script, [figure("k", "w", 1.0)]) is None  # no --json: no file
    path = write_results(args, script, [figure("k", "what", 0.5, "s", sd=float("nan"), n=2)],
                         preset="smoke", seeds={"sft": [0, 1]})
    assert path == tmp_path / "results" / "bench_thing.json"
    data = json.loads(path.read_text())
    assert data["benchmark"] == "bench_thing" and data["schema"] == 1
    assert data["command"][1:] == ["--seeds", "2"]  # --json left out
    assert data["seeds"] == {"sft": [0, 1]} and data["preset"] == "smoke" and data["settings"] == {"seeds": 2}
    assert {"cpus", "platform", "torch_threads", "load_average", "gpu", "cpu_capability", "transformers"} <= set(
        data["machine"])
    import torch

    assert data["machine"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert data["machine"]["transformers"]  # installed: its version is recorded
    assert set(data["git"]) == {"commit", "dirty"} and data["date"]
    assert data["figures"] == [{"key": "k", "what": "what", "value": 0.5, "unit": "s", "digits": 2, "n": 2}]
    other = write_results(str(tmp_path / "x" / "out.json"), script, [figure("k", "w", 1)])
    assert other == tmp_path / "x" / "out.json" and other.exists()
    with pytest.raises(ValueError, match="repeat"):
        write_results(args, script, [figure("k", "a", 1), figure("k", "b", 2)])


def test_write_results_stamps_the_commit_the_benchmark_started_on(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import subprocess

    repo = tmp_path / "repo"
    (repo / "benchmarks").mkdir(parents=True)
    script = repo / "benchmarks" / "bench_thing.py"
    script.write_text("")

    def git(*cmd: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *cmd], cwd=repo, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    git("add", "-A")
    git("commit", "-q", "-m", "first")
    first = git("rev-parse", "--short", "HEAD")
    monkeypatch.setattr(sys, "argv", [str(script), "--json"])
    parser = argparse.ArgumentParser()
    add_json_option(parser)  # the benchmark starts on the first commit ...
    (repo / "other.py").write_text("x = 1\n")
    git("add", "-A")
    git("commit", "-q", "-m", "second")  # ... and something is committed while it runs
    data = json.loads(write_results(parser.parse_args(["--json"]), script, [figure("k", "w", 1.0)]).read_text())
    assert data["git"] == {"commit": first, "dirty": False}
    assert data["git_at_end"] == {"commit": git("rev-parse", "--short", "HEAD"), "dirty": False}
