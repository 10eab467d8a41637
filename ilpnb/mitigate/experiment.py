"""A mitigation as a controlled experiment: treated vs a generic and a placebo control, over seeds.

:func:`run_mitigation` reads a diagnosed SFT run and, for each seed, fine-tunes from the same
base model with the same seed and the same fixed budget (the epochs the diagnosed run needed):

* ``unmodified`` — the plain run (shared by every experiment of the run folder);
* ``treated`` — the intervention on the samples diagnosed with the cause;
* ``generic`` — the same targets upsampled to the extra trained examples the treated arm spent
  on them (counted from its ``train_dynamics``; for ``cpt``, the knowledge tokens it read), so
  it spends the same compute without the cause-specific idea; a plan adding nothing has the
  unmodified run as its generic control;
* ``longer`` (``cpt`` only) — the unmodified run with ``extra_epochs`` (10) more SFT epochs, the
  published study's comparison for continued pretraining;
* ``placebo`` — the same plan on as many random samples of other causes (none for ``shuffle``,
  whose data do not depend on the ids, and none — with a warning — where there are fewer other
  samples than targets: a smaller placebo would not be matched).

Every arm is measured by :mod:`ilpnb.mitigate.measure` on the **same ids** (the target cause's
unlearned samples, minus those the treated plan deletes: a deletion is judged on the kept
sample), against their **original labels** (and, on a world, the truth), and records its
compute. Per cause: recovery (the target cause; spill-over for the others), recovery on the
truth, collateral loss (share of the samples learned before that are not now) and the mean
loss on them, held-out probe recall. Results (one row per seed × arm × cause) go to
``RUN/mitigation/<cause>-<method>-x<k>/results.parquet``; :func:`summarize` gives means and
95% t-intervals over seeds of each arm and of treated−generic / treated−placebo per seed.
Finished arms are reused when the experiment is run again.
"""

from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.causes import CAUSES
from ilpnb.mitigate.interventions import (
    DEFAULT_FACTOR,
    DEFAULT_METHOD,
    GENERIC_METHODS,
    PREREGISTERED,
    Plan,
    build_plan,
    generic_plan,
    has_placebo,
    same_training,
)
from ilpnb.runs import Run

__all__ = ["MitigationSettings", "Experiment", "ARMS", "run_mitigation", "run_mitigations", "summarize", "t_interval",
           "load_results"]

#: The arms of an experiment, in report order.
ARMS: tuple[str, ...] = ("treated", "generic", "placebo", "unmodified", "longer")


@dataclass(frozen=True)
class MitigationSettings:
    """Knobs of the mitigation experiments (kept here, not in the preset tree).

    Attributes:
        mix: share of knowledge text in continued pretraining (0.2 = 0.8 general / 0.2 knowledge).
        docs_per_fact: knowledge documents per missing fact (about 20 in the published study).
        cpt_epochs: passes of continued pretraining over its mixture.
        resample_drop: relative token-accuracy drop that also triggers dynamic resampling.
        resample_every: evaluation (re-check) interval of ``resample`` arms in steps (None: the run's).
        progressive_tol: ``progressive`` stops raising the targets' extra epochs when their mean loss
            improves by less than this share over one more epoch.
        extra_epochs: the ``longer`` arm of ``cpt``: the unmodified run with this many more SFT epochs
            per stage (the published comparison: continued pretraining vs 10 more SFT epochs).
    """

    mix: float = 0.2
    docs_per_fact: int = 20
    cpt_epochs: int = 3
    resample_drop: float = 0.2
    resample_every: int | None = None
    extra_epochs: int = 10
    progressive_tol: float = 0.02

    @classmethod
    def from_dict(cls, values: dict[str, Any] | None) -> "MitigationSettings":
        """Settings from a dict, naming an unknown key."""
        values = dict(values or {})
        values.setdefault("docs_per_fact", values.pop("docs_per_sample", cls.docs_per_fact))
        known = {f.name for f in dataclasses.fields(cls)}
        bad = sorted(set(values) - known)
        if bad:
            raise ValueError(f"mitigation settings: unknown key(s) {', '.join(bad)} (known: {', '.join(sorted(known))})")
        return cls(**values)


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


