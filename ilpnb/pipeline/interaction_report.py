"""Plain-language findings from the interaction dynamics of a run (every number measured there).

The notebooks print these instead of hard-coding numbers in markdown:
:func:`describe_dynamics` (what SFT did to the interactions), :func:`describe_stopping` (where
each rule stops and what it buys), :func:`heldout_table` (each held-out prompt at each point).
"""

from __future__ import annotations

import json
import math
from typing import Any

import pandas as pd

from ilpnb.pipeline.sweep import WORK, DynamicsTables

__all__ = ["describe_dynamics", "describe_stopping", "heldout_table"]


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
        txt = f"held-out accuracy {_f(a.get('heldout_acc'))}, validation loss {_f(a.get('val_loss'), 3)}"
        if a.get("train_exact") is not None:
            txt += f", SFT samples reproduced {_f(a.get('train_exact'))}"
        return txt

    found = "" if stop["interaction"]["detected"] else " (no end of denoising detected)"
    out = [f"Interaction-based stop{found}: step {stop['interaction']['step']} — {stop['interaction']['reason']}; "
           f"{metrics('interaction')}."]
    if stop.get("loss"):
        out.append(f"Loss-based stop: step {stop['loss']['step']} — {stop['loss']['reason']}; {metrics('loss')}.")
        gap = stop["interaction"]["step"] - stop["loss"]["step"]
        out.append("Both rules stop at the same checkpoint." if gap == 0 else
                   f"The interaction-based stop comes {abs(gap)} steps {'before' if gap < 0 else 'after'} "
                   "the loss-based one.")
    out.append(f"Base model (step 0): {metrics('base')}. Last checkpoint (step {stop['final_step']}): "
               f"{metrics('final')}.")
    return out


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
        for pid, d in info["prompts"].items():
            rec = prompts.get(pid)
            rows.append({"prompt_id": pid, "step": step, "prompt": rec.prompt if rec else "",
                         "answer": rec.response if rec else "", "target": d.get("target"),
                         "exact": d.get("exact"), "first": d.get("first"), "loss": d.get("loss"),
                         "v_full": d.get("v_full")})
    return pd.DataFrame(rows)
