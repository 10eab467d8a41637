"""The model's side of the diagnosis: what the base model knows, believes and confuses.

Computed once per run from the run's base model and its SFT records — no world file, no
probe file — and cached under ``RUN/evidence/`` (reused only while the model, the records and
the settings are the same, checked by a stored key):

* ``knowledge.parquet`` — the base model's own answers to every prompt, greedy and sampled
  (:func:`ilpnb.probe.sampling.sample_answers`): the known / maybe / weakly / unknown
  category, the share of right answers, its preferred other answer and how consistently it
  gives it; and the automatic probes in several framings
  (:func:`ilpnb.probe.autoprobes.auto_probe`), prefixed ``ap_``;
* ``neighbours.json`` — per sample, its nearest prompts by meaning (lexical + hidden states,
  :func:`ilpnb.diagnose.embedding.meaning_similarity`) with their similarity and whether
  they carry the same answer: near-duplicates, conflicting or consistent, and the candidates
  for a forgotten sample's interferers;
* ``patterns.parquet`` — how many other samples share each sample's pattern (whole example,
  mean-pooled hidden states above :data:`ilpnb.diagnose.thresholds.PATTERN_SIM`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.diagnose.thresholds import PATTERN_SIM

__all__ = ["EvidenceSettings", "Evidence", "model_evidence", "consistent_answers"]

_NEIGHBOURS = 8  # nearest prompts kept per sample (siblings are read from these)
_VERSION = 3  # of what is computed: a change here recomputes every cached evidence folder


@dataclass(frozen=True)
class EvidenceSettings:
    """How the base model is questioned.

    Attributes:
        n_samples: sampled answers per prompt besides the greedy one.
        temperature: sampling temperature (1.0: the model's own distribution, so a guess
            spreads and a belief does not).
        seed: seed of the samples.
        autoprobes: also ask in the other framings (:mod:`ilpnb.probe.autoprobes`).
        batch_size: prompts per generate call.
    """

    n_samples: int = 8
    temperature: float = 1.0
    seed: int = 0
    autoprobes: bool = True
    batch_size: int = 32


@dataclass
class Evidence:
    """The cached evidence of one run (see the module docstring)."""

    knowledge: pd.DataFrame
    neighbours: dict[str, list[tuple[str, float, bool]]]
    patterns: pd.DataFrame


def _key(model: str, records: pd.DataFrame, settings: EvidenceSettings, max_length: int | None) -> str:
    text = json.dumps({"version": _VERSION, "model": str(model), "settings": asdict(settings),
                       "max_length": max_length, "pattern_sim": PATTERN_SIM, "neighbours": _NEIGHBOURS,
                       "records": records[["prompt", "response"]].reset_index().astype(str).values.tolist()})
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def consistent_answers(a: str, b: str) -> bool:
    """Whether two answers agree: equal after normalisation, or one says the other within it
    as whole words ("Midum" and "Stabristir lives in Midum.")."""
    from ilpnb.probe.answers import normalize_answer

    x, y = normalize_answer(a), normalize_answer(b)
    if not x or not y:
        return x == y
    short, long = (x, y) if len(x) <= len(y) else (y, x)
    return short == long or f" {short} " in f" {long} "


def _neighbours(sim: np.ndarray, ids: list[str], responses: list[str]) -> dict[str, list[tuple[str, float, bool]]]:
    out: dict[str, list[tuple[str, float, bool]]] = {}
    k = min(_NEIGHBOURS, max(len(ids) - 1, 0))
    for a, sid in enumerate(ids):
        order = np.argsort(-sim[a], kind="stable")[:k]
        out[sid] = [(ids[b], float(sim[a, b]), consistent_answers(responses[a], responses[b]))
                    for b in order if b != a]
    return out


def _patterns(model: Any, tok: Any, records: pd.DataFrame, batch_size: int) -> pd.DataFrame:
    from ilpnb.diagnose.embedding import embedding_similarity, prompt_embeddings

    texts = (records["prompt"].astype(str) + "\n" + records["response"].astype(str)).tolist()
    sim = embedding_similarity(prompt_embeddings(model, tok, texts, pooling="mean", batch_size=batch_size))
    count = (sim >= PATTERN_SIM).sum(axis=1)
    return pd.DataFrame({"pattern_count": count.astype(int), "pattern_share": count / max(len(texts) - 1, 1)},
                        index=records.index)


def model_evidence(run: str | Path, model_name: str, records: pd.DataFrame,
                   settings: EvidenceSettings = EvidenceSettings(), max_length: int | None = None) -> Evidence:
    """The base model's evidence about every record of a run (computed once, then cached).

    Args:
        run: the run folder (``RUN/evidence/`` is written).
        model_name: the base model (a folder, a registered name or a hub name).
        records: ``prompt``, ``response`` indexed by id.
        settings: how the model is questioned.
        max_length: longest sequence, as in training.
    """
    folder = Path(run) / "evidence"
    key = _key(model_name, records, settings, max_length)
    stamp = folder / "key.json"
    if stamp.exists() and json.loads(stamp.read_text()).get("key") == key:
        return _read(folder)
    import torch

    from ilpnb.diagnose.embedding import meaning_similarity
    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.probe.autoprobes import auto_probe
    from ilpnb.probe.sampling import sample_answers

    model, tok = load_model_and_tokenizer(model_name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    model.eval()
    table = records[["prompt", "response"]]
    with torch.inference_mode():
        know = sample_answers(model, tok, table, n_samples=settings.n_samples, temperature=settings.temperature,
                              seed=settings.seed, batch_size=settings.batch_size, max_length=max_length,
                              keep_samples=False)
        if settings.autoprobes:
            ap = auto_probe(model, tok, table, n_samples=settings.n_samples, temperature=settings.temperature,
                            seed=settings.seed, batch_size=settings.batch_size, max_length=max_length)
            keep = ["knows_gold", "belief", "verdict", "other_answer", "prefers_other_share", "category"]
            know = know.join(ap[keep].add_prefix("ap_"))
        sim = meaning_similarity(table["prompt"].astype(str).tolist(), model, tok, batch_size=settings.batch_size)
        patterns = _patterns(model, tok, table, settings.batch_size)
    neighbours = _neighbours(sim, [str(i) for i in table.index], table["response"].astype(str).tolist())
    folder.mkdir(parents=True, exist_ok=True)
    know.to_parquet(folder / "knowledge.parquet")
    patterns.to_parquet(folder / "patterns.parquet")
    (folder / "neighbours.json").write_text(json.dumps(neighbours))
    stamp.write_text(json.dumps({"key": key, "model": str(model_name), "settings": asdict(settings)}, indent=1))
    return Evidence(know, neighbours, patterns)


def _read(folder: Path) -> Evidence:
    raw = json.loads((folder / "neighbours.json").read_text())
    neighbours = {k: [(str(a), float(s), bool(same)) for a, s, same in v] for k, v in raw.items()}
    return Evidence(pd.read_parquet(folder / "knowledge.parquet"), neighbours,
                    pd.read_parquet(folder / "patterns.parquet"))