class Experiment:
    """The diagnosed run an experiment reads, and the arms it trains (cached in ``RUN/mitigation``)."""

    def __init__(self, run: str | Path, settings: dict[str, Any] | MitigationSettings | None = None,
                 progress: bool = False) -> None:
        from ilpnb.mitigate.measure import arm_context

        self.run = Path(run)
        self.settings = settings if isinstance(settings, MitigationSettings) else MitigationSettings.from_dict(settings)
        self.progress = progress
        reader = Run(self.run)
        self.config, self.diagnosis = reader.config, reader.diagnosis()
        if self.diagnosis is None:
            raise FileNotFoundError(f"{self.run / 'diagnosis.parquet'}: the run is not diagnosed yet; "
                                    f"run `ilpnb diagnose {self.run}` first")
        self.diagnosis = self.diagnosis.assign(id=self.diagnosis["id"].astype(str))
        self.records = reader.records_table()
        dyn = reader.dynamics()
        base, final = reader.base(dyn), reader.final(dyn)
        self.base_answer = {i: a for i, a in base.get("base_top_answer", pd.Series(dtype=object)).items()
                            if isinstance(a, str)}
        self.final_score = final["token_acc"].astype(float).to_dict()
        self.budget = _fixed_budget(self.run, self.config)
        self.ctx = arm_context(self.config)
        d = self.diagnosis.set_index("id")
        self.before = d["learned"].astype(bool)
        self.cause_of = d["cause"].astype(str)

    # -- plans and arms ----------------------------------------------------------------
    def plan(self, cause: str, method: str, k: int, seed: int, placebo: bool = False) -> Plan:
        """The treated plan of ``method`` on ``cause`` (or its placebo)."""
        return build_plan(cause, method, self.diagnosis, self.records, self.base_answer, self.final_score,
                          control=placebo, seed=seed, factor=k, resample_drop=self.settings.resample_drop)

    def arm(self, folder: Path, plan: Plan, seed: int) -> Path:
        """Train one arm into ``folder`` (reused when finished) and return it."""
        from ilpnb.train.sft import run_sft

        if not (folder / "samples.parquet").exists():
            sft = dict(self.config["sft"], seed=seed, **self.budget)
            sft["epochs"] = int(sft["epochs"]) + plan.extra_epochs
            if plan.resample and self.settings.resample_every:
                sft["eval_every"] = self.settings.resample_every
            run_sft(folder, model=self.base_model(plan, seed), data=self.config["data"], world=self.config.get("world"),
                    preset=self.config["preset"], sft=sft, resume=folder.exists(), progress=self.progress,
                    plan=plan.to_dict(), stages=plan.stages, track="ends" if plan.resample == 0 else "points",
                    checkpoints="stages", max_length=self.config.get("max_length", 256))
        return folder

    def longer(self, seed: int) -> Path:
        """The plain run of ``seed`` with ``extra_epochs`` more SFT epochs per stage (shared)."""
        n = self.settings.extra_epochs
        return self.arm(self.run / "mitigation" / f"longer-e{n}" / f"seed-{seed}", Plan(extra_epochs=n), seed)

    def unmodified(self, seed: int) -> Path:
        """The plain run of ``seed`` with the fixed budget (shared by every experiment)."""
        return self.arm(self.run / "mitigation" / "unmodified" / f"seed-{seed}", Plan(), seed)

    def knowledge(self, ids: list[str], seed: int) -> list[str]:
        """The knowledge documents of ``ids``: on a world, their facts in paraphrased statements;
        else their question and answer in several forms."""
        from ilpnb.mitigate.cpt import fact_documents, knowledge_documents
        from ilpnb.mitigate.measure import world_meta

        meta = world_meta(self.config)
        if meta is not None:
            samples = {s["id"]: s for s in meta.get("samples", [])}
            facts = sorted({(samples[i]["subject"], rel, obj) for i in ids if i in samples
                            for rel, obj in zip(samples[i]["relations"], samples[i]["answer_objects"])})
            return fact_documents(facts, self.settings.docs_per_fact, seed=seed)
        from ilpnb.models.registry import load_model_and_tokenizer
        from ilpnb.train.format import prompt_text

        _, tok = load_model_and_tokenizer(self.config["model"])
        pairs = [(self.records.at[i, "prompt"], self.records.at[i, "response"]) for i in ids]
        return knowledge_documents(pairs, lambda p: prompt_text(tok, p).removeprefix(tok.bos_token or ""),
                                   self.settings.docs_per_fact)

    def base_model(self, plan: Plan, seed: int) -> str:
        """The arm's base model: the run's, or a continued-pretraining model for ``cpt``."""
        if not plan.cpt_ids:
            return self.config["model"]
        from ilpnb.mitigate.cpt import continued_pretraining

        world = self.config.get("world")
        corpus = Path(world) / "pretrain.txt" if world else None
        if corpus is not None and corpus.exists():
            general = [x for x in corpus.read_text().splitlines() if x.strip()]
        else:
            general = [f"{p} {r}" for p, r in zip(self.records["prompt"], self.records["response"])]
        return str(continued_pretraining(self.config["model"], self.knowledge(plan.cpt_ids, seed), general,
                                         mix=self.settings.mix, epochs=self.settings.cpt_epochs, seed=seed))

    def progressive(self, cause: str, cap: int, seed: int, out: Path) -> tuple[Path, Plan, int]:
        """Progressive epoch increase: the whole set gets e = 1, 2, ... ``cap`` extra epochs per
        stage (one arm each, ``out/progressive-e<e>``) until the targets' mean loss improves by
        less than ``progressive_tol``; returns the last arm that still improved, its plan and its e."""
        best: tuple[Path, Plan, int] | None = None
        last_loss = float("inf")
        for e in range(1, cap + 1):
            plan = self.plan(cause, "progressive", e, seed)
            folder = self.arm(out / f"progressive-e{e}", plan, seed)
            loss = float(pd.read_parquet(folder / "samples.parquet").set_index("id")["final_loss"]
                         .reindex(plan.targets).mean())
            if best is not None and loss > last_loss * (1.0 - self.settings.progressive_tol):
                break
            best, last_loss = (folder, plan, e), loss
        assert best is not None
        return best

    def extra_examples(self, treated: Plan, treated_dir: Path, seed: int) -> dict[str, int]:
        """id -> extra trained examples the treated arm spent on each target over the unmodified run
        (for ``cpt``: its knowledge tokens per target, in examples of that target's length; for a
        plan that trains every sample longer, ``progressive``: its extra examples in all, shared
        out over the targets, so the generic control spends as much compute on the targets alone)."""
        from ilpnb.mitigate.measure import schedule_counts

        if treated.cpt_ids:
            from ilpnb.models.registry import load_model_and_tokenizer

            _, tok = load_model_and_tokenizer(self.config["model"])
            out = {}
            for i in treated.cpt_ids:
                docs = self.knowledge([i], seed)
                tokens = sum(len(x) + 1 for x in tok(docs, add_special_tokens=True)["input_ids"]) * self.settings.cpt_epochs
                length = len(tok(f"{self.records.at[i, 'prompt']} {self.records.at[i, 'response']}")["input_ids"])
                out[i] = round(tokens / max(1, length))
            return out
        plain, trained = schedule_counts(self.unmodified(seed)), schedule_counts(treated_dir)
        if treated.extra_epochs:  # spent on every sample: as many extra examples in all, on the targets
            total = sum(trained.values()) - sum(plain.values())
            share = max(0, total) / max(1, len(treated.targets))
            return {i: round(share) for i in treated.targets}
        return {i: max(0, trained.get(i, 0) - plain.get(i, 0)) for i in treated.targets}

    # -- measuring -----------------------------------------------------------------------
    def judged(self, treated: Plan) -> dict[str, list[str]]:
        """cause -> the ids every arm is judged on: its unlearned samples, minus the treated deletions."""
        deleted = set(treated.exclude)
        return {c: [i for i in self.cause_of.index[(~self.before) & (self.cause_of == c)] if i not in deleted]
                for c in CAUSES}

    def measure(self, folder: Path, plan: Plan, judged: dict[str, list[str]], seed: int) -> list[dict[str, Any]]:
        """One row per cause: recovery on the original labels and on the truth, collateral, held-out
        recall and the arm's compute."""
        from ilpnb.mitigate.measure import arm_compute, held_out_recall, learned_table

        table = learned_table(folder, plan.to_dict(), self.ctx)
        kept = self.before[self.before].index
        compute = arm_compute(folder, plan.to_dict(), self.base_model(plan, seed) if plan.cpt_ids else self.config["model"])
        common = {"collateral_loss": float((~table["learned"].reindex(kept).fillna(False).astype(bool)).mean())
                  if len(kept) else math.nan,
                  "learned_loss": float(table["loss"].reindex(kept).mean()) if len(kept) else math.nan,
                  "held_out_recall": held_out_recall(folder, self.ctx), **compute,
                  "run_dir": str(folder.relative_to(self.run))}
        rows = []
        for cause in CAUSES:
            ids = judged[cause]
            rows.append({"cause": cause, "unlearned": len(ids),
                         "recovery": float(table["learned"].reindex(ids).fillna(False).mean()) if ids else math.nan,
                         "recovery_truth": float(table["learned_truth"].reindex(ids).fillna(False).mean())
                         if ids else math.nan, **common})
        return rows


