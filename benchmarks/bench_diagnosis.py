"""Benchmark: diagnosis quality (macro-F1 against the planted truth) of the frozen detectors
over many worlds — other seeds, mixes of ``counts`` and sizes of the project's world, and
worlds of a second template family (``benchmarks/heldout_worlds.py``) the detectors were
never tuned on — each fine-tuned with several SFT seeds, at one preset's model and SFT.

For each world x SFT seed: generate the world, pretrain its tiny base model (cached under
``OUT/cache``), fine-tune with per-sample tracking until converged (the cap is reported when
hit), diagnose, score over the unlearned samples, and run the model-free shortcut baselines
(``ilpnb.diagnose.baselines``) on the same unlearned samples. One line per run as it goes;
then per-cause F1 and macro-F1 as mean, sd and min over the runs (all, project family,
held-out family), the shortcut baselines per world, the share of unlearned samples that were
planted clean, and the wall time of each step. Every row goes to ``OUT/bench_diagnosis.json``.

``--json`` also writes the headline figures (macro-F1 mean, sd and min over the runs, per
family; the shortcut and corpus baselines) to ``benchmarks/results/bench_diagnosis.json``
(or PATH) for the README's table (``make figures``).

``--out`` is resumable: finished worlds, runs and diagnoses in it are reused (``--rediagnose``
diagnoses the runs again, e.g. after the detectors changed). Goal: mean macro-F1 >= 0.85,
min >= 0.75; every sft-only shortcut baseline <= 0.45.

    python benchmarks/bench_diagnosis.py [--preset default] [--seeds 2] [--worlds K]
                                         [--threads N] [--out DIR] [--rediagnose] [--json [PATH]]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.causes import CAUSES
from ilpnb.figures import add_json_option, figure, write_results

GOAL_MEAN, GOAL_MIN, GOAL_SHORTCUT = 0.85, 0.75, 0.45
PROJECT, HELDOUT = "project", "held-out"
HELDOUT_PATH = Path(__file__).resolve().parent / "heldout_worlds.py"

# The worlds, in order (``--worlds K`` takes the first K): a small project world first (the
# quickest check), and both families early. ``change`` overrides the preset's world config
# (project family); ``seed`` / ``size`` / ``mix`` go to ``write_heldout_world`` (held-out).
# Project seed 0 with the default mix is the preset's own world.
WORLDS: list[dict[str, Any]] = [
    {"name": "project seed 4, small world", "tag": "p-s4-small", "family": PROJECT,
     "change": {"seed": 4, "counts": {"none": 60, "missing_knowledge": 12, "pretrain_conflict": 12,
                                      "data_conflict": 12, "left_forgetting": 12, "rare_pattern": 12}}},
    {"name": "held-out seed 2, small world", "tag": "h-s2-small", "family": HELDOUT, "seed": 2, "size": "small"},
    {"name": "project seed 0, default mix", "tag": "p-s0", "family": PROJECT, "change": {"seed": 0}},
    {"name": "held-out seed 0, default mix", "tag": "h-s0", "family": HELDOUT, "seed": 0, "size": "default"},
    {"name": "project seed 1, default mix", "tag": "p-s1", "family": PROJECT, "change": {"seed": 1}},
    {"name": "project seed 3, skewed mix", "tag": "p-s3-skewed", "family": PROJECT,
     "change": {"seed": 3, "counts": {"none": 120, "missing_knowledge": 50, "pretrain_conflict": 15,
                                      "data_conflict": 40, "left_forgetting": 20, "rare_pattern": 25}}},
    {"name": "held-out seed 1, default mix", "tag": "h-s1", "family": HELDOUT, "seed": 1, "size": "default"},
    {"name": "project seed 5, no forgetting", "tag": "p-s5-noforget", "family": PROJECT,
     "change": {"seed": 5, "counts": {"none": 150, "missing_knowledge": 40, "pretrain_conflict": 40,
                                      "data_conflict": 30, "left_forgetting": 0, "rare_pattern": 30}}},
    {"name": "project seed 2, default mix", "tag": "p-s2", "family": PROJECT, "change": {"seed": 2}},
    # added after the answer-form signals were chosen while looking at held-out seeds 0 and 2:
    # held-out worlds nobody had looked at when those rules were written
    {"name": "held-out seed 3, default mix", "tag": "h-s3", "family": HELDOUT, "seed": 3, "size": "default"},
    {"name": "held-out seed 4, small world", "tag": "h-s4-small", "family": HELDOUT, "seed": 4, "size": "small"},
]


# ----------------------------------------------------------------------------- pure helpers


def summarize(values: Any) -> dict[str, float]:
    """Mean, sample sd (ddof 1; NaN under 2 values), min, max and count of the non-NaN values."""
    v = np.asarray([x for x in values if x is not None], dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return {"mean": math.nan, "sd": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else math.nan,
            "min": float(v.min()), "max": float(v.max()), "n": int(len(v))}


def cause_f1s(per_cause: pd.DataFrame) -> dict[str, float]:
    """Per-cause F1 of one run, NaN where the cause has no unlearned planted sample (support 0),
    the same causes macro-F1 averages over."""
    out = {}
    for c in CAUSES:
        if c in per_cause.index and per_cause.loc[c, "support"] > 0:
            out[c] = float(per_cause.loc[c, "f1"])
        else:
            out[c] = math.nan
    return out


def unlearned_clean_share(diagnosis: pd.DataFrame, truth: pd.Series) -> tuple[int, int, float]:
    """Unlearned samples of a diagnosis, how many were planted ``none``, and their share."""
    un = diagnosis.loc[~diagnosis["learned"].astype(bool), "id"].astype(str)
    planted = truth.reindex(un.to_numpy())
    clean = int((planted == "none").sum())
    return len(un), clean, (clean / len(un) if len(un) else math.nan)


def unlearned_forgotten_share(run: Path, diagnosis: pd.DataFrame) -> float:
    """Share of a run's unlearned samples that were reproduced after their last training step
    and lost by the end (:func:`ilpnb.diagnose.schedule.forgetting_table`): where it is high,
    the run's incomplete learning is mostly forgetting, whatever cause was planted."""
    from ilpnb.diagnose.schedule import forgetting_table
    from ilpnb.probe.criteria import learned
    from ilpnb.runs import Run

    reader = Run(run)
    dyn = reader.dynamics()
    dyn["id"] = dyn["id"].astype(str)
    criterion = reader.config.get("sft", {}).get("criterion", "exact")
    table = forgetting_table(dyn, learned(dyn, criterion), reader.schedule())
    un = diagnosis.loc[~diagnosis["learned"].astype(bool), "id"].astype(str)
    return float(table["forgotten"].reindex(un.to_numpy()).fillna(False).astype(bool).mean()) if len(un) else math.nan


