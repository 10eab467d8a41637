"""Knowledge probes: what does a (base) model know about the facts of a probe file?

A probe is a cloze prompt with its answer and distractors (``probes.jsonl`` of a world, or
any file of the same shape for a real model). :func:`run_probes` scores each probe with
one teacher-forced pass: greedy recall (the model's greedy continuation is the answer),
the multiple-choice probability of the answer among the options, and pass@N computed
exactly from that probability. :func:`probe_report` adds, for a world, whether the corpus
stated each fact — read from ``world.json``, which only reports, never diagnosis, may do.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ilpnb.probe.scoring import option_probabilities, score_continuations

__all__ = ["read_probes", "run_probes", "probe_report", "summarize_probes"]

_REQUIRED = ("id", "subject", "relation", "prompt", "answer")


def read_probes(path: str | Path) -> list[dict[str, Any]]:
    """Read a probe file (JSONL), checking each line.

    Raises:
        ValueError: a line that is not JSON or lacks a field; the message names file and line.
    """
    probes = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}, line {n}: not valid JSON ({err.msg})") from None
        missing = [k for k in _REQUIRED if not isinstance(row, dict) or not str(row.get(k, "")).strip()]
        if missing:
            raise ValueError(f"{path}, line {n}: missing or empty field(s) {', '.join(missing)}")
        probes.append(row)
    return probes


def _encode(tok: PreTrainedTokenizerBase, text: str, special: bool) -> list[int]:
    return tok(text, add_special_tokens=special)["input_ids"]


@torch.no_grad()
def run_probes(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    probes: list[dict[str, Any]],
    batch_size: int = 64,
    n_pass: int = 10,
) -> pd.DataFrame:
    """Score knowledge probes with teacher forcing.

    Args:
        model: a causal LM.
        tokenizer: its tokenizer.
        probes: rows with ``prompt``, ``answer`` and optional ``options`` (distractors).
        batch_size: sequences per forward pass.
        n_pass: N of pass@N (the chance that N samples from the option distribution
            contain the answer at least once).

    Returns:
        One row per probe: ``id``, ``subject``, ``relation``, ``answer``, ``recall`` (greedy
        reproduces the answer), ``answer_logprob``, ``mc_p_gold``, ``mc_correct`` (the
        answer is the most likely option), ``pass_at_n``, ``n_options``.
    """
    pairs, owners = [], []
    for i, probe in enumerate(probes):
        ctx = _encode(tokenizer, probe["prompt"], special=True)
        for option in [probe["answer"]] + list(probe.get("options") or []):
            pairs.append((ctx, _encode(tokenizer, " " + option, special=False)))
            owners.append(i)
    scores = score_continuations(model, pairs, batch_size=batch_size, pad_id=tokenizer.pad_token_id or 0)
    width = max(1 + len(p.get("options") or []) for p in probes)
    table = np.full((len(probes), width), -np.inf)
    col = np.zeros(len(probes), dtype=int)
    recall = np.zeros(len(probes), dtype=bool)
    answer_lp = np.zeros(len(probes))
    for j, i in enumerate(owners):
        if col[i] == 0:
            recall[i] = bool(scores.exact[j])
            answer_lp[i] = scores.logprob[j]
        table[i, col[i]] = scores.logprob[j]
        col[i] += 1
    p_gold = option_probabilities(table)[:, 0]
    return pd.DataFrame({
        "id": [p["id"] for p in probes],
        "subject": [p["subject"] for p in probes],
        "relation": [p["relation"] for p in probes],
        "answer": [p["answer"] for p in probes],
        "recall": recall,
        "answer_logprob": answer_lp,
        "mc_p_gold": p_gold,
        "mc_correct": table.argmax(axis=1) == 0,
        "pass_at_n": 1.0 - (1.0 - p_gold) ** n_pass,
        "n_options": col,
    })


def probe_report(probe_table: pd.DataFrame, world_dir: str | Path) -> pd.DataFrame:
    """Join probe results with whether the world's corpus stated each fact.

    Adds ``stated`` and ``chance`` (the greedy-recall rate of a uniform guess among the
    values of that relation's kind) from ``world.json``.
    """
    meta = json.loads((Path(world_dir) / "world.json").read_text())
    stated = {(f["subject"], f["relation"]): f["stated"] for f in meta["facts"]}
    n_values: dict[str, int] = {}
    for f in meta["facts"]:
        n_values.setdefault(f["relation"], set()).add(f["object"])  # type: ignore[union-attr]
    out = probe_table.copy()
    out["stated"] = [stated[(s, r)] for s, r in zip(out["subject"], out["relation"])]
    out["chance"] = [1.0 / len(n_values[r]) for r in out["relation"]]  # type: ignore[arg-type]
    return out


def summarize_probes(report: pd.DataFrame) -> pd.DataFrame:
    """Recall and multiple-choice accuracy of stated vs unstated facts (with chance levels)."""
    g = report.groupby("stated")
    out = pd.DataFrame({
        "facts": g.size(),
        "greedy_recall": g["recall"].mean(),
        "chance_recall": g["chance"].mean(),
        "mc_accuracy": g["mc_correct"].mean(),
        "chance_mc": g["n_options"].apply(lambda s: float(np.mean(1.0 / s))),
        "mean_p_gold": g["mc_p_gold"].mean(),
    })
    out.index = out.index.map({True: "stated", False: "unstated"})
    return out