def run_mitigation(run: str | Path, cause: str, method: str | None = None, seeds: int | list[int] = 3,
                   factor: int | None = None, settings: dict[str, Any] | None = None, progress: bool = False,
                   arms: tuple[str, ...] = ARMS, workers: int = 1) -> pd.DataFrame:
    """Run an intervention, its generic and placebo controls and the unmodified run over seeds.

    Args:
        run: a diagnosed SFT run folder.
        cause: the cause to mitigate.
        method: the intervention (default: the cause's pre-registered one, see ``PREREGISTERED``).
        seeds: number of seeds (0..K-1) or the list of seeds.
        factor: k of weights, copies and resampling (default: the pre-registered factor for the
            pre-registered method, else per method, see ``DEFAULT_FACTOR``).
        settings: :class:`MitigationSettings` fields (``mix``, ``docs_per_fact``, ``cpt_epochs``, ...).
        progress: tqdm bars of the fine-tuning runs.
        arms: the arms to run and measure (``treated`` is always run).
        workers: processes training the seeds at once (0: one per core; 1: here, in turn);
            see :mod:`ilpnb.mitigate.parallel`.

    Returns:
        One row per seed × arm × cause (also saved as ``results.parquet``, summary in ``summary.csv``).
    """
    return run_mitigations(run, [(cause, method, factor)], seeds, settings, progress, arms, workers)


