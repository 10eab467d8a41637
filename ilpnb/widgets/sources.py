"""Reading what the inspectors show from a run folder (no ipywidgets here).

A run folder written by :func:`ilpnb.train.sft.run_sft` holds ``config.json`` (with the data
path and the world folder), ``dynamics.parquet``, ``samples.parquet``, ``checkpoints/`` and,
once diagnosed, ``diagnosis.parquet``. :func:`sample_table` joins them into one row per
sample (prompt, gold response, greedy outputs at the base and the final point, final metrics,
the diagnosis, the planted cause where the world's ``truth.jsonl`` is known);
:func:`run_checkpoints` lists the model checkpoints with their training step, the base model
first.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd

from ilpnb.causes import CAUSES  # re-exported: the causes, in the order of the score_<cause> columns
from ilpnb.runs import Checkpoint, Run, base_rows, final_rows, list_run_checkpoints, world_truth
from ilpnb.runs import read_config as _read_config
from ilpnb.runs import read_dynamics as _read_dynamics

__all__ = [
    "CAUSES",
    "Checkpoint",
    "read_config",
    "read_dynamics",
    "read_diagnosis",
    "read_truth",
    "read_records_of_run",
    "run_checkpoints",
    "final_checkpoint",
    "sample_table",
    "prompt_siblings",
]

_FINAL_COLUMNS = ("loss", "token_acc", "exact", "n_tokens", "gold_first_p", "gold_first_rank", "top_token",
                  "top_token_p", "js_base", "mc_p_gold", "mc_top_option", "pass@1", "pass@5", "pass@10",
                  "base_top_answer", "base_top_p")


def read_config(run: str | Path) -> dict[str, Any]:
    """The run's ``config.json`` (empty when missing)."""
    return _read_config(run, missing_ok=True)


def read_dynamics(run: str | Path) -> pd.DataFrame:
    """``RUN/dynamics.parquet``; for an unfinished run, the points written so far."""
    return _read_dynamics(run)


def read_diagnosis(run: str | Path) -> pd.DataFrame | None:
    """``RUN/diagnosis.parquet`` or None."""
    return Run(run).diagnosis() if (Path(run) / "config.json").is_file() else None


def read_truth(world: str | Path | None) -> dict[str, str]:
    """Planted cause by sample id from ``WORLD/truth.jsonl`` ({} when there is no world)."""
    return world_truth(world).to_dict()


