"""A mitigation as a controlled experiment: treated vs matched control, over seeds.

:func:`run_mitigation` reads a diagnosed SFT run, builds the treated plan (on the samples
diagnosed with the cause) and its matched control (the same plan on as many random other
samples), fine-tunes both from the same base model for each seed, and measures per cause:

* **recovery** — share of that cause's unlearned samples (in the diagnosed run) learned now
  (samples an intervention deletes are counted apart, not as recovered or lost; samples it
  relabels count as recovered when the new label is reproduced);
* **spill-over** — recovery of the other causes' unlearned samples;
* **collateral loss** — share of the samples learned in the diagnosed run that are not now;
* **held-out recall** — knowledge probes answered by the final model (where probes exist).

Results (one row per seed × arm × cause) go to ``RUN/mitigation/<cause>-<method>-x<k>/``;
:func:`summarize` gives means and 95% t-intervals over seeds, and of the treated−control
difference per seed. Finished arms are skipped when the experiment is run again.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.causes import CAUSES
from ilpnb.mitigate.interventions import DEFAULT_METHOD, Plan, build_plan
from ilpnb.runs import Run

__all__ = ["run_mitigation", "summarize", "t_interval", "load_results"]


def _fixed_budget(run: Path, config: dict[str, Any]) -> dict[str, Any]:
    """SFT overrides that give every arm the same compute: a fixed number of epochs per stage
    (the most the diagnosed run trained in any stage until it converged), never a stop of its own."""
    convergence = Run(run).convergence()
    epochs = int(config["sft"]["epochs"])
    if convergence is not None:
        stages = convergence.get("stages", [])
        trained = [s["epoch"] for s in stages if s.get("epoch")]
        if trained:
            epochs = max(1, math.ceil(max(trained) - 1e-9))
    return {"epochs": epochs, "converge": False}


def t_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean and two-sided Student-t confidence interval (NaN bounds for fewer than 2 values)."""
    from scipy import stats

    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) == 0:
        return math.nan, math.nan, math.nan
    m = float(v.mean())
    if len(v) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / math.sqrt(len(v)))
    return m, m - half, m + half


def _inputs(run: Path) -> tuple[dict[str, Any], pd.DataFrame, pd.DataFrame, dict[str, str], dict[str, float]]:
    reader = Run(run)
    config, diagnosis = reader.config, reader.diagnosis()
    if diagnosis is None:
        raise FileNotFoundError(f"{run / 'diagnosis.parquet'}: the run is not diagnosed yet; "
                                f"run `ilpnb diagnose {run}` first")
    records = reader.records_table()
    dyn = reader.dynamics()
    base, final = reader.base(dyn), reader.final(dyn)
    base_answer = {i: a for i, a in base.get("base_top_answer", pd.Series(dtype=object)).items() if isinstance(a, str)}
    return config, diagnosis, records, base_answer, final["token_acc"].astype(float).to_dict()


def _base_model(config: dict[str, Any], plan: Plan, records: pd.DataFrame, seed: int, settings: dict[str, Any]) -> str:
    if not plan.cpt_ids:
        return config["model"]
    from ilpnb.mitigate.cpt import continued_pretraining, knowledge_documents
    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.train.format import prompt_text

    _, tok = load_model_and_tokenizer(config["model"])
    pairs = [(records.at[i, "prompt"], records.at[i, "response"]) for i in plan.cpt_ids]
    knowledge = knowledge_documents(pairs, lambda p: prompt_text(tok, p).removeprefix(tok.bos_token or ""),
                                    settings.get("docs_per_sample", 20))
    general: list[str] = []
    if config.get("world") and (Path(config["world"]) / "pretrain.txt").exists():
        general = [x for x in (Path(config["world"]) / "pretrain.txt").read_text().splitlines() if x.strip()]
    else:
        general = [f"{p} {r}" for p, r in zip(records["prompt"], records["response"])]
    return str(continued_pretraining(config["model"], knowledge, general, mix=settings.get("mix", 0.2),
                                     epochs=settings.get("cpt_epochs", 3), seed=seed))


def _held_out(run_dir: Path, config: dict[str, Any]) -> float:
    """Recall of the world's knowledge probes by the run's final model (NaN without probes)."""
    probes = Path(config["world"]) / "probes.jsonl" if config.get("world") else None
    ends = sorted((run_dir / "checkpoints").glob("stage-*-end"))
    if probes is None or not probes.exists() or not ends:
        return math.nan
    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.probe.knowledge import read_probes, run_probes

    model, tok = load_model_and_tokenizer(str(ends[-1]))
    return float(run_probes(model, tok, read_probes(probes))["recall"].mean())


