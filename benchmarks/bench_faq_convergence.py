"""Benchmark: the unplanted FAQ track trained until the convergence rule holds, over SFT seeds.

Notebook 09's FAQ run, as ``ilpnb.pipeline.realtrack`` makes it at a preset: the preset's seeded
subset of ``faq-en`` (drawn once, with the data seed, so every SFT seed trains the same samples),
SmolLM2-135M-Instruct with LoRA and the real track's settings, trained until the convergence rule
holds (``real.faq_epochs`` the cap). Prints, per SFT seed, the convergence verdict and the share
unlearned at the end under each criterion (the phenomenon after convergence), then the
agreement of the unlearned sets of the seeds (Cohen's kappa per criterion), and whether the
unlearned samples are the set's duplicated questions with different answers.

    python benchmarks/bench_faq_convergence.py [--preset default] [--seeds 0 1] [--data-seed 0]
                                               [--threads N] [--out DIR] [--json [PATH]]

``--out`` keeps the runs (``DIR/run-seed<S>``, reused when run again; a reused run is not timed).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import tempfile
import time
from collections import Counter
from pathlib import Path

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def _run(root: Path, data: Path, preset: str, seed: int) -> dict:
    from ilpnb.pipeline.realtrack import real_job, real_settings, unlearned_by_criterion
    from ilpnb.runs import Run
    from ilpnb.train.convergence import describe
    from ilpnb.train.sft import run_sft

    run = root / f"run-seed{seed}"
    reused = (run / "samples.parquet").exists()
    t0 = time.perf_counter()
    if not reused:
        job = real_job(preset)
        job["sft"] = {**job["sft"], "epochs": real_settings(preset).faq_epochs, "seed": seed}
        run_sft(run, model="smollm2-135m-instruct", data=str(data), progress=False, resume=run.exists(), **job)
    seconds = time.perf_counter() - t0
    stages = json.loads((run / "convergence.json").read_text())["stages"]
    by = unlearned_by_criterion(Run(run).dynamics())
    print(f"\n== SFT seed {seed}" + (" (reused from --out: not timed)" if reused else f": {seconds:.0f} s"))
    print(describe(stages))
    print(by.round(3).to_string())
    return {"seed": seed, "run": run, "reused": reused, "seconds": seconds, "stages": stages,
            "unlearned": by["unlearned_end"].to_dict()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--data-seed", type=int, default=0, help="seed of the subset every SFT seed trains on")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="folder to keep the runs in (default: temporary)")
    add_json_option(parser)
    args = parser.parse_args()
    keep = args.out is not None
    root = Path(args.out) if keep else Path(tempfile.mkdtemp(prefix="ilpnb-bench-faq-"))
    root.mkdir(parents=True, exist_ok=True)

    import torch

    from ilpnb.data.packaged import resolve_data
    from ilpnb.data.records import read_records, write_records
    from ilpnb.pipeline.realtrack import final_rows, real_settings, select_subset
    from ilpnb.probe.criteria import CRITERIA, learned
    from ilpnb.runs import Run
    from ilpnb.train.derived import cohen_kappa

    if args.threads:
        torch.set_num_threads(args.threads)
    s = real_settings(args.preset)
    data = root / f"faq-en-{args.preset}-n{s.samples}-seed{args.data_seed}.jsonl"
    if not data.exists():
        write_records(select_subset(resolve_data("faq-en"), s.samples, args.data_seed, s.conflict_groups,
                                    s.max_answer_chars), data)
    records = read_records(data)
    print(f"preset {args.preset}, torch threads {torch.get_num_threads()}, {len(records)} FAQ samples "
          f"(answers <= {s.max_answer_chars} characters, {s.conflict_groups} duplicated-question groups kept), "
          f"cap {s.faq_epochs} epochs, SFT seeds {args.seeds}")
    results = [_run(root, data, args.preset, seed) for seed in args.seeds]

    ends = {r["seed"]: final_rows(Run(r["run"]).dynamics()) for r in results}  # indexed by id
    kappas: dict[str, list[float]] = {c: [] for c in CRITERIA}
    for a, b in itertools.combinations(sorted(ends), 2):
        ids = ends[a].index.intersection(ends[b].index)
        for c in CRITERIA:
            ua = ~learned(ends[a].loc[ids].reset_index(), c).to_numpy()
            ub = ~learned(ends[b].loc[ids].reset_index(), c).to_numpy()
            kappas[c].append(cohen_kappa(ua, ub))
            print(f"seeds {a} vs {b}, {c}: kappa {kappas[c][-1]:.3f} (unlearned {int(ua.sum())} and {int(ub.sum())} "
                  f"of {len(ids)}, {int((ua & ub).sum())} in both)")
    prompts = Counter(r.prompt for r in records)
    for seed, end in ends.items():
        bad = end.reset_index()
        bad = bad[~learned(bad, "exact").to_numpy()]["id"].tolist()
        dup = sum(prompts[r.prompt] > 1 for r in records if r.id in set(bad))
        print(f"seed {seed}: {len(bad)} unlearned (exact), {dup} of them a duplicated question with another answer")

    converged = [all(st.get("converged") for st in r["stages"]) for r in results]
    epochs = [max(st["epoch"] for st in r["stages"]) for r in results]
    exact = [r["unlearned"]["exact"] for r in results]
    timed = [r["seconds"] for r in results if not r["reused"]]
    print(f"\nFAQ track, {len(results)} seed(s): converged {sum(converged)} of {len(results)} "
          f"(epochs {', '.join(f'{e:g}' for e in epochs)} of a cap of {s.faq_epochs}); unlearned (exact) "
          f"{', '.join(f'{x:.1%}' for x in exact)}; kappa (exact) "
          + (", ".join(f"{k:.2f}" for k in kappas["exact"]) or "n/a"))
    figures = [
        figure("faq_unlearned_exact", f"FAQ track after convergence: unlearned share, greedy exact ({args.preset})",
               sum(exact) / len(exact), digits=3, n=len(exact), min=min(exact), max=max(exact),
               note=f"converged {sum(converged)} of {len(results)} seeds"),
    ]
    if kappas["exact"]:
        figures.append(figure("faq_kappa_exact", "FAQ track: Cohen's kappa of the unlearned sets of two SFT seeds "
                              "(exact)", min(kappas["exact"]), digits=2, n=len(kappas["exact"])))
    if timed:
        figures.append(figure("faq_sft_minutes", f"FAQ SFT to convergence ({args.preset})",
                              sum(timed) / len(timed) / 60, "min", digits=1, n=len(timed)))
    write_results(args, __file__, figures, preset=args.preset, seeds={"sft": args.seeds, "data": [args.data_seed]},
                  extra={"runs": [{k: v for k, v in r.items() if k != "run"} for r in results],
                         "kappa": kappas})
    if not keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
