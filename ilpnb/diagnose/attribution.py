"""Diagnosis of a fine-tuning run: every detector's score, one cause per unlearned sample.

:func:`build_context` gathers what detectors may read from a run folder (never the world's
``truth.jsonl``): the SFT records, ``dynamics.parquet``, the per-sample summary by the
run's learnedness criterion, near-duplicate siblings, and — when the run has knowledge
probes (a world's ``probes.jsonl``, or ``probes=FILE``) — the base model's results on them.
:func:`diagnose` runs every registered detector (:data:`ilpnb.diagnose.base.REGISTRY`: the
default one per cause, plus any of your own) and attributes each unlearned sample to the
cause with the highest score if it reaches ``threshold``, ``unattributed`` otherwise;
learned samples get ``none``. :func:`write_diagnosis` saves ``RUN/diagnosis.parquet``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.causes import CAUSES, UNATTRIBUTED
from ilpnb.diagnose.base import REGISTRY, DiagnosisContext
from ilpnb.diagnose.evidence import EvidenceSettings, model_evidence
from ilpnb.diagnose.schedule import forgetting_table, interferers
from ilpnb.diagnose.similarity import find_siblings
from ilpnb.diagnose.thresholds import ATTRIBUTE, EVIDENCE_FLOOR
from ilpnb.probe.criteria import learned as learned_rows
from ilpnb.runs import Run
from ilpnb.train.derived import summarize_samples

__all__ = ["build_context", "diagnose", "write_diagnosis", "cause_split", "CAUSE_ORDER"]

#: The causes in order (:data:`ilpnb.causes.CAUSES`, under the name this module always exported).
CAUSE_ORDER = CAUSES


def _probe_file(config: dict[str, Any], probes: str | Path | None) -> Path | None:
    """A knowledge-probe file only when the user gives one: a world's ``probes.jsonl`` states
    every fact with the world's true answer (stated in the corpus or not), which would tell
    the diagnosis whether an SFT answer is true in the world; the automatic probes ask the
    base model instead."""
    return Path(probes) if probes is not None else None


def _probe_results(run: Path, config: dict[str, Any], path: Path) -> pd.DataFrame:
    """The base model's results on the probes (cached in ``RUN/probe_results.parquet``)."""
    cache = run / "probe_results.parquet"
    if cache.exists():
        return pd.read_parquet(cache)
    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.probe.knowledge import read_probes, run_probes

    probes = read_probes(path)
    model, tok = load_model_and_tokenizer(config["model"])
    table = run_probes(model, tok, probes)
    table.to_parquet(cache, index=False)
    return table


def _link_probes(records: pd.DataFrame, table: pd.DataFrame, blind_below: float = 0.2) -> dict[str, list[dict[str, Any]]]:
    """Probes whose subject occurs (as whole words) in a sample's prompt."""
    table = table.assign(blind=(table["pass_at_n"] < blind_below) | ~table["recall"].astype(bool))
    by_subject = {s: g.to_dict("records") for s, g in table.groupby("subject")}
    pattern = re.compile(r"\b(" + "|".join(re.escape(s) for s in sorted(by_subject, key=len, reverse=True)) + r")\b") \
        if by_subject else None
    out: dict[str, list[dict[str, Any]]] = {}
    for sid, prompt in records["prompt"].items():
        found = set(pattern.findall(prompt)) if pattern else set()
        out[sid] = [p for s in found for p in by_subject[s]]
    return out