def clean_known_share(run: Path, gold: pd.Series, truth: pd.Series) -> float:
    """Planting fidelity seen through the diagnosis's own evidence: the share of samples planted
    ``none`` whose gold answer the base model's greedy answer to the sample's own prompt agrees
    with (``RUN/evidence/knowledge.parquet``: right by the category rule, or saying the gold's
    value in another style, "ivory" for "Its fur is ivory."). A world whose clean samples the
    base model cannot answer plants missing knowledge under the label ``none``, whatever its
    probes recall (``gold``: id -> the SFT response); NaN without the evidence."""
    from ilpnb.diagnose.evidence import consistent_answers

    path = run / "evidence" / "knowledge.parquet"
    if not path.exists():
        return math.nan
    know = pd.read_parquet(path)
    clean = [i for i in truth[truth == "none"].index.astype(str) if i in know.index and i in gold.index]
    if not clean:
        return math.nan
    k = know.loc[clean]
    agree = [bool(c) or (isinstance(a, str) and consistent_answers(a, g))
             for c, a, g in zip(k["greedy_correct"].fillna(False), k["greedy"], gold.reindex(clean))]
    return float(np.mean(agree))


def unlearned_by_stage(diagnosis: pd.DataFrame, truth: pd.Series, stage: pd.Series) -> dict[str, int]:
    """Per planted cause (``none`` too), the samples of the last stage and of the earlier
    stages and how many of each are unlearned: ``n_last_<cause>``, ``unlearned_last_<cause>``,
    ``n_earlier_<cause>``, ``unlearned_earlier_<cause>`` (``stage``: id -> stage; a sample not
    in it counts as in the last stage). Where a cause is unlearned only in the earlier
    stages, what the run failed to learn of it is what later training made it forget."""
    d = diagnosis.assign(id=diagnosis["id"].astype(str)).set_index("id")
    st = stage.reindex(d.index)
    last = (st.isna() | (st >= stage.max())).to_numpy() if len(stage) else np.ones(len(d), bool)
    planted = truth.reindex(d.index).fillna("none").to_numpy()
    unlearned = ~d["learned"].astype(bool).to_numpy()
    out = {}
    for c in ("none", *CAUSES):
        mine = planted == c
        for where, sel in (("last", last), ("earlier", ~last)):
            out[f"n_{where}_{c}"] = int((mine & sel).sum())
            out[f"unlearned_{where}_{c}"] = int((mine & sel & unlearned).sum())
    return out