def read_records_of_run(run: str | Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """The SFT records of a run by id: its ``data`` argument, else its world's ``sft.jsonl``
    ({} when the run names none or they are gone). ``config`` is accepted for old callers;
    the run's own ``config.json`` is what is read."""
    try:
        records = Run(run).records()
    except (FileNotFoundError, OSError, ValueError):
        return {}
    return {str(r.id): r for r in records}


def run_checkpoints(run: str | Path, include_base: bool = True) -> list[Checkpoint]:
    """The run's model checkpoints by training step (one per step; per-point ones preferred).

    Args:
        run: The run folder.
        include_base: Put the base model (the run's ``model``) first, at step 0.
    """
    return list_run_checkpoints(run, include_base=include_base)


def final_checkpoint(run: str | Path) -> Checkpoint | None:
    """The last checkpoint of the run (highest step), or None when none was saved."""
    cks = run_checkpoints(run, include_base=False)
    return cks[-1] if cks else None


def _norm_words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def prompt_siblings(prompts: dict[str, str], min_words: int = 4) -> dict[str, list[str]]:
    """Near-duplicate prompts by a conservative rule (a fallback when the diagnosis gives none).

    Two prompts are siblings when, lowercased and stripped of punctuation, one word sequence
    equals the other or contains it as a contiguous run of at least ``min_words`` words (a
    lead-in such as "Please tell me:" added to the same question); siblings of siblings are
    siblings (groups are connected components).
    """
    keyed: dict[tuple[str, ...], list[str]] = {}
    for i, p in prompts.items():
        keyed.setdefault(tuple(_norm_words(p)), []).append(i)
    by_word: dict[str, set[tuple[str, ...]]] = {}
    for key in keyed:
        for w in key:
            by_word.setdefault(w, set()).add(key)
    parent = {key: key for key in keyed}  # union-find over the normalised prompts

    def root(k: tuple[str, ...]) -> tuple[str, ...]:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for key in keyed:
        if len(key) < min_words:
            continue
        for other in set.intersection(*(by_word[w] for w in set(key))):
            if len(other) > len(key) and _contains(list(other), list(key)):
                parent[root(other)] = root(key)
    groups: dict[tuple[str, ...], list[str]] = {}
    for key, ids in keyed.items():
        groups.setdefault(root(key), []).extend(ids)
    return {i: [j for j in members if j != i] for members in groups.values() for i in members}


def _contains(long: list[str], short: list[str]) -> bool:
    n = len(short)
    return any(long[k:k + n] == short for k in range(len(long) - n + 1))


def sample_table(run: str | Path, dynamics: pd.DataFrame | None = None,
                 diagnosis: pd.DataFrame | None | bool = True) -> pd.DataFrame:
    """One row per sample of a run with everything the sample inspector shows.

    Args:
        run: The run folder.
        dynamics: Its dynamics table (read when None).
        diagnosis: A diagnosis table, ``True`` to read ``RUN/diagnosis.parquet`` when present,
            ``False``/None for none.

    Returns:
        Columns ``id``, ``prompt``, ``response``, ``sample_stage``, ``learned``, ``output``
        (greedy output at the final point), ``base_output`` (at step 0), the final point's
        metrics, ``samples.parquet``'s history columns, ``planted_cause`` (None where no
        truth is known), and the diagnosis columns (``cause``, ``score_<cause>``,
        ``evidence``, ``siblings``) when there is a diagnosis.
    """
    run = Path(run)
    dyn = read_dynamics(run) if dynamics is None else dynamics
    final, base = final_rows(dyn), base_rows(dyn)
    ids = list(base.index)
    table = pd.DataFrame({"id": ids})
    records = read_records_of_run(run)
    table["prompt"] = [getattr(records.get(i), "prompt", None) for i in ids]
    table["response"] = [getattr(records.get(i), "response", None) for i in ids]
    table["sample_stage"] = [int(base.loc[i, "sample_stage"]) if "sample_stage" in base else 0 for i in ids]
    table["output"] = [final.loc[i, "output"] if "output" in final and i in final.index else None for i in ids]
    table["base_output"] = [base.loc[i, "output"] if "output" in base else None for i in ids]
    for col in _FINAL_COLUMNS:
        if col in final.columns:
            table[col] = [final.loc[i, col] if i in final.index else None for i in ids]
    samples_path = run / "samples.parquet"
    if samples_path.exists():
        hist = pd.read_parquet(samples_path).drop(columns=["sample_stage"], errors="ignore")
        table = table.merge(hist, on="id", how="left")
    if "learned" not in table.columns:
        table["learned"] = table["exact"].astype(bool) if "exact" in table else False
    truth = Run(run).truth() if (run / "config.json").is_file() else world_truth(None)
    table["planted_cause"] = [truth.get(i) for i in ids] if not truth.empty else None
    diag = read_diagnosis(run) if diagnosis is True else (diagnosis if isinstance(diagnosis, pd.DataFrame) else None)
    if diag is not None:
        diag = diag.copy()
        diag["id"] = diag["id"].astype(str)
        verdict = dict(zip(diag["id"], diag["learned"])) if "learned" in diag.columns else {}
        table = table.merge(diag.drop(columns=["learned"], errors="ignore"), on="id", how="left",
                            suffixes=("", "_diagnosis"))
        # the diagnosis's verdict is the one its cause refers to
        table["learned"] = [verdict.get(i, v) for i, v in zip(table["id"], table["learned"])]
    table["learned"] = table["learned"].astype(bool)
    return table