def _measure(arm_dir: Path, diagnosis: pd.DataFrame, plan: Plan, config: dict[str, Any]) -> list[dict[str, Any]]:
    after = pd.read_parquet(arm_dir / "samples.parquet").set_index("id")["learned"].astype(bool)
    d = diagnosis.set_index("id")
    before = d["learned"].astype(bool)
    held = _held_out(arm_dir, config)
    rows = []
    learned_before = before[before].index
    collateral = float((~after.reindex(learned_before).fillna(False)).mean()) if len(learned_before) else math.nan
    deleted = set(plan.exclude)
    for cause in CAUSES:
        all_ids = d.index[(~before) & (d["cause"] == cause)]
        ids = [i for i in all_ids if i not in deleted]  # a deleted sample is given up, not recovered
        rows.append({"cause": cause, "unlearned": len(all_ids), "deleted": len(all_ids) - len(ids),
                     "recovery": float(after.reindex(ids).fillna(False).mean()) if len(ids) else math.nan,
                     "collateral_loss": collateral, "held_out_recall": held,
                     "unlearned_share": float((~after).mean())})
    return rows


def run_mitigation(run: str | Path, cause: str, method: str | None = None, seeds: int | list[int] = 3,
                   factor: int | None = None, settings: dict[str, Any] | None = None, progress: bool = False) -> pd.DataFrame:
    """Run a targeted intervention and its matched control over seeds, and measure them.

    Args:
        run: a diagnosed SFT run folder.
        cause: the cause to mitigate.
        method: the intervention (default: the cause's first, see ``INTERVENTIONS``).
        seeds: number of seeds (0..K-1) or the list of seeds.
        factor: k of weights, copies and resampling (default: per method, see ``DEFAULT_FACTOR``).
        settings: extra knobs (``mix``, ``docs_per_sample``, ``cpt_epochs`` for ``cpt``).
        progress: tqdm bars of the fine-tuning runs.

    Returns:
        One row per seed × arm × cause (also saved as ``results.parquet``).
    """
    from ilpnb.train.sft import run_sft

    run = Path(run)
    method = method or DEFAULT_METHOD.get(cause)
    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    settings = settings or {}
    config, diagnosis, records, base_answer, final_score = _inputs(run)
    from ilpnb.mitigate.interventions import DEFAULT_FACTOR

    k = factor or DEFAULT_FACTOR.get(method, 4)
    out = run / "mitigation" / f"{cause}-{method}-x{k}"
    out.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    for seed in seeds:
        for arm in ("treated", "control"):
            plan = build_plan(cause, method, diagnosis, records, base_answer, final_score, control=arm == "control",
                              seed=seed, factor=k)
            arm_dir = out / f"seed-{seed}" / arm
            if not (arm_dir / "samples.parquet").exists():
                model = _base_model(config, plan, records, seed, settings)
                sft = dict(config["sft"], seed=seed, **_fixed_budget(run, config))
                run_sft(arm_dir, model=model, data=config["data"], world=config.get("world"), preset=config["preset"],
                        sft=sft, resume=arm_dir.exists(), progress=progress, plan=plan.to_dict(), stages=plan.stages,
                        track="ends" if plan.resample == 0 else "points", checkpoints="stages",
                        max_length=config.get("max_length", 256))
            for row in _measure(arm_dir, diagnosis, plan, config):
                rows.append({"seed": seed, "arm": arm, "method": method, "target": cause, **row})
    table = pd.DataFrame(rows)
    table.to_parquet(out / "results.parquet", index=False)
    summarize(table).to_csv(out / "summary.csv")
    return table


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per (target, method, cause): treated and control recovery (mean, 95% CI over seeds), the
    treated−control difference per seed (mean, CI), and collateral loss / held-out recall."""
    rows = []
    for (target, method, cause), g in results.groupby(["target", "method", "cause"], sort=False):
        t = g[g["arm"] == "treated"].set_index("seed")
        c = g[g["arm"] == "control"].set_index("seed")
        diff = (t["recovery"] - c["recovery"].reindex(t.index)).to_numpy()
        tm, tl, th = t_interval(t["recovery"].to_numpy())
        cm, cl, ch = t_interval(c["recovery"].to_numpy())
        dm, dl, dh = t_interval(diff)
        rows.append({"target": target, "method": method, "cause": cause, "unlearned": int(g["unlearned"].iloc[0]),
                     "treated": tm, "treated_lo": tl, "treated_hi": th, "control": cm, "control_lo": cl,
                     "control_hi": ch, "difference": dm, "difference_lo": dl, "difference_hi": dh,
                     "collateral_treated": float(t["collateral_loss"].mean()),
                     "collateral_control": float(c["collateral_loss"].mean()),
                     "held_out_treated": float(t["held_out_recall"].mean()),
                     "held_out_control": float(c["held_out_recall"].mean()), "seeds": len(t)})
    return pd.DataFrame(rows)


def load_results(run: str | Path) -> pd.DataFrame:
    """All mitigation results of a run (every ``mitigation/*/results.parquet``)."""
    parts = sorted(Path(run).glob("mitigation/*/results.parquet"))
    if not parts:
        raise FileNotFoundError(f"{run}: no mitigation results yet (run `ilpnb mitigate`)")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
