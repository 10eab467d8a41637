"""Hand-made tables for the widget tests: dynamics, samples, a diagnosis, interactions."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pandas as pd

CAUSES = ("missing_knowledge", "pretrain_conflict", "data_conflict", "left_forgetting", "rare_pattern")

# id, prompt, response, stage, learned, planted, final output, base output
SAMPLES = [
    ("s1", "Where does Zorvan live?", "Oslo", 0, True, "none", "Oslo", "Rome"),
    ("s2", "Where does Mirela live?", "Paris", 0, False, "missing_knowledge", "Rome", "Rome"),
    ("s3", "What is the favourite colour of Geinari?", "brown", 1, False, "data_conflict", "orange", "blue"),
    ("s4", "Please tell me: what is the favourite colour of Geinari?", "orange", 1, False, "data_conflict",
     "orange juice", "blue"),
    ("s5", "Describe Tolva.", "Tolva lives in Oslo and works as a potter.", 1, False, "rare_pattern",
     "Tolva lives in Oslo and works as a painter.", "Tolva is"),
    ("s6", "Which colour does Migom like?", "black", 0, True, "left_forgetting", "black", "black"),
]
STEPS = [(0, 0, 0), (1, 2, 0), (2, 4, 0), (3, 10, 1), (4, 16, 1)]  # point, step, stage


def dynamics() -> pd.DataFrame:
    """Five points (two stages) for every sample; final ``exact`` follows ``learned``."""
    rows = []
    for k, (sid, _p, _r, stage, learned, _pc, out, base) in enumerate(SAMPLES):
        for point, step, st in STEPS:
            last = point == STEPS[-1][0]
            exact = learned if last else (point >= 2 and k % 2 == 0)
            rows.append({"id": sid, "point": point, "step": step, "epoch": float(point), "stage": st,
                         "sample_stage": stage, "loss": 2.0 - 0.3 * point + 0.1 * k, "token_acc": min(1.0, 0.2 * point),
                         "exact": bool(exact), "n_tokens": 3, "gold_first_p": 0.1 * point, "gold_first_rank": 5 - point,
                         "top_token": "Ġx", "top_token_p": 0.5, "pass@5": 0.2 * point,
                         "output": out if last else (base if point == 0 else None)})
    return pd.DataFrame(rows)


def samples(with_truth: bool = True) -> pd.DataFrame:
    """One row per sample, as :func:`ilpnb.widgets.sources.sample_table` makes it."""
    table = pd.DataFrame([{"id": s[0], "prompt": s[1], "response": s[2], "sample_stage": s[3], "learned": s[4],
                           "planted_cause": s[5] if with_truth else None, "output": s[6], "base_output": s[7],
                           "loss": 0.5, "exact": s[4], "first_learned_step": 4.0 if s[4] else np.nan,
                           "forgetting_events": 0} for s in SAMPLES])
    return table


def diagnosis(ids: list[str], learned: list[bool], planted: list[str | None],
              siblings: dict[str, list[str]] | None = None, seed: int = 0) -> pd.DataFrame:
    """A diagnosis following DESIGN.md's contract: the planted cause wins for unlearned samples
    (``unattributed`` where none is planted), ``none`` for learned ones."""
    rng = np.random.default_rng(seed)
    rows = []
    for sid, ok, cause in zip(ids, learned, planted):
        scores = {f"score_{c}": float(rng.uniform(0.0, 0.4)) for c in CAUSES}
        if ok:
            chosen, evidence = "none", "reproduced at the end"
        elif cause in CAUSES:
            chosen = cause
            scores[f"score_{cause}"] = 0.9
            evidence = f"{cause} (0.90): synthetic evidence for {sid}"
        else:
            chosen, evidence = "unattributed", "no detector is confident"
        rows.append({"id": sid, "learned": bool(ok), "cause": chosen, **scores, "evidence": evidence,
                     "siblings": list((siblings or {}).get(sid, []))})
    return pd.DataFrame(rows)


def write_synthetic_diagnosis(run: Path, world: Path) -> pd.DataFrame:
    """``RUN/diagnosis.parquet`` made from the run's verdicts and the world's planted causes."""
    import json

    from ilpnb.widgets.sources import prompt_siblings

    s = pd.read_parquet(run / "samples.parquet")
    truth = {json.loads(line)["id"]: json.loads(line)["planted_cause"]
             for line in (world / "truth.jsonl").read_text().splitlines() if line.strip()}
    prompts = {json.loads(line)["id"]: json.loads(line)["prompt"]
               for line in (world / "sft.jsonl").read_text().splitlines() if line.strip()}
    ids = s["id"].astype(str).tolist()
    siblings = prompt_siblings(prompts)
    # the planted conflict groups (paraphrases by structure, which no prompt rule need catch):
    # samples of one group ask about the same subject and relations
    meta = json.loads((world / "world.json").read_text()).get("samples", [])
    groups: dict[tuple, list[str]] = {}
    for m in meta:
        if truth.get(m["id"]) == "data_conflict":
            groups.setdefault((m.get("subject"), tuple(m.get("relations", [m.get("relation")]))), []).append(m["id"])
    for members in groups.values():
        for i in members:
            siblings[i] = sorted(set(siblings.get(i, [])) | (set(members) - {i}))
    table = diagnosis(ids, s["learned"].astype(bool).tolist(), [truth.get(i) for i in ids], siblings)
    table.to_parquet(run / "diagnosis.parquet", index=False)
    return table


def interaction_table(steps: tuple[int, ...] = (0, 5, 10), words: tuple[str, ...] = ("Where", "does", "Zorvan", "live?"),
                      prompt_id: str = "p1", prompt: str = "Where does Zorvan live?") -> pd.DataFrame:
    """A full game per step: ``v(S) = Σ_{i∈S} a_i + b·[0,2 ⊆ S]`` with values changing over steps.

    At every step the AND interactions are exactly ``a_i`` on singletons and ``b`` on {0, 2}.
    Step 0: a = (1, 0.01, 2, -0.5), b = 1.5.  Step 5: the pair weakens (b = 0.02, not salient).
    Step 10: a new pair {1, 3} appears (c = -1.2).
    """
    params = {0: ((1.0, 0.01, 2.0, -0.5), 1.5, 0.0), 5: ((1.0, 0.01, 2.0, -0.5), 0.02, 0.0),
              10: ((0.8, 0.01, 2.5, -0.5), 0.02, -1.2)}
    rows = []
    n = len(words)
    subsets = [tuple(c) for r in range(n + 1) for c in itertools.combinations(range(n), r)]
    for step in steps:
        a, b, c = params[step]

        def v(s: tuple[int, ...]) -> float:
            return sum(a[i] for i in s) + (b if {0, 2} <= set(s) else 0.0) + (c if {1, 3} <= set(s) else 0.0)

        and_vals = {s: (a[s[0]] if len(s) == 1 else 0.0) for s in subsets}
        and_vals[(0, 2)] = b
        and_vals[(1, 3)] = c
        or_vals = {s: (0.3 if s == (1,) else 0.0) for s in subsets}
        top = max(max(abs(x) for s, x in and_vals.items() if s), max(abs(x) for x in or_vals.values()))
        for kind, vals in (("and", and_vals), ("or", or_vals)):
            for s in subsets:
                rows.append({"prompt_id": prompt_id, "prompt": prompt, "step": step, "subset": s,
                             "words": " & ".join(words[i] for i in s), "order": len(s), "kind": kind,
                             "value": vals[s], "salient": bool(s) and abs(vals[s]) > 0.05 * top, "v": v(s)})
    return pd.DataFrame(rows)
