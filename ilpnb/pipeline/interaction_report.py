"""Plain-language findings from the interaction dynamics of a run (every number measured there).

The notebooks print these instead of hard-coding numbers in markdown:
:func:`describe_dynamics` (what SFT did to the interactions), :func:`describe_stopping` (where
each rule stops and what it buys), :func:`describe_sets` / :func:`set_table` (what each
interaction set predicts), :func:`heldout_table` (each held-out prompt at each point).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from ilpnb.pipeline.sweep import WORK, DynamicsTables

__all__ = ["describe_dynamics", "describe_sets", "describe_stopping", "findings", "heldout_table", "set_table"]


def _f(x: Any, digits: int = 2) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def describe_dynamics(tables: DynamicsTables) -> list[str]:
    """Findings on the fate and quality of the interactions, one sentence each."""
    s = tables.summary.sort_values("step").reset_index(drop=True)
    stop = tables.stopping
    last, i_stop = s.iloc[-1], stop["interaction"]["index"]
    at = s.iloc[i_stop]
    ref = stop.get("reference")
    out = [
        f"{stop['n_prompts']} held-out prompts, {len(s)} checkpoints (steps {int(s['step'].iloc[0])}–"
        f"{int(last['step'])}); the base model has {_f(s['n_salient'].iloc[0], 1)} salient interactions per prompt.",
        f"By the last checkpoint {_f(100 * last['share_removed'], 0)}% of the base model's salient interactions "
        f"were removed, {_f(100 * last['share_preserved'], 0)}% preserved all the way, and newly emerged ones "
        f"amount to {_f(100 * last['share_emerged'], 0)}% of the base set.",
        (f"Up to the end of the denoising phase (step {stop['interaction']['step']}) removals were "
         f"{_f(100 * at['share_removed'], 0)}% and emergences {_f(100 * at['share_emerged'], 0)}% of the base set: "
         "SFT removed more than it added." if stop["interaction"]["detected"] else
         f"The interaction-based stop found no end of denoising: {stop['interaction']['reason']} (removals "
         f"{_f(100 * at['share_removed'], 0)}%, emergences {_f(100 * at['share_emerged'], 0)}% of the base set)."),
        f"Mean order at the last checkpoint: removed {_f(last['order_removed'])}, emerged "
        f"{_f(last['order_emerged'])}, preserved {_f(last['order_preserved'])}.",
        f"Non-cancelling ratio ρ at the last checkpoint: removed {_f(last['rho_removed'])} (in the base model), "
        f"emerged {_f(last['rho_emerged'])}, preserved {_f(last['rho_preserved'])}.",
    ]
    if ref:
        out.append(f"Generalisation ratio γ against {ref.rstrip('/').split('/')[-1]} at the last checkpoint: "
                   f"removed {_f(last['gamma_removed'])}, emerged {_f(last['gamma_emerged'])}, preserved "
                   f"{_f(last['gamma_preserved'])} (all salient: {_f(last['gamma_salient'])}).")
    else:
        out.append("No reference model, so no generalisation ratio γ.")
    return out


def describe_stopping(tables: DynamicsTables) -> list[str]:
    """Where each rule stops, and the held-out (and training) metrics there."""
    stop = tables.stopping
    at = stop["at"]

    def metrics(name: str) -> str:
        a = at[name]
        txt = (f"test accuracy {_f(a.get('test_acc'))}, test loss {_f(a.get('test_loss'), 3)}, validation loss "
               f"{_f(a.get('val_loss'), 3)}")
        if a.get("train_exact") is not None:
            txt += f", SFT samples reproduced {_f(a.get('train_exact'))}"
        return txt

    split = stop.get("split", {})
    found = "" if stop["interaction"]["detected"] else " (no end of denoising detected)"
    out = [f"Both rules choose on {len(split.get('validation', []))} validation prompts and are reported on "
           f"{len(split.get('test', []))} other (test) prompts.",
           f"Interaction-based stop{found}: step {stop['interaction']['step']} — {stop['interaction']['reason']}; "
           f"{metrics('interaction')}."]
    if stop.get("loss"):
        out.append(f"Loss-based stop: step {stop['loss']['step']} — {stop['loss']['reason']}; {metrics('loss')}.")
        gap = stop["interaction"]["step"] - stop["loss"]["step"]
        out.append("Both rules stop at the same checkpoint." if gap == 0 else
                   f"The interaction-based stop comes {abs(gap)} steps {'before' if gap < 0 else 'after'} "
                   "the loss-based one.")
    out.append(f"Base model (step 0): {metrics('base')}. Last checkpoint (step {stop['final_step']}): "
               f"{metrics('final')}.")
    out.extend(describe_sets(tables))
    return out


def set_table(tables: DynamicsTables) -> pd.DataFrame:
    """The test prompts' first-token cross-entropy per checkpoint, the output rebuilt from each
    interaction set (``ce_model`` the model's own), from the summary; empty without test prompts
    or with a target other than the gold answer's first token."""
    cols = [c for c in tables.summary if c.startswith("test_ce_")]
    if not cols:
        return pd.DataFrame()
    return tables.summary[["step", *cols]].rename(columns=lambda c: c.replace("test_ce_", ""))


def describe_sets(tables: DynamicsTables) -> list[str]:
    """The study's check: do the preserved interactions alone give the lowest test cross-entropy?"""
    t = set_table(tables)
    if t.empty:
        return ["No test prompts with a single-token gold target, so the cross-entropy of the interaction sets "
                "is not computed."]
    fine = t[t["step"] > t["step"].min()]
    sets = [c for c in ("all", "salient", "preserved", "emerged") if c in fine]
    best = fine[sets].idxmin(axis=1)
    last = fine.iloc[-1]
    wins = int((best == "preserved").sum())
    return ["Test cross-entropy of the first gold token, the output rebuilt from one set (last checkpoint): "
            + ", ".join(f"{c} {_f(last[c], 3)}" for c in sets) + f" (the model itself {_f(last['model'], 3)}); "
            f"the preserved set alone is lowest at {wins} of {len(fine)} fine-tuned checkpoints."]


def heldout_table(tables: DynamicsTables) -> pd.DataFrame:
    """Each held-out prompt at each checkpoint: exact answer, first token right, loss, ``v(N)``.

    Returns:
        One row per (prompt, step) with ``prompt``, ``answer``, ``target``, ``exact``,
        ``first``, ``loss``, ``v_full``.
    """
    prompts = {p.id: p for p in tables.prompts}
    rows = []
    for step in tables.stopping["steps"]:
        info = json.loads((tables.run / WORK / "parts" / f"step-{step:06d}.json").read_text())
        split = {i: k for k, ids in tables.stopping.get("split", {}).items() for i in ids}
        for pid, d in info["prompts"].items():
            rec, h = prompts.get(pid), info.get("heldout", {}).get(pid, {})
            rows.append({"prompt_id": pid, "split": split.get(pid), "step": step, "prompt": rec.prompt if rec else "",
                         "answer": rec.response if rec else "", "target": d.get("target"),
                         "exact": h.get("exact"), "first": h.get("first"), "loss": h.get("loss"),
                         "v_full": d.get("v_full")})
    return pd.DataFrame(rows)


def _decide(ok: bool | None) -> str:
    return "cannot be decided at this scale" if ok is None else ("reproduces" if ok else "does not reproduce")


def findings(tables: DynamicsTables) -> pd.DataFrame:
    """The study's two findings judged on one run, with the figures that decide each.

    1. *SFT first removes noise-like interactions*: a denoising phase is found on the
       validation prompts (removals exceed emergences up to a checkpoint before the last), and
       at its end the removed interactions are of higher mean order and lower ``ρ`` than the
       preserved ones. Undecided when no base interaction is removed there.
    2. *Then over-fitted ones appear, so interactions tell when to stop*: on the test prompts the
       interaction-based stop is at least as good as the lowest validation loss (test loss), and
       the preserved interactions alone give a lower test cross-entropy than all of them at the
       last checkpoint. Undecided without test prompts, or when the validation loss still falls
       at the last checkpoint (no over-fitting phase was reached).

    Returns:
        One row per finding: ``finding``, ``verdict``, ``figures`` (the measured values, in words).
    """
    stop, s = tables.stopping, tables.summary.sort_values("step").reset_index(drop=True)
    v = tables.validation.sort_values("step").reset_index(drop=True) if tables.validation is not None else s
    i = stop["interaction"]["index"]
    at = v.iloc[i]
    removed = at["share_removed"] > 0
    noise = (at["order_removed"] > at["order_preserved"]) and (at["rho_removed"] < at["rho_preserved"])
    ok1 = None if not removed else bool(stop["interaction"]["detected"] and noise)
    fig1 = (f"validation prompts, step {stop['interaction']['step']}: removed {_f(100 * at['share_removed'], 0)}% vs "
            f"emerged {_f(100 * at['share_emerged'], 0)}% of the base set ({stop['interaction']['reason']}); mean order "
            f"removed {_f(at['order_removed'])} vs preserved {_f(at['order_preserved'])}; ρ removed "
            f"{_f(at['rho_removed'])} vs preserved {_f(at['rho_preserved'])}")
    a = stop["at"]
    t_int, t_loss = a["interaction"].get("test_loss"), (a.get("loss") or {}).get("test_loss")
    last = s.iloc[-1]
    ce = (last.get("test_ce_preserved"), last.get("test_ce_all"))
    if t_int is None or t_loss is None or any(c is None or pd.isna(c) for c in ce):
        ok2, fig2 = None, "no test prompts with a single-token gold target"
    elif not (stop.get("loss") or {}).get("detected", False):
        ok2 = None
        fig2 = (f"the validation loss still falls at the last checkpoint (step {stop['final_step']}): the run never "
                f"reaches an over-fitting phase to stop before; test loss at the interaction stop {_f(t_int, 3)} vs "
                f"at the last checkpoint {_f(t_loss, 3)}; test cross-entropy from the preserved interactions alone "
                f"{_f(ce[0], 3)} vs all {_f(ce[1], 3)}")
    else:
        ok2 = bool(t_int <= t_loss + 1e-9 and ce[0] < ce[1])
        fig2 = (f"test loss at the interaction stop {_f(t_int, 3)} vs at the lowest validation loss {_f(t_loss, 3)}; "
                f"last checkpoint, test cross-entropy from the preserved interactions alone {_f(ce[0], 3)} vs all "
                f"{_f(ce[1], 3)} (the model {_f(last.get('test_ce_model'), 3)}); one seed "
                "(benchmarks/bench_early_stopping.py gives the spread over seeds)")
    return pd.DataFrame([
        {"finding": "SFT first removes noise-like interactions (a denoising phase)", "verdict": _decide(ok1),
         "figures": fig1},
        {"finding": "then adds over-fitted ones: the interaction stop and the preserved set predict held-out answers "
                    "best", "verdict": _decide(ok2), "figures": fig2}])