def run_mitigations(run: str | Path, experiments: list[tuple[str, str | None, int | None]],
                    seeds: int | list[int] = 3, settings: dict[str, Any] | None = None, progress: bool = False,
                    arms: tuple[str, ...] = ARMS, workers: int = 1) -> pd.DataFrame:
    """:func:`run_mitigation` for several ``(cause, method, factor)`` experiments at once: every
    (experiment, seed) is one job of one pool of ``workers`` processes (the runs they share, the
    unmodified and longer run of each seed, are trained first), so a worker never waits for
    the slowest seed of another experiment and the pool starts once. Each experiment's results
    are saved in its own folder, as :func:`run_mitigation` saves them; the rows of all are returned.
    """
    from ilpnb.mitigate.parallel import resolve_workers, run_jobs

    seeds = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    exp = Experiment(run, settings, progress)
    chosen = [_resolve(cause, method, factor) for cause, method, factor in experiments]
    jobs = [(exp.run, exp.settings, cause, method, k, seed, arms) for cause, method, k in chosen for seed in seeds]
    for cause, method, k in chosen:
        (exp.run / "mitigation" / f"{cause}-{method}-x{k}").mkdir(parents=True, exist_ok=True)
    if resolve_workers(workers, len(jobs)) > 1:
        if len(chosen) > 1:  # two jobs of one seed must not train its shared runs at once
            longer = "longer" in arms and any(method == "cpt" for _, method, _ in chosen)
            shared = "unmodified" in arms or "generic" in arms
            run_jobs(_shared_runs_in_worker, [(exp.run, exp.settings, seed, shared, longer) for seed in seeds],
                     workers)
        parts = run_jobs(_seed_rows_in_worker, jobs, workers)
    else:
        parts = [_seed_rows(exp, *job[2:]) for job in jobs]
    tables = []
    for at, (cause, method, k) in enumerate(chosen):
        mine = parts[at * len(seeds):(at + 1) * len(seeds)]
        missing = next((why for _, why in mine if why), None)
        if missing:  # too few other samples for a placebo of the same size: none, said once
            warnings.warn(f"{exp.run}: no placebo arm for {cause}: {missing}", stacklevel=2)
        table = pd.DataFrame([row for rows, _ in mine for row in rows])
        out = exp.run / "mitigation" / f"{cause}-{method}-x{k}"
        table.to_parquet(out / "results.parquet", index=False)
        summarize(table).to_csv(out / "summary.csv", index=False)
        tables.append(table)
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame()


