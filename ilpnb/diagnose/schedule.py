"""Forgetting read from the training schedule, not from a ``stage`` field.

A sample is *forgotten* when the model reproduced it at an evaluation point after its last
training step — nothing trained it any more — and no longer does at the end: later updates
on other samples overwrote it (left-side forgetting in sequential fine-tuning is the common
case, but the rule needs no stages). The schedule is ``RUN/schedule.parquet`` (every
trained example with its optimizer step, written by :func:`ilpnb.train.sft.run_sft`); a run
made without one falls back to the end of the stage a sample belongs to.

Per sample the table gives the last step it was trained, whether it was learned at or after
that step and lost by the end, the last step it was still learned, how many steps it has
been lost for, and the steps of other samples trained after it (the candidates for its
interferers, ranked by a similarity the caller supplies).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

__all__ = ["last_training_steps", "forgetting_table", "interferers", "read_schedule"]


def last_training_steps(dynamics: pd.DataFrame, schedule: pd.DataFrame | None) -> pd.Series:
    """The last optimizer step at which each sample was trained (id -> step; 0 = never).

    Without a schedule: the last step of the stage the sample belongs to (``sample_stage``),
    or of the whole run when all stages were trained together.
    """
    ids = pd.Index(dynamics["id"].astype(str).unique())
    if schedule is not None and len(schedule):
        last = schedule.assign(id=schedule["id"].astype(str)).groupby("id")["step"].max()
        return last.reindex(ids).fillna(0).astype(int)
    ends = dynamics.groupby("stage")["step"].max()
    stage_of = dynamics.drop_duplicates("id").set_index(dynamics.drop_duplicates("id")["id"].astype(str))["sample_stage"]
    trained_stages = set(dynamics["stage"].unique())
    final = int(dynamics["step"].max())
    steps = [int(ends.get(s, final)) if s in trained_stages else final for s in stage_of.reindex(ids)]
    return pd.Series(steps, index=ids)


def forgetting_table(dynamics: pd.DataFrame, learned: pd.Series, schedule: pd.DataFrame | None) -> pd.DataFrame:
    """Forgetting per sample from the schedule.

    Args:
        dynamics: the run's dynamics (``id``, ``point``, ``step``, ``stage``, ``sample_stage``).
        learned: learned verdict of each dynamics row (same index as ``dynamics``).
        schedule: ``schedule.parquet`` (``id``, ``step``), or None.

    Returns:
        Indexed by id: ``last_trained_step``, ``learned_untrained`` (learned at a point at or
        after the last training step, before the end), ``forgotten`` (that, and not learned at
        the end), ``last_learned_step``, ``steps_lost`` (final step minus the last step it was
        learned; 0 when not forgotten), ``final_step``.
    """
    d = dynamics.assign(id=dynamics["id"].astype(str), _learned=learned.to_numpy()).sort_values("point")
    last = last_training_steps(d, schedule)
    final_step = int(d["step"].max())
    final_point = d["point"].max()
    rows = []
    for sid, g in d.groupby("id", sort=False):
        lt = int(last.get(sid, 0))
        after = g[(g["step"] >= lt) & (g["point"] < final_point)]
        was = bool(after["_learned"].any())
        end = bool(g.loc[g["point"] == final_point, "_learned"].any())
        learned_steps = after.loc[after["_learned"], "step"]
        last_ok = int(learned_steps.max()) if len(learned_steps) else -1
        forgotten = was and not end
        rows.append({"id": sid, "last_trained_step": lt, "learned_untrained": was, "forgotten": forgotten,
                     "last_learned_step": last_ok, "steps_lost": final_step - last_ok if forgotten else 0,
                     "final_step": final_step})
    return pd.DataFrame(rows).set_index("id")


def interferers(sid: str, table: pd.DataFrame, schedule: pd.DataFrame | None, similarity: pd.Series,
                k: int = 3) -> list[tuple[str, float]]:
    """The samples trained after ``sid`` was last trained, most similar first.

    Args:
        sid: the forgotten sample.
        table: :func:`forgetting_table`'s output.
        schedule: the training schedule (None: samples whose own last training came later).
        similarity: similarity of every other sample to ``sid`` (id -> value).
        k: how many to return.
    """
    after = int(table.at[sid, "last_trained_step"])
    if schedule is not None and len(schedule):
        later = set(schedule.loc[schedule["step"] > after, "id"].astype(str))
    else:
        later = set(table.index[table["last_trained_step"] > after])
    later.discard(sid)
    sims = similarity.reindex(sorted(later)).dropna().sort_values(ascending=False)
    return [(str(i), float(v)) for i, v in sims.head(k).items()]


def read_schedule(run: str | Path) -> pd.DataFrame | None:
    """``RUN/schedule.parquet``, or the parts written so far, or None for a run without one."""
    path = Path(run)
    if (path / "schedule.parquet").exists():
        return pd.read_parquet(path / "schedule.parquet")
    parts = sorted((path / "schedule").glob("point-*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True) if parts else None