def stage_table(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`unlearned_by_stage` pooled over runs: per planted cause, the unlearned share
    (and count) of its samples in the earlier stages and in the last stage."""
    out = {}
    for c in ("none", *CAUSES):
        line = {}
        for where in ("earlier", "last"):
            n = sum(r.get(f"n_{where}_{c}", 0) for r in rows)
            u = sum(r.get(f"unlearned_{where}_{c}", 0) for r in rows)
            line[f"{where} unlearned"] = f"{u}/{n}" + (f" ({100 * u / n:.0f}%)" if n else "")
        out[c] = line
    return pd.DataFrame(out).T


def convergence_summary(stages: list[dict[str, Any]]) -> tuple[bool, str]:
    """Whether every stage converged, and one short text per stage: ``s0 converged e12`` /
    ``s1 cap e30`` / ``s0 unchecked e30`` (epoch at the stage's end)."""
    parts, ok = [], bool(stages)
    for i, s in enumerate(stages):
        stage = s.get("stage", i)
        epoch = s.get("epoch")
        at = f" e{epoch:g}" if isinstance(epoch, (int, float)) else ""
        if not s.get("checked", True):
            state, ok = "unchecked", False
        elif s.get("converged"):
            state = "converged"
        else:
            state, ok = "cap", False
        parts.append(f"s{stage} {state}{at}")
    return ok, (", ".join(parts) if parts else "no convergence.json")


def baseline_summary(table: pd.DataFrame | None) -> dict[str, Any]:
    """From a ``score_baselines`` table: the best baseline that reads only ``sft.jsonl`` (name
    and macro-F1) and the ``corpus`` baseline's macro-F1 (NaN where absent)."""
    if table is None or len(table) == 0:
        return {"best_sft_only": math.nan, "best_sft_only_name": None, "corpus": math.nan}
    sft = table[table["reads"] == "sft.jsonl"]
    best = sft.loc[sft["macro_f1"].idxmax()] if sft["macro_f1"].notna().any() else None
    corpus = table.loc[table["name"] == "corpus", "macro_f1"]
    return {"best_sft_only": float(best["macro_f1"]) if best is not None else math.nan,
            "best_sft_only_name": str(best["name"]) if best is not None else None,
            "corpus": float(corpus.iloc[0]) if len(corpus) else math.nan}


def make_row(world: dict[str, Any], sft_seed: int, diagnosis: pd.DataFrame, truth: pd.Series, score: Any,
             baselines: pd.DataFrame | None, stages: list[dict[str, Any]], times: dict[str, float],
             forgotten_share: float = math.nan) -> dict[str, Any]:
    """One result row of a world x SFT seed (``score``: a DiagnosisScore or anything with
    ``per_cause``, ``macro_f1``, ``scored``, ``excluded_learned``; ``forgotten_share``: of
    :func:`unlearned_forgotten_share`)."""
    unlearned, clean, share = unlearned_clean_share(diagnosis, truth)
    converged, conv = convergence_summary(stages)
    row: dict[str, Any] = {"world": world["name"], "tag": world["tag"], "family": world["family"],
                           "sft_seed": int(sft_seed), "samples": int(len(diagnosis)), "unlearned": unlearned,
                           "scored": int(score.scored), "planted_but_learned": int(getattr(score, "excluded_learned", 0)),
                           "unlearned_clean": clean, "unlearned_clean_share": share,
                           "unlearned_forgotten_share": forgotten_share,
                           "macro_f1": float(score.macro_f1)}
    for c, f in cause_f1s(score.per_cause).items():
        row[f"f1_{c}"] = f
    for c in CAUSES:
        row[f"support_{c}"] = int(score.per_cause.loc[c, "support"]) if c in score.per_cause.index else 0
    row.update(baseline_summary(baselines))
    row.update({"converged": converged, "convergence": conv})
    row.update({k: round(float(v), 1) for k, v in times.items()})
    return row


def aggregate(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Per-cause F1 and macro-F1 over runs: index the causes and ``macro-F1``, columns
    ``mean``, ``sd``, ``min``, ``n`` (runs where the cause was scored)."""
    out = {}
    for c in CAUSES:
        out[c] = summarize(r.get(f"f1_{c}", math.nan) for r in rows)
    out["macro-F1"] = summarize(r["macro_f1"] for r in rows)
    table = pd.DataFrame(out).T[["mean", "sd", "min", "n"]]
    table["n"] = table["n"].astype(int)
    return table


def aggregate_by_family(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """:func:`aggregate` over all runs and over each family, side by side (columns
    ``(family, stat)`` with family ``all``, ``project``, ``held-out`` where present)."""
    parts = {"all": aggregate(rows)}
    for fam in (PROJECT, HELDOUT):
        sub = [r for r in rows if r["family"] == fam]
        if sub:
            parts[fam] = aggregate(sub)
    return pd.concat(parts, axis=1)


def per_world(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """One line per world: runs, macro-F1 mean/min, unlearned and clean share (means), the best
    sft-only shortcut and the corpus baseline (mean/max over SFT seeds), converged runs."""
    lines = []
    for tag in dict.fromkeys(r["tag"] for r in rows):
        sub = [r for r in rows if r["tag"] == tag]
        m = summarize(r["macro_f1"] for r in sub)
        b = summarize(r["best_sft_only"] for r in sub)
        k = summarize(r["corpus"] for r in sub)
        lines.append({"world": sub[0]["world"], "family": sub[0]["family"], "runs": len(sub),
                      "macro_mean": m["mean"], "macro_min": m["min"],
                      "unlearned": summarize(r["unlearned"] for r in sub)["mean"],
                      "clean_share": summarize(r["unlearned_clean_share"] for r in sub)["mean"],
                      "clean_known": summarize(r.get("clean_known", math.nan) for r in sub)["mean"],
                      "sft_only_mean": b["mean"], "sft_only_max": b["max"],
                      "corpus_mean": k["mean"], "corpus_max": k["max"],
                      "converged": f"{sum(bool(r['converged']) for r in sub)}/{len(sub)}"})
    return pd.DataFrame(lines).set_index("world") if lines else pd.DataFrame()


def _fmt(x: float, digits: int) -> str:
    return "nan" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def final_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The two closing lines: macro-F1 over the runs, and the best sft-only shortcut baseline."""
    m = summarize(r["macro_f1"] for r in rows)
    b = summarize(r["best_sft_only"] for r in rows)
    return [f"macro-F1 over {len(rows)} runs: mean {_fmt(m['mean'], 3)}, sd {_fmt(m['sd'], 3)}, "
            f"min {_fmt(m['min'], 3)} (goal mean >= {GOAL_MEAN}, min >= {GOAL_MIN})",
            f"best sft-only shortcut baseline macro-F1: mean {_fmt(b['mean'], 2)}, max {_fmt(b['max'], 2)} "
            f"(goal <= {GOAL_SHORTCUT})"]


def headline_figures(rows: list[dict[str, Any]], n_worlds: int, n_fam: dict[str, int]) -> list[dict[str, Any]]:
    """The figures of the README's table: macro-F1 mean ± sd (min, n runs) over all runs and per
    family, the best sft-only shortcut baseline and the corpus baseline (mean, max)."""
    out = []
    def worlds(k: int, kind: str = "") -> str:
        return f"{k} {kind}world{'s' * (k != 1)}"

    for key, fam, label in (("macro_f1", None, f"{worlds(n_worlds)} ({n_fam[PROJECT]} project, "
                                                 f"{n_fam[HELDOUT]} held-out family)"),
                            ("macro_f1_project", PROJECT, worlds(n_fam[PROJECT], "project-family ")),
                            ("macro_f1_heldout", HELDOUT, worlds(n_fam[HELDOUT], "held-out-family "))):
        sub = [r for r in rows if fam is None or r["family"] == fam]
        if not sub or (fam is not None and len(sub) == len(rows)):
            continue  # a family that is all the runs repeats the first row
        m = summarize(r["macro_f1"] for r in sub)
        goal = f" (goal mean >= {GOAL_MEAN}, min >= {GOAL_MIN})" if fam is None else ""
        out.append(figure(key, f"diagnosis vs the planted truth, {label}", m["mean"], digits=3, sd=m["sd"],
                          n=m["n"], min=m["min"], note=f"macro-F1 over world × SFT seed runs{goal}"))
    b = summarize(r["best_sft_only"] for r in rows)
    out.append(figure("best_sft_only_shortcut", "best shortcut baseline reading only sft.jsonl, on each run's "
                      "unlearned samples", b["mean"], digits=2, sd=b["sd"], n=b["n"], max=b["max"],
                      note=f"macro-F1 (goal <= {GOAL_SHORTCUT})"))
    k = summarize(r["corpus"] for r in rows)
    out.append(figure("corpus_baseline", "corpus baseline (reads pretrain.txt too), on each run's unlearned "
                      "samples", k["mean"], digits=2, sd=k["sd"], n=k["n"], max=k["max"], note="macro-F1"))
    f = summarize(r.get("unlearned_forgotten_share", math.nan) for r in rows)
    out.append(figure("unlearned_forgotten", "unlearned samples reproduced after their last training step and "
                      "lost by the end", 100 * f["mean"], unit="%", digits=0, sd=100 * f["sd"], n=f["n"],
                      min=100 * f["min"], note="share of each run's unlearned samples"))
    return out


def world_seeds(worlds: list[dict[str, Any]]) -> dict[str, list[int]]:
    """The world seeds per family (project: ``change["seed"]``; held-out: ``seed``)."""
    out: dict[str, list[int]] = {}
    for w in worlds:
        seed = w["change"].get("seed", 0) if w["family"] == PROJECT else w["seed"]
        out.setdefault(f"{w['family']} worlds", []).append(int(seed))
    return out


def run_line(i: int, total: int, row: dict[str, Any]) -> str:
    """The progress line printed after each run."""
    times = ", ".join(f"{k[:-2]} {row[k]:.0f} s" for k in ("pretrain_s", "sft_s", "diagnose_s", "baselines_s")
                      if k in row)
    return (f"[{i}/{total}] {row['world']}, sft seed {row['sft_seed']}: macro-F1 {_fmt(row['macro_f1'], 3)} over "
            f"{row['scored']} unlearned ({_fmt(100 * row['unlearned_clean_share'], 0)}% planted clean, "
            f"{_fmt(100 * row.get('unlearned_forgotten_share', math.nan), 0)}% forgotten); "
            f"best sft-only shortcut {_fmt(row['best_sft_only'], 2)} ({row['best_sft_only_name']}), "
            f"corpus {_fmt(row['corpus'], 2)}; {row['convergence']}; {times}"
            + (" (reused)" if row.get("reused") else ""))


def jsonable(x: Any) -> Any:
    """NaN -> None, numpy scalars -> Python, recursively (strict JSON)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.generic):
        x = x.item()
    if isinstance(x, float) and math.isnan(x):
        return None
    return x


# ----------------------------------------------------------------------------- worlds and runs


def _load_heldout():
    spec = importlib.util.spec_from_file_location("heldout_worlds", HELDOUT_PATH)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("heldout_worlds", module)
    spec.loader.exec_module(module)
    return module


def make_world(world: dict[str, Any], preset: str, folder: Path) -> Path:
    """Write (or reuse, when it holds exactly the same world) a world folder."""
    if world["family"] == PROJECT:
        from ilpnb.config import get_preset
        from ilpnb.data.world import generate_world
        from ilpnb.data.world_config import WorldConfig

        cfg = WorldConfig.from_dict({**get_preset(preset).world.to_dict(), **world["change"]})
        try:
            return generate_world(cfg, folder)
        except FileExistsError as err:
            raise SystemExit(f"{err}\n(the world generator changed since {folder} was written: use a fresh --out)")
    hw = _load_heldout()
    if not folder.exists() or not any(folder.iterdir()):
        return hw.write_heldout_world(folder, seed=world["seed"], size=world["size"], mix=world.get("mix"))
    tmp = Path(tempfile.mkdtemp(prefix=".heldout-", dir=folder.parent))
    try:
        hw.write_heldout_world(tmp / "w", seed=world["seed"], size=world["size"], mix=world.get("mix"))
        names = sorted(p.name for p in (tmp / "w").iterdir())
        if any(not (folder / n).exists() or (folder / n).read_bytes() != (tmp / "w" / n).read_bytes() for n in names):
            raise SystemExit(f"{folder}: holds a different held-out world (its generator changed?): use a fresh --out")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return folder


def _times(path: Path) -> dict[str, float]:
    return json.loads(path.read_text()) if path.exists() else {}


def bench_one(world: dict[str, Any], world_dir: Path, sft_seed: int, root: Path, preset: str,
              rediagnose: bool, sft: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train (or reuse), diagnose (or reuse), score and run the baselines for one world x seed."""
    from ilpnb.config import get_preset
    from ilpnb.diagnose.attribution import write_diagnosis
    from ilpnb.diagnose.baselines import score_baselines
    from ilpnb.diagnose.scoring import read_truth_file, score_diagnosis
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.train.sft import run_sft

    run = root / "runs" / f"{world['tag']}-sft{sft_seed}"
    times_file = root / "times" / f"{world['tag']}-sft{sft_seed}.json"
    times_file.parent.mkdir(parents=True, exist_ok=True)
    times = _times(times_file)
    reused = []
    trained = (run / "dynamics.parquet").exists()
    p = get_preset(preset)
    t0 = time.perf_counter()
    pretrain_base_model(world_dir / "pretrain.txt", p.model, p.pretrain, progress=False)  # cached after the first
    t1 = time.perf_counter()
    run_sft(run, world=world_dir, preset=preset, progress=False, resume=run.exists(),
            sft={**(sft or {}), "seed": sft_seed})
    t2 = time.perf_counter()
    if trained:  # the times of the first pass stay (none if they were not recorded)
        reused.append("sft")
    else:  # pretrain_s is ~0 where the base model came from the cache (another SFT seed of the world)
        times.update(pretrain_s=t1 - t0, sft_s=t2 - t1)
    if (run / "diagnosis.parquet").exists() and not rediagnose and "diagnose_s" in times:
        diagnosis = pd.read_parquet(run / "diagnosis.parquet")
        reused.append("diagnosis")
    else:
        t3 = time.perf_counter()
        diagnosis = write_diagnosis(run)
        times["diagnose_s"] = time.perf_counter() - t3
    times_file.write_text(json.dumps(times, indent=1) + "\n")
    truth = read_truth_file(world_dir / "truth.jsonl")
    score = score_diagnosis(diagnosis, truth)
    unlearned = diagnosis.loc[~diagnosis["learned"].astype(bool), "id"].astype(str).tolist()
    t4 = time.perf_counter()
    baselines = score_baselines(world_dir, ids=unlearned) if unlearned else None
    times["baselines_s"] = time.perf_counter() - t4
    conv = run / "convergence.json"
    stages = json.loads(conv.read_text()).get("stages", []) if conv.exists() else []
    row = make_row(world, sft_seed, diagnosis, truth, score, baselines, stages,
                   {k: times[k] for k in ("pretrain_s", "sft_s", "diagnose_s", "baselines_s") if k in times},
                   unlearned_forgotten_share(run, diagnosis))
    records = pd.read_json(world_dir / "sft.jsonl", lines=True, dtype={"id": str})
    stage = records.set_index("id")["stage"] if "stage" in records else pd.Series(dtype=float)
    row.update(unlearned_by_stage(diagnosis, truth, stage))
    row["clean_known"] = clean_known_share(run, records.set_index("id")["response"], truth)
    row.update(reused=",".join(reused), run=str(run), world_dir=str(world_dir))
    return row


def report(rows: list[dict[str, Any]]) -> str:
    """The tables printed after the runs."""
    out = ["", "per-cause F1 and macro-F1 over runs (world x SFT seed; a cause counts in runs where it was scored)",
           aggregate_by_family(rows).round(3).to_string(), "",
           "per world (macro-F1 over SFT seeds; shortcut baselines on each run's unlearned samples, mean/max)",
           per_world(rows).round(3).to_string(), ""]
    share = summarize(r["unlearned_clean_share"] for r in rows)
    out.append(f"unlearned samples planted clean (none): mean {_fmt(100 * share['mean'], 1)}%, "
               f"min {_fmt(100 * share['min'], 1)}%, max {_fmt(100 * share['max'], 1)}% of the unlearned samples")
    out += ["samples unlearned per planted cause, in the stages before the last and in the last stage "
            "(pooled over runs)", stage_table(rows).to_string(), ""]
    lost = summarize(r.get("unlearned_forgotten_share", math.nan) for r in rows)
    out.append(f"unlearned samples forgotten (reproduced after their last training step, lost by the end): mean "
               f"{_fmt(100 * lost['mean'], 1)}%, min {_fmt(100 * lost['min'], 1)}%, max {_fmt(100 * lost['max'], 1)}%")
    fams = [(fam, summarize(r.get("clean_known", math.nan) for r in rows if r["family"] == fam))
            for fam in (PROJECT, HELDOUT)]
    out.append("planted-clean samples whose gold the base model agrees with (its greedy answer to their own prompt): "
               + ", ".join(f"{fam} mean {_fmt(100 * k['mean'], 1)}% (min {_fmt(100 * k['min'], 1)}%)"
                           for fam, k in fams if k["n"]))
    corpus = summarize(r["corpus"] for r in rows)
    out.append(f"corpus baseline macro-F1 (reads pretrain.txt too): mean {_fmt(corpus['mean'], 2)}, "
               f"max {_fmt(corpus['max'], 2)}")
    conv = sum(bool(r["converged"]) for r in rows)
    out.append(f"runs converged in every stage: {conv}/{len(rows)}")
    for k in ("pretrain_s", "sft_s", "diagnose_s", "baselines_s"):
        t = summarize(r.get(k, math.nan) for r in rows)
        out.append(f"{k[:-2]} wall time: mean {_fmt(t['mean'], 0)} s, max {_fmt(t['max'], 0)} s")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--worlds", type=int, default=len(WORLDS), help=f"the first K of {len(WORLDS)} worlds")
    parser.add_argument("--seeds", type=int, default=2, help="SFT seeds per world (0..N-1)")
    parser.add_argument("--threads", type=int, default=0, help="torch / OpenMP threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="folder for worlds, runs and results (default: a temp folder); "
                                                    "reused when given again")
    parser.add_argument("--rediagnose", action="store_true", help="diagnose reused runs again")
    parser.add_argument("--sft", default="{}", help="SFT settings over the preset's, as JSON (e.g. '{\"lr\": 1e-4}'); "
                                                   "use another --out for other settings")
    add_json_option(parser)
    args = parser.parse_args(argv)
    if args.threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            os.environ[var] = str(args.threads)
    root = Path(args.out or tempfile.mkdtemp(prefix="ilpnb-diag-")).resolve()
    root.mkdir(parents=True, exist_ok=True)
    os.environ["ILPNB_CACHE"] = str(root / "cache")
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
        try:
            torch.set_num_interop_threads(args.threads)
        except RuntimeError:
            pass
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # no "Writing model shards" bar at every checkpoint
    pd.set_option("display.width", 250)
    worlds = WORLDS[: args.worlds]
    seeds = list(range(args.seeds))
    total = len(worlds) * len(seeds)
    print(f"bench_diagnosis: preset {args.preset} (SFT overrides {args.sft}), {len(worlds)} worlds x {len(seeds)} SFT seeds = {total} runs, "
          f"out {root}", flush=True)
    rows: list[dict[str, Any]] = []
    sft = json.loads(args.sft)
    meta = {"preset": args.preset, "seeds": seeds, "worlds": worlds, "out": str(root), "sft": sft}
    for world in worlds:
        world_dir = make_world(world, args.preset, root / "worlds" / world["tag"])
        for s in seeds:
            row = bench_one(world, world_dir, s, root, args.preset, args.rediagnose, sft)
            rows.append(row)
            print(run_line(len(rows), total, row), flush=True)
            meta.update(threads=torch.get_num_threads(), cpus=os.cpu_count())
            (root / "bench_diagnosis.json").write_text(json.dumps(jsonable({**meta, "rows": rows}), indent=1) + "\n")
    summary = {"all": aggregate(rows).to_dict(orient="index"),
               **{fam: aggregate([r for r in rows if r["family"] == fam]).to_dict(orient="index")
                  for fam in (PROJECT, HELDOUT) if any(r["family"] == fam for r in rows)},
               "final": final_lines(rows)}
    (root / "bench_diagnosis.json").write_text(json.dumps(jsonable({**meta, "summary": summary, "rows": rows}),
                                                          indent=1) + "\n")
    print(report(rows))
    n_fam = {fam: sum(w["family"] == fam for w in worlds) for fam in (PROJECT, HELDOUT)}
    write_results(args, __file__, headline_figures(rows, len(worlds), n_fam), preset=args.preset,
                  seeds={"sft": seeds, **world_seeds(worlds)})
    print(f"\nthreads {torch.get_num_threads()}, cpus {os.cpu_count()}, SFT seeds {seeds}, preset {args.preset}, "
          f"{len(worlds)} worlds ({n_fam[PROJECT]} project, {n_fam[HELDOUT]} held-out); rows in "
          f"{root / 'bench_diagnosis.json'}")
    for line in final_lines(rows):
        print(line)


if __name__ == "__main__":
    main()