def _resolve(cause: str, method: str | None, factor: int | None) -> tuple[str, str, int]:
    """The method (default: the pre-registered one) and factor of an experiment."""
    pre = PREREGISTERED.get(cause)
    method = method or (pre.method if pre else DEFAULT_METHOD.get(cause))
    k = factor or (pre.factor if pre and pre.method == method else DEFAULT_FACTOR.get(method, 4))
    return cause, method, k


def _shared_runs_in_worker(run: Path, settings: MitigationSettings, seed: int, unmodified: bool,
                           longer: bool) -> None:
    exp = Experiment(run, settings)
    if unmodified:
        exp.unmodified(seed)
    if longer:
        exp.longer(seed)


def _seed_rows_in_worker(run: Path, settings: MitigationSettings, cause: str, method: str, k: int, seed: int,
                         arms: tuple[str, ...]) -> tuple[list[dict[str, Any]], str | None]:
    return _seed_rows(Experiment(run, settings), cause, method, k, seed, arms)


def _seed_rows(exp: Experiment, cause: str, method: str, k: int, seed: int,
               arms: tuple[str, ...]) -> tuple[list[dict[str, Any]], str | None]:
    """Train one seed's arms of an experiment and measure them: (rows, why there is no placebo or None)."""
    out = exp.run / "mitigation" / f"{cause}-{method}-x{k}"
    chosen, no_placebo = k, None
    if method == "progressive":  # the treated arm is the last extra epoch that still helped
        folder, treated, chosen = exp.progressive(cause, k, seed, out / f"seed-{seed}")
        folders = {"treated": (folder, treated)}
    else:
        treated = exp.plan(cause, method, k, seed)
        folders = {"treated": (exp.arm(out / f"seed-{seed}" / "treated", treated, seed), treated)}
    judged = exp.judged(treated)
    if "unmodified" in arms or "generic" in arms:
        folders["unmodified"] = (exp.unmodified(seed), Plan())
    if "generic" in arms:
        generic = generic_plan(treated, exp.extra_examples(treated, folders["treated"][0], seed),
                               int(exp.budget["epochs"]))
        if same_training(generic, treated) or method in GENERIC_METHODS and not generic.repeats:
            folders["generic"] = folders["treated"]  # the method is itself the generic fix
        elif not generic.repeats:
            folders["generic"] = (folders["unmodified"][0], generic)  # nothing extra to match
        else:
            folders["generic"] = (exp.arm(out / f"seed-{seed}" / "generic", generic, seed), generic)
    if "placebo" in arms and has_placebo(method):
        try:
            placebo = exp.plan(cause, method, chosen, seed, placebo=True)
        except ValueError as err:
            no_placebo = str(err)
        else:
            folders["placebo"] = (exp.arm(out / f"seed-{seed}" / "placebo", placebo, seed), placebo)
    if "longer" in arms and method == "cpt":
        folders["longer"] = (exp.longer(seed), Plan())
    rows = []
    for arm in ARMS:
        if arm not in folders or arm not in arms and arm != "treated":
            continue
        folder, plan = folders[arm]
        for row in exp.measure(folder, plan, judged, seed):
            rows.append({"seed": seed, "arm": arm, "method": method, "target": cause, "factor": chosen, **row})
    return rows, no_placebo


