"""Measuring one arm of a mitigation experiment: what it recovered, what it cost, what it broke.

Every arm is judged the same way, whatever its plan trained on:

* **original labels** — a sample is learned when the arm's final model reproduces the response
  of ``sft.jsonl`` (a relabelled arm is measured again on the original records, never on its
  new label);
* **truth** (a world only) — whether it reproduces the answer the world holds true (the SFT
  answer with each answer object replaced by the world's fact), so a fix that teaches the
  right fact instead of the SFT's wrong one is seen as such;
* **held-out recall** — knowledge probes of facts the SFT set does not contain;
* **compute** — optimizer steps, trained examples, trained (supervised) tokens and their
  loss-weighted sum, from the arm's own ``progress.json`` and ``train_dynamics.parquet``, plus
  the steps and tokens of its continued pretraining.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["ArmContext", "arm_context", "final_model_dir", "learned_table", "held_out_recall", "arm_compute",
           "held_out_probes", "world_meta", "truth_responses", "schedule_counts"]


@dataclass
class ArmContext:
    """What measuring an arm needs from the diagnosed run (read once)."""

    config: dict[str, Any]
    records: list[Any]  # the original SFT records
    truth: dict[str, str]  # id -> the world's true response, where it differs from the SFT response
    probes: list[dict[str, Any]]  # knowledge probes of facts the SFT set does not contain
    criterion: str


def world_meta(config: dict[str, Any]) -> dict[str, Any] | None:
    """The run's ``WORLD/world.json`` (facts, samples), or None for a run without a world."""
    world = config.get("world")
    path = Path(world) / "world.json" if world else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def truth_responses(records: list[Any], meta: dict[str, Any] | None) -> dict[str, str]:
    """id -> the response the world holds true, for samples whose SFT answer states another object."""
    if meta is None:
        return {}
    facts = {(f["subject"], f["relation"]): f["object"] for f in meta.get("facts", [])}
    samples = {s["id"]: s for s in meta.get("samples", [])}
    out = {}
    for r in records:
        s = samples.get(str(r.id))
        if s is None:
            continue
        text = r.response
        for rel, obj in zip(s.get("relations", []), s.get("answer_objects", [])):
            true = facts.get((s["subject"], rel))
            if true is not None and true != obj:
                text = text.replace(obj, true)
        if text != r.response:
            out[str(r.id)] = text
    return out


def held_out_probes(config: dict[str, Any]) -> list[dict[str, Any]]:
    """The world's probes of facts no SFT sample asks for (empty without probes)."""
    world = config.get("world")
    path = Path(world) / "probes.jsonl" if world else None
    if path is None or not path.exists():
        return []
    from ilpnb.probe.knowledge import read_probes

    meta = world_meta(config) or {}
    in_sft = {(s["subject"], rel) for s in meta.get("samples", []) for rel in s.get("relations", [])}
    return [p for p in read_probes(path) if (p["subject"], p["relation"]) not in in_sft]


def arm_context(config: dict[str, Any]) -> ArmContext:
    """The original records, the world's true answers and the held-out probes of a diagnosed run."""
    from ilpnb.data.packaged import resolve_data

    records = resolve_data(config["data"])
    return ArmContext(config, records, truth_responses(records, world_meta(config)), held_out_probes(config),
                      str(config["sft"].get("criterion", "exact")))


def final_model_dir(arm_dir: Path) -> Path:
    """The arm's model at the end of its last stage.

    Raises:
        FileNotFoundError: no ``checkpoints/stage-*-end`` (the arm did not finish).
    """
    ends = sorted((arm_dir / "checkpoints").glob("stage-*-end"), key=lambda p: int(p.name.split("-")[1]))
    if not ends:
        raise FileNotFoundError(f"{arm_dir / 'checkpoints'}: no stage-*-end checkpoint; the arm did not finish")
    return ends[-1]


@lru_cache(maxsize=4)
def _model(path: str) -> tuple[Any, Any]:
    from ilpnb.models.registry import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(path)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    return model.eval(), tok


def _measure(arm_dir: Path, records: list[Any], ctx: ArmContext) -> pd.DataFrame:
    from ilpnb.probe.criteria import learned
    from ilpnb.train.tracking import Tracker

    model, tok = _model(str(final_model_dir(arm_dir)))
    tracker = Tracker(tok, records, ctx.config.get("max_length", 256))
    table = tracker.measure(model, {"point": -1}, options=ctx.criterion == "mc", outputs=False)
    table["learned"] = learned(table, ctx.criterion).to_numpy()
    return table.set_index("id")[["learned", "loss"]]


def learned_table(arm_dir: Path, plan: dict[str, Any], ctx: ArmContext) -> pd.DataFrame:
    """Per sample of the arm: ``learned`` and ``loss`` on the original label, and ``learned_truth``
    (on the world's true answer; the original verdict where the two answers agree)."""
    if plan.get("relabel"):  # trained on new labels: measured again on the original records
        table = _measure(arm_dir, ctx.records, ctx)
    else:
        s = pd.read_parquet(arm_dir / "samples.parquet").set_index("id")
        table = pd.DataFrame({"learned": s["learned"].astype(bool), "loss": s["final_loss"].astype(float)})
    table["learned_truth"] = table["learned"]
    if ctx.truth:
        truth_records = [replace(r, response=ctx.truth[str(r.id)]) for r in ctx.records if str(r.id) in ctx.truth]
        table.loc[[str(r.id) for r in truth_records], "learned_truth"] = _measure(arm_dir, truth_records, ctx)["learned"]
    return table


def held_out_recall(arm_dir: Path, ctx: ArmContext) -> float:
    """Greedy recall of the held-out probes by the arm's final model (NaN without probes)."""
    if not ctx.probes:
        return math.nan
    from ilpnb.probe.knowledge import run_probes

    model, tok = _model(str(final_model_dir(arm_dir)))
    return float(run_probes(model, tok, ctx.probes)["recall"].mean())


def schedule_counts(arm_dir: Path) -> dict[str, int]:
    """id -> how many times the arm trained on it (its ``train_dynamics``, one row per trained example)."""
    path = arm_dir / "train_dynamics.parquet"
    if not path.exists():
        path = arm_dir / "schedule.parquet"
    return pd.read_parquet(path, columns=["id"])["id"].astype(str).value_counts().to_dict()


def arm_compute(arm_dir: Path, plan: dict[str, Any], base_model: str) -> dict[str, float]:
    """The compute of one arm: ``steps`` (optimizer steps of SFT), ``examples`` and ``tokens``
    (trained examples and supervised tokens), ``weighted_tokens`` (tokens × loss weight),
    ``cpt_steps`` and ``cpt_tokens`` (its continued pretraining; 0 without)."""
    from ilpnb.mitigate.cpt import cpt_budget

    progress = json.loads((arm_dir / "progress.json").read_text())
    steps = sum(int(s.get("steps", 0)) for s in progress.get("stages", {}).values())
    td = pd.read_parquet(arm_dir / "train_dynamics.parquet", columns=["id", "n_tokens"])
    weights = plan.get("weights") or {}
    w = td["id"].astype(str).map(lambda i: float(weights.get(i, 1.0)))
    cpt = cpt_budget(base_model)
    return {"steps": steps, "examples": len(td), "tokens": int(td["n_tokens"].sum()),
            "weighted_tokens": float((td["n_tokens"] * w).sum()), "cpt_steps": cpt["steps"], "cpt_tokens": cpt["tokens"]}
