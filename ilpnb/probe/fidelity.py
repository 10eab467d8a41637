"""Planting fidelity: does a world's base model know what the world says it knows?

A world plants each cause through the corpus (a fact stated, stated many times, or never
stated). Whether the planting worked is a property of the base model pretrained on that
corpus, so every world reports it, measured on its base model with the world's knowledge
probes (``probes.jsonl``: each fact asked in the corpus's question-answer form). Per sample,
by planted cause (read from ``truth.jsonl``), for the facts its answer uses (read from
``world.json``, a report file the diagnosis never reads):

* ``none``, ``left_forgetting``, ``rare_pattern`` — **recalls**: for every fact the answer
  uses, greedy decoding of the fact's probe reproduces the fact;
* ``pretrain_conflict`` — **prefers the corpus fact**: on the probe of each fact the answer
  contradicts, the corpus's object has a higher log-probability than the SFT answer's
  object, and greedy decoding reproduces the corpus's object;
* ``missing_knowledge``, ``data_conflict`` — **at chance**: for each corpus fact behind the
  answer that the corpus never states (a person's home country is stated with the home
  city, so a two-hop question checks the city), the base model's probability of the
  world's object among *all* ``n`` values of its kind (a softmax over their sequence
  log-probabilities as continuations of the probe) is at most ``1/n + margin`` (default
  margin 0.25). A model that knows a fact puts nearly all of it there; a model that does
  not spreads it, or bets on a value that is right ``1/n`` of the time by luck. Greedy
  decoding is reported, not required to be wrong, for the same reason.

:func:`planting_fidelity` gives one row per checked cause; :func:`fidelity_samples` the
per-sample verdicts behind it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ilpnb.probe.knowledge import read_probes, run_probes
from ilpnb.probe.scoring import score_continuations

__all__ = ["CRITERIA", "fidelity_samples", "planting_fidelity"]

#: The check of each planted cause (see the module docstring).
CRITERIA: dict[str, str] = {
    "none": "recalls every fact of the answer",
    "missing_knowledge": "answers the unstated fact at chance",
    "pretrain_conflict": "prefers the corpus fact to the SFT answer",
    "data_conflict": "answers the unstated fact at chance",
    "left_forgetting": "recalls every fact of the answer",
    "rare_pattern": "recalls every fact of the answer",
}
_COLUMNS = ["cause", "criterion", "samples", "passed", "share"]
#: The corpus fact behind a relation, where it is not the relation itself.
_BEHIND = {"country": "lives_in"}


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    rows = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {n}: not valid JSON ({err.msg})") from None
    return rows


def _truth(world: Path) -> dict[str, str]:
    path = world / "truth.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no truth.jsonl; planting fidelity needs the planted causes")
    out = {}
    for n, row in enumerate(_read_jsonl(path), start=1):
        if not isinstance(row, dict) or "id" not in row or "planted_cause" not in row:
            raise ValueError(f"{path}, line {n}: needs 'id' and 'planted_cause'")
        out[str(row["id"])] = str(row["planted_cause"])
    return out


def _plan(world: Path, truth: dict[str, str]) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
    """Per checked sample: which probe facts to check and how; and the values of each relation."""
    meta_path = world / "world.json"
    try:
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ValueError(f"{meta_path}, line {err.lineno}: not valid JSON ({err.msg})") from None
    if not isinstance(meta, dict):
        raise ValueError(f"{meta_path}: must hold a JSON object")
    for key in ("facts", "samples"):
        if not isinstance(meta.get(key), list):
            raise ValueError(f"{meta_path}: key '{key}' missing or not a list (is this a world folder?)")
    facts = {(f["subject"], f["relation"]): f for f in meta["facts"]}
    plan = []
    values: dict[str, set[str]] = {}
    for f in meta["facts"]:  # the values of each kind: those of world.json, else those facts take
        values.setdefault(f["relation"], set()).add(str(f["object"]))
    for rel, vals in (meta.get("values") or {}).items():
        values.setdefault(rel, set()).update(map(str, vals))
    for s in meta["samples"]:
        sid = str(s.get("id"))
        cause = truth.get(sid)
        if cause is None:
            raise ValueError(f"{meta_path}: sample '{sid}' is not in truth.jsonl")
        if cause not in CRITERIA:
            continue
        if "subject" not in s:
            raise ValueError(f"{meta_path}: sample '{sid}' has no key 'subject'")
        relations = s.get("relations") or [s.get("relation")]
        answers = s.get("answer_objects") or [None] * len(relations)
        checks = []
        for rel, answered in zip(relations, answers):
            fact = facts.get((s["subject"], rel))
            if fact is None:
                raise ValueError(f"{meta_path}: sample '{sid}' asks ({s['subject']}, {rel}), which is not in 'facts'")
            if cause in ("missing_knowledge", "data_conflict"):
                behind = facts.get((s["subject"], _BEHIND.get(rel, rel)), fact)
                if not behind["stated"] and all(c[1] is not behind for c in checks):
                    checks.append(("chance", behind, answered))
            elif cause == "pretrain_conflict":
                if answered is not None and answered != fact["object"]:
                    checks.append(("prefers", fact, answered))
            else:
                checks.append(("recalls", fact, answered))
        plan.append({"id": sid, "cause": cause, "subject": s["subject"], "checks": checks})
    return plan, {r: sorted(v) for r, v in values.items()}


@torch.no_grad()
def fidelity_samples(world_dir: str | Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                     margin: float = 0.25, batch_size: int = 64) -> pd.DataFrame:
    """Per-sample planting verdicts on the base model (see the module docstring).

    Args:
        world_dir: a world folder with ``truth.jsonl``, ``world.json`` and ``probes.jsonl``.
        model: the world's base model (before any fine-tuning).
        tokenizer: its tokenizer.
        margin: how far above ``1/n`` the probability of an unstated fact among the ``n``
            values of its kind may be and still count as chance.
        batch_size: sequences per forward pass.

    Returns:
        One row per sample of a checked cause: ``id``, ``cause``, ``criterion``, ``passed``
        (False when the planting failed, or when no fact behind the answer is planted as the
        cause says), ``facts`` (how many facts were checked) and ``detail`` (the measured
        values, readable).

    Raises:
        FileNotFoundError: a file of the world folder is missing (named).
        ValueError: a malformed file or a sample whose facts have no probe (file named).
    """
    world = Path(world_dir)
    for name in ("world.json", "probes.jsonl"):
        if not (world / name).is_file():
            raise FileNotFoundError(f"{world / name}: missing; planting fidelity needs the world's {name}")
    plan, values = _plan(world, _truth(world))
    probes = {(p["subject"], p["relation"]): p for p in read_probes(world / "probes.jsonl")}
    needed = sorted({(f["subject"], f["relation"]) for s in plan for _, f, _ in s["checks"]})
    missing = [k for k in needed if k not in probes]
    if missing:
        raise ValueError(f"{world / 'probes.jsonl'}: no probe for {missing[0]} (and {len(missing) - 1} more facts)")
    table = run_probes(model, tokenizer, [probes[k] for k in needed], batch_size=batch_size) if needed else None
    rows = {k: table.iloc[i] for i, k in enumerate(needed)} if table is not None else {}
    # log-probabilities of other objects on a probe: the SFT answer's (pretraining conflicts)
    # and every value of the kind (unstated facts)
    extra = {(f["subject"], f["relation"], answered)
             for s in plan for how, f, answered in s["checks"] if how == "prefers"}
    for s in plan:
        for how, f, _ in s["checks"]:
            if how == "chance":
                extra |= {(f["subject"], f["relation"], v) for v in values[f["relation"]]}
    extra_sorted = sorted(extra)
    lp: dict[tuple[str, str, str], float] = {}
    if extra_sorted:
        enc = {}
        pairs = []
        for subj, rel, obj in extra_sorted:
            key = (subj, rel)
            if key not in enc:
                enc[key] = tokenizer(probes[key]["prompt"])["input_ids"]
            pairs.append((enc[key], tokenizer(" " + obj, add_special_tokens=False)["input_ids"]))
        scores = score_continuations(model, pairs, batch_size=batch_size, pad_id=tokenizer.pad_token_id or 0)
        lp = {k: float(v) for k, v in zip(extra_sorted, scores.logprob)}
    out = []
    for s in plan:
        verdicts, details = [], []
        for how, fact, answered in s["checks"]:
            r = rows[(fact["subject"], fact["relation"])]
            if how == "recalls":
                ok = bool(r["recall"])
                details.append(f"{fact['relation']}: greedy {'=' if ok else '!='} {fact['object']}")
            elif how == "prefers":
                lp_fact, lp_sft = float(r["answer_logprob"]), lp[(fact["subject"], fact["relation"], answered)]
                ok = bool(r["recall"]) and lp_fact > lp_sft
                details.append(f"{fact['relation']}: logp {fact['object']} {lp_fact:.2f} vs {answered} {lp_sft:.2f}, "
                               f"greedy {'=' if r['recall'] else '!='} corpus")
            else:
                kind = values[fact["relation"]]
                logps = np.array([lp[(fact["subject"], fact["relation"], v)] for v in kind])
                p = np.exp(logps - logps.max())
                p_gold = float(p[kind.index(str(fact["object"]))] / p.sum())
                limit = 1.0 / len(kind) + margin
                ok = p_gold <= limit
                details.append(f"{fact['relation']}: p_gold {p_gold:.2f} among {len(kind)} values (limit {limit:.2f}), "
                               f"greedy {'=' if r['recall'] else '!='} {fact['object']}")
            verdicts.append(ok)
        if not verdicts:  # nothing planted where the cause says there is
            details.append("no fact behind the answer is planted as the cause says")
        out.append({"id": s["id"], "cause": s["cause"], "criterion": CRITERIA[s["cause"]],
                    "passed": bool(verdicts) and all(verdicts), "facts": len(verdicts),
                    "detail": "; ".join(details)})
    return pd.DataFrame(out, columns=["id", "cause", "criterion", "passed", "facts", "detail"])


def planting_fidelity(world_dir: str | Path, model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase,
                      margin: float = 0.25, batch_size: int = 64) -> pd.DataFrame:
    """Planting fidelity of a world, measured on its base model: one row per checked cause.

    A world folder without ``world.json`` or ``probes.jsonl`` (another generator's) cannot be
    checked: the table then lists the causes of ``truth.jsonl`` with ``passed`` and ``share``
    missing, and says why in ``attrs["note"]``.

    Args:
        world_dir: the world folder.
        model: the world's base model.
        tokenizer: its tokenizer.
        margin: see :func:`fidelity_samples`.
        batch_size: sequences per forward pass.

    Returns:
        Columns ``cause``, ``criterion``, ``samples``, ``passed`` (how many), ``share``
        (passed / samples), in the order of :data:`CRITERIA` (the per-sample verdicts are
        :func:`fidelity_samples`).

    Raises:
        FileNotFoundError: no ``truth.jsonl``.
        ValueError: a malformed file (named).
    """
    world = Path(world_dir)
    missing = [n for n in ("world.json", "probes.jsonl") if not (world / n).is_file()]
    if missing:
        counts = pd.Series(list(_truth(world).values())).value_counts()
        table = pd.DataFrame([{"cause": c, "criterion": CRITERIA[c], "samples": int(counts[c]),
                               "passed": np.nan, "share": np.nan} for c in CRITERIA if c in counts], columns=_COLUMNS)
        table.attrs["note"] = f"{world}: no {' or '.join(missing)}; planting fidelity cannot be measured"
        return table
    per = fidelity_samples(world, model, tokenizer, margin=margin, batch_size=batch_size)
    rows = []
    for cause in CRITERIA:
        g = per[per["cause"] == cause]
        if len(g):
            rows.append({"cause": cause, "criterion": CRITERIA[cause], "samples": len(g),
                         "passed": int(g["passed"].sum()), "share": float(g["passed"].mean())})
    return pd.DataFrame(rows, columns=_COLUMNS)