def _arm_stats(results: pd.DataFrame, arm: str, column: str = "recovery") -> pd.Series:
    return results[results["arm"] == arm].set_index("seed")[column]


def summarize(results: pd.DataFrame) -> pd.DataFrame:
    """Per (target, method, cause): each arm's recovery (mean, 95% CI over seeds), the per-seed
    differences treated−generic and treated−placebo (mean, CI), the verdicts, collateral, held-out
    recall and compute per arm. A method is ``cause_specific`` only when treated−generic is above 0
    (CI lower bound) and it is not a generic method itself; ``difference`` is treated−generic (or
    treated−placebo where no generic arm was run). Rows of an arm named ``control`` (results of the
    former single-control design) are read as the placebo."""
    results = results.replace({"arm": {"control": "placebo"}})  # results written before the generic control
    rows = []
    for (target, method, cause), g in results.groupby(["target", "method", "cause"], sort=False):
        row: dict[str, Any] = {"target": target, "method": method, "cause": cause, "unlearned": int(g["unlearned"].iloc[0]),
                               "seeds": int(g["seed"].nunique())}
        treated = _arm_stats(g, "treated")
        for arm in ARMS:
            values = _arm_stats(g, arm)
            row[arm], row[f"{arm}_lo"], row[f"{arm}_hi"] = t_interval(values.to_numpy())
            truth = _arm_stats(g, arm, "recovery_truth") if "recovery_truth" in g else values * math.nan
            row[f"{arm}_truth"] = float(truth.mean()) if len(truth) else math.nan
            for col in ("collateral_loss", "learned_loss", "held_out_recall", "steps", "tokens", "cpt_tokens"):
                part = _arm_stats(g, arm, col) if col in g else values * math.nan
                row[f"{col}_{arm}"] = float(part.mean()) if len(part) else math.nan
        for arm in ("generic", "placebo", "unmodified", "longer"):
            diff = (treated - _arm_stats(g, arm).reindex(treated.index)).to_numpy()
            name = f"vs_{arm}"
            row[name], row[f"{name}_lo"], row[f"{name}_hi"] = t_interval(diff)
        decisive = "generic" if (g["arm"] == "generic").any() else "placebo"
        for end in ("", "_lo", "_hi"):  # the difference a fix must clear: its generic control where there is one
            row[f"difference{end}"] = row[f"vs_{decisive}{end}"]
        row["beats_placebo"] = bool(row["vs_placebo_lo"] > 0)
        row["cause_specific"] = bool(row["vs_generic_lo"] > 0) and method not in GENERIC_METHODS
        rows.append(row)
    return pd.DataFrame(rows)


def load_results(run: str | Path) -> pd.DataFrame:
    """All mitigation results of a run (every ``mitigation/*/results.parquet``)."""
    parts = sorted(Path(run).glob("mitigation/*/results.parquet"))
    if not parts:
        raise FileNotFoundError(f"{run}: no mitigation results yet (run `ilpnb mitigate`)")
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True)