def build_context(run: str | Path, criterion: str | None = None, probes: str | Path | None = None,
                  sibling_threshold: float = 0.8, evidence: EvidenceSettings | None | bool = None) -> DiagnosisContext:
    """Collect what detectors may read from a run folder.

    Args:
        run: an SFT run folder (with ``dynamics.parquet``).
        criterion: learnedness criterion (default: the run's).
        probes: a knowledge-probe file the user supplies (default: none; see :func:`_probe_file`).
        sibling_threshold: lexical similarity at which two prompts are near-duplicates (used
            only without model evidence).
        evidence: how the base model is questioned (:class:`EvidenceSettings`; default
            settings when None; ``False``: no model evidence, the tables alone).
    """
    reader = Run(run)
    run, config = reader.path, reader.config
    criterion = criterion or config.get("sft", {}).get("criterion", "exact")
    dyn = reader.dynamics()
    dyn["id"] = dyn["id"].astype(str)
    records = reader.records_table()
    samples = summarize_samples(dyn, criterion).set_index("id")
    dyn = dyn.sort_values(["point"])
    dyn["_learned"] = learned_rows(dyn, criterion).to_numpy()
    flags = {sid: g["_learned"].to_numpy() for sid, g in dyn.groupby("id", sort=False)}
    steps = dyn.drop_duplicates("point").sort_values("point")["step"].tolist()
    base, final = reader.base(dyn), reader.final(dyn)
    ctx = DiagnosisContext(records=records, dynamics=dyn, samples=samples, base=base, final=final,
                           siblings=find_siblings(records, sibling_threshold))
    ctx.info.update({"learned_flags": flags, "steps": steps, "criterion": criterion})
    schedule = reader.schedule()
    forgetting = forgetting_table(dyn, dyn["_learned"], schedule)
    ctx.info["forgetting"] = forgetting
    if evidence is not False:
        ev = model_evidence(run, config["model"], records, evidence or EvidenceSettings(),
                            max_length=config.get("max_length"))
        ctx.info.update({"knowledge": ev.knowledge, "neighbours": ev.neighbours, "patterns": ev.patterns})
        ctx.info["interferers"] = {
            i: interferers(i, forgetting, schedule, pd.Series({a: v for a, v, _ in ev.neighbours.get(i, [])}))
            for i in forgetting.index[forgetting["forgotten"]]}
    path = _probe_file(config, probes)
    ctx.info["has_probes"] = path is not None
    ctx.probes = _link_probes(records, _probe_results(run, config, path)) if path else {i: [] for i in records.index}
    return ctx


def diagnose(ctx: DiagnosisContext, threshold: float = ATTRIBUTE, detectors: list[str] | None = None) -> pd.DataFrame:
    """One row per sample: ``id``, ``learned``, ``cause``, ``score_<cause>`` for every
    detector, ``evidence`` (of the attributed cause, or of every detector above 0.3 when
    unattributed), and ``siblings`` (near-duplicate ids)."""
    names = detectors or [c for c in CAUSE_ORDER if c in REGISTRY] + [c for c in REGISTRY if c not in CAUSE_ORDER]
    results = {name: REGISTRY[name]().detect(ctx) for name in names}
    scores = pd.DataFrame({f"score_{n}": r.score.reindex(ctx.ids).clip(0, 1) for n, r in results.items()})
    learned = ctx.samples["learned"].reindex(ctx.ids).astype(bool)
    best = scores.to_numpy().argmax(axis=1)
    top = scores.to_numpy().max(axis=1)
    causes, evidence = [], []
    for k, sid in enumerate(ctx.ids):
        if learned[sid]:
            causes.append("none")
            evidence.append("reproduced at the end")
        elif top[k] >= threshold:
            causes.append(names[best[k]])
            evidence.append(f"{names[best[k]]} ({top[k]:.2f}): {results[names[best[k]]].evidence[sid]}")
        else:
            causes.append("unattributed")
            near = [f"{n} ({scores.iloc[k][f'score_{n}']:.2f}): {results[n].evidence[sid]}"
                    for n in names if scores.iloc[k][f"score_{n}"] >= EVIDENCE_FLOOR]
            evidence.append("no detector is confident" + ("; " + " | ".join(near) if near else ""))
    out = pd.DataFrame({"id": list(ctx.ids), "learned": learned.to_numpy(), "cause": causes})
    out = pd.concat([out, scores.reset_index(drop=True)], axis=1)
    out["evidence"] = evidence
    out["siblings"] = [[s for s, _ in ctx.siblings.get(i, [])] for i in ctx.ids]
    return out


def write_diagnosis(run: str | Path, criterion: str | None = None, probes: str | Path | None = None,
                    threshold: float = ATTRIBUTE, evidence: EvidenceSettings | None | bool = None) -> pd.DataFrame:
    """Diagnose a run and save ``RUN/diagnosis.parquet`` (and ``RUN/cause_split.csv``)."""
    ctx = build_context(run, criterion, probes, evidence=evidence)
    table = diagnose(ctx, threshold)
    table.to_parquet(Path(run) / "diagnosis.parquet", index=False)
    cause_split(table).to_csv(Path(run) / "cause_split.csv")
    return table


def cause_split(diagnosis: pd.DataFrame) -> pd.DataFrame:
    """Share of unlearned samples per diagnosed cause (and unattributed), like the published table."""
    un = diagnosis[~diagnosis["learned"].astype(bool)]
    order = [*CAUSE_ORDER, UNATTRIBUTED]
    counts = un["cause"].value_counts().reindex(order, fill_value=0)
    table = pd.DataFrame({"unlearned samples": counts, "share": counts / max(len(un), 1)})
    table.loc["total"] = [len(un), 1.0 if len(un) else np.nan]
    table.attrs["unlearned_share"] = len(un) / max(len(diagnosis), 1)
    return table
