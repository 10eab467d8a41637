"""Interaction dynamics across checkpoints: salient sets, their fate, their quality, summaries.

Everything here works on plain arrays and tidy tables, so it is tested on hand-made data;
:mod:`.sweep` computes the tables from a fine-tuning run.

**Sets.** For one prompt, ``Ω_t`` is the set of salient interactions at checkpoint ``t``
(``|I(S)| > frac · max|I|``, AND and OR terms together, the empty set excluded); an
interaction is a key ``(subset, kind)``. With checkpoints in step order, ``t = 0`` the base
model (SCIENCE.md):

* preserved ``P_0 = Ω_0`` and ``P_t = P_{t−1} ∩ Ω_t`` (salient at every checkpoint so far);
* newly emerged ``E_t = Ω_t \\ P_t`` (salient now, but not salient all the way from the base);
* removed ``R_t = Ω_0 \\ Ω_t`` (salient in the base model, not any more).

``P_t``, ``E_t`` and ``R_t`` are disjoint, so each row of the tidy table gets one ``status``:
``preserved``, ``emerged``, ``removed`` or ``none`` (not salient now and not salient at the base).

**Quality** of a group of interactions of one prompt:

* non-cancelling ratio ``ρ = |Σ I| / Σ |I|`` (1: all push the output the same way; ≈0: they
  cancel each other out, noise-like);
* generalisation ratio ``γ`` = share of the group that is also salient, with the same sign and
  the same kind, in a reference model of another architecture.

A removed interaction is judged by its value in the base model (where it was salient); the
other statuses by their value at ``t``.

**What each set predicts** (:func:`set_cross_entropy`): the output rebuilt from the empty
set's term plus one group's interactions, ``v̂ = I(∅) + Σ_{S ∈ group} I(S)``, read as the
target's log-odds, gives the cross-entropy ``−log σ(v̂)`` of the target token; with every
interaction it is the model's own (the AND-OR split is exact up to its small noise term). The
published study found that the preserved interactions alone predict held-out answers best.

The stopping rules built on these tables are in :mod:`.stopping`.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence

import numpy as np
import pandas as pd

__all__ = [
    "GROUPS",
    "STATUSES",
    "add_generalisation",
    "assign_status",
    "generalisation_ratio",
    "non_cancelling_ratio",
    "order_profile",
    "SETS",
    "set_cross_entropy",
    "status_masks",
    "summarize_dynamics",
    "track_sets",
]

STATUSES = ("preserved", "emerged", "removed")
"""The fates of an interaction relative to the base model (``none`` for the rest)."""

GROUPS = ("salient",) + STATUSES
"""Groups summarised per checkpoint: all salient interactions ``Ω_t`` and each status."""

# -- sets ----------------------------------------------------------------------------------

def track_sets(salient_sets: Sequence[set[Hashable]]) -> list[dict[str, set[Hashable]]]:
    """Preserved, emerged and removed sets along a sequence of salient sets.

    Args:
        salient_sets: ``Ω_0, Ω_1, …`` in checkpoint order (``Ω_0`` the base model's).

    Returns:
        For each ``t`` a dict with ``"salient"`` (``Ω_t``), ``"preserved"`` (``P_t``),
        ``"emerged"`` (``E_t``) and ``"removed"`` (``R_t``).

    Raises:
        ValueError: No sets given.
    """
    if not salient_sets:
        raise ValueError("no salient sets: give at least the base model's")
    base = set(salient_sets[0])
    out: list[dict[str, set[Hashable]]] = []
    preserved = set(base)
    for t, omega in enumerate(salient_sets):
        omega = set(omega)
        if t > 0:
            preserved = preserved & omega
        out.append({"salient": omega, "preserved": set(preserved), "emerged": omega - preserved,
                    "removed": base - omega})
    return out


def status_masks(salient: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`track_sets` on a boolean matrix, for many interactions at once.

    Args:
        salient: Shape ``(K, T)``: interaction ``k`` is salient at checkpoint ``t``.

    Returns:
        Boolean matrices of the same shape: ``"preserved"``, ``"emerged"``, ``"removed"``.
    """
    sal = np.asarray(salient, dtype=bool)
    if sal.ndim != 2 or sal.shape[1] == 0:
        raise ValueError(f"salient must have shape (K, T) with T >= 1, got {sal.shape}")
    preserved = np.logical_and.accumulate(sal, axis=1)
    return {"preserved": preserved, "emerged": sal & ~preserved, "removed": sal[:, :1] & ~sal}


def assign_status(frame: pd.DataFrame, steps: Sequence[int] | None = None) -> pd.DataFrame:
    """Add each interaction's fate relative to the base checkpoint.

    Args:
        frame: Tidy rows with ``prompt_id``, ``step``, ``mask`` (subset bitmask), ``kind``,
            ``value`` and ``salient``; every prompt has the same keys at every step.
        steps: Checkpoint order; default the sorted steps of ``frame`` (the first is the base).

    Returns:
        A copy with ``status`` (``preserved`` / ``emerged`` / ``removed`` / ``none``),
        ``base_value`` and ``base_salient`` (the same key in the base checkpoint).

    Raises:
        ValueError: A prompt misses a step, or a key misses a step.
    """
    steps = sorted(frame["step"].unique()) if steps is None else list(steps)
    if not steps:
        raise ValueError("no checkpoints in the interaction table")
    pos = {s: i for i, s in enumerate(steps)}
    parts = []
    for pid, rows in frame.groupby("prompt_id", sort=False):
        rows = rows[rows["step"].isin(pos)]
        sal = rows.pivot_table(index=["mask", "kind"], columns="step", values="salient", aggfunc="first")
        val = rows.pivot_table(index=["mask", "kind"], columns="step", values="value", aggfunc="first")
        missing = [s for s in steps if s not in sal.columns]
        if missing or sal.isna().any().any():
            raise ValueError(f"prompt {pid}: interactions missing at steps {missing or 'some'}")
        sal, val = sal[steps], val[steps]
        masks = status_masks(sal.to_numpy(dtype=bool))
        status = np.full(sal.shape, "none", dtype=object)
        for name in STATUSES:
            status[masks[name]] = name
        long = pd.DataFrame(status, index=sal.index, columns=steps).stack().rename("status")
        base = pd.DataFrame({"base_value": val[steps[0]], "base_salient": sal[steps[0]].astype(bool)})
        merged = rows.join(long, on=["mask", "kind", "step"]).join(base, on=["mask", "kind"])
        parts.append(merged)
    out = pd.concat(parts, ignore_index=True)
    return out.sort_values(["prompt_id", "step", "kind", "mask"], kind="stable").reset_index(drop=True)


# -- quality -------------------------------------------------------------------------------

def non_cancelling_ratio(values: Sequence[float] | np.ndarray) -> float:
    """``ρ = |Σ I| / Σ |I|`` of a group of interactions (NaN for an empty or all-zero group)."""
    v = np.asarray(values, dtype=np.float64)
    total = float(np.abs(v).sum())
    return float(abs(v.sum()) / total) if total > 0 else float("nan")


def generalisation_ratio(values: Sequence[float] | np.ndarray, ref_values: Sequence[float] | np.ndarray,
                         ref_salient: Sequence[bool] | np.ndarray) -> float:
    """``γ``: share of a group salient with the same sign in a reference model.

    Args:
        values: The group's interactions in the model under study.
        ref_values: The same interactions (same subsets and kinds) in the reference model.
        ref_salient: Whether each is salient in the reference model (its own threshold).

    Returns:
        The share in ``[0, 1]``; NaN for an empty group.
    """
    v, r = np.asarray(values, dtype=np.float64), np.asarray(ref_values, dtype=np.float64)
    s = np.asarray(ref_salient, dtype=bool)
    if not (v.shape == r.shape == s.shape):
        raise ValueError(f"shapes differ: {v.shape}, {r.shape}, {s.shape}")
    if v.size == 0:
        return float("nan")
    return float(np.mean(s & (np.sign(v) == np.sign(r)) & (v != 0)))


def add_generalisation(frame: pd.DataFrame, reference: pd.DataFrame | None) -> pd.DataFrame:
    """Join a reference model's interactions and mark which ones generalise.

    Args:
        frame: Output of :func:`assign_status`.
        reference: Rows ``prompt_id``, ``mask``, ``kind``, ``ref_value``, ``ref_salient``
            (``None``: no reference, ``generalises`` is all missing).

    Returns:
        A copy with ``ref_value``, ``ref_salient`` and ``generalises`` (nullable boolean):
        salient in the reference with the sign of the value that made it salient here
        (``base_value`` for a removed interaction, ``value`` otherwise).
    """
    out = frame.copy()
    if reference is None or reference.empty:
        out["ref_value"] = np.nan
        out["ref_salient"] = pd.array([pd.NA] * len(out), dtype="boolean")
        out["generalises"] = pd.array([pd.NA] * len(out), dtype="boolean")
        return out
    ref = reference[["prompt_id", "mask", "kind", "ref_value", "ref_salient"]]
    out = out.merge(ref, on=["prompt_id", "mask", "kind"], how="left")
    judged = np.where(out["status"].to_numpy() == "removed", out["base_value"], out["value"])
    known = out["ref_value"].notna().to_numpy()
    gen = (out["ref_salient"].fillna(False).to_numpy(dtype=bool)
           & (np.sign(judged) == np.sign(out["ref_value"].fillna(0.0).to_numpy())) & (judged != 0))
    out["ref_salient"] = pd.array(np.where(known, out["ref_salient"].fillna(False), None), dtype="boolean")
    out["generalises"] = pd.array(np.where(known, gen, None), dtype="boolean")
    return out


# -- what the sets predict -----------------------------------------------------------------

SETS = ("all", "salient", "preserved", "emerged")
"""Interaction sets whose rebuilt output :func:`set_cross_entropy` scores."""


def set_cross_entropy(frame: pd.DataFrame, additive: bool = True) -> pd.DataFrame:
    """The target's cross-entropy when the output is rebuilt from one set of interactions.

    Args:
        frame: Output of :func:`assign_status` (a single-token target, so ``v`` is its log-odds).
        additive: The kinds add up to ``v`` (the AND-OR split); ``False`` (separate AND and OR
            transforms of the same ``v``): only the AND terms are summed.

    Returns:
        One row per (``prompt_id``, ``step``) with ``v_full`` (the model's ``v(N)``),
        ``ce_model`` (``−log σ(v(N))``) and ``ce_<set>`` for each of :data:`SETS`.
    """
    rows = frame if additive else frame[frame["kind"] == "and"]
    keys = ["prompt_id", "step"]
    bias = rows[rows["mask"] == 0].groupby(keys)["value"].sum()
    rest = rows[rows["mask"] != 0]
    picks = {"all": np.ones(len(rest), dtype=bool), "salient": rest["salient"].to_numpy(dtype=bool),
             "preserved": (rest["status"] == "preserved").to_numpy(),
             "emerged": (rest["status"] == "emerged").to_numpy()}
    full_mask = frame.groupby(keys)["mask"].transform("max")
    v_full = frame[frame["mask"] == full_mask].groupby(keys)["v"].first()
    out = pd.DataFrame({"v_full": v_full})
    out["ce_model"] = np.logaddexp(0.0, -out["v_full"])
    for name in SETS:
        total = rest["value"].where(picks[name], 0.0).groupby([rest[k] for k in keys]).sum()
        v_hat = bias.add(total, fill_value=0.0).reindex(out.index).fillna(0.0)
        out[f"ce_{name}"] = np.logaddexp(0.0, -v_hat)
    return out.reset_index()


# -- summaries -----------------------------------------------------------------------------

def _judged(frame: pd.DataFrame) -> np.ndarray:
    return np.where(frame["status"].to_numpy() == "removed", frame["base_value"], frame["value"])


def _group_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (interaction, group) it belongs to, with the value it is judged by."""
    rows = frame[frame["status"] != "none"].copy()
    rows["judged"] = _judged(rows)
    rows["group"] = rows["status"]
    sal = rows[rows["status"] != "removed"].copy()
    sal["group"] = "salient"
    return pd.concat([sal, rows], ignore_index=True)


def _stats(frame: pd.DataFrame, extra: Sequence[str]) -> pd.DataFrame:
    """Per (step, group, *extra): mean count and strength per prompt, mean order, ρ, γ."""
    rows = _group_rows(frame)
    if "generalises" not in rows:
        rows["generalises"] = pd.array([pd.NA] * len(rows), dtype="boolean")
    rows["abs"] = rows["judged"].abs()
    rows["gen"] = rows["generalises"].astype("float64")
    keys = ["step", "group", *extra]
    per_prompt = rows.groupby([*keys, "prompt_id"]).agg(
        n=("judged", "size"), strength=("abs", "sum"), total=("judged", "sum"),
        order_sum=("order", "sum"), n_gen=("gen", "sum"), n_ref=("gen", "count")).reset_index()
    per_prompt["rho"] = per_prompt["total"].abs() / per_prompt["strength"].where(per_prompt["strength"] > 0)
    base = frame[frame["step"] == frame["step"].min()]
    omega0 = base[base["salient"].astype(bool)].groupby("prompt_id").size()
    prompts = pd.Index(sorted(frame["prompt_id"].unique()), name="prompt_id")
    # every (step, group, extra) × prompt, empty groups counted as zero
    levels = per_prompt[keys].drop_duplicates()
    full = levels.merge(pd.DataFrame({"prompt_id": prompts}), how="cross")
    per_prompt = full.merge(per_prompt, on=[*keys, "prompt_id"], how="left")
    for col in ("n", "strength", "order_sum", "n_gen", "n_ref"):
        per_prompt[col] = per_prompt[col].fillna(0.0)
    per_prompt["share"] = per_prompt["n"] / per_prompt["prompt_id"].map(omega0).where(lambda s: s > 0)
    agg = per_prompt.groupby(keys).agg(
        n=("n", "mean"), share=("share", "mean"), strength=("strength", "mean"), rho=("rho", "mean"),
        order_sum=("order_sum", "sum"), n_sum=("n", "sum"), n_gen=("n_gen", "sum"), n_ref=("n_ref", "sum"))
    agg["mean_order"] = agg["order_sum"] / agg["n_sum"].where(agg["n_sum"] > 0)
    agg["gamma"] = agg["n_gen"] / agg["n_ref"].where(agg["n_ref"] > 0)
    return agg.drop(columns=["order_sum", "n_sum", "n_gen", "n_ref"]).reset_index()


def summarize_dynamics(frame: pd.DataFrame, metrics: pd.DataFrame | None = None) -> pd.DataFrame:
    """One row per checkpoint: counts, strength, order, ρ and γ of each group, plus metrics.

    Args:
        frame: Output of :func:`assign_status` (optionally :func:`add_generalisation`).
        metrics: Optional per-checkpoint table with a ``step`` column (validation loss,
            held-out accuracy, …) joined as is.

    Returns:
        Columns ``step``; for each group ``g`` in :data:`GROUPS`: ``n_g`` (mean count per
        prompt), ``share_g`` (mean of count / ``|Ω_0|``), ``strength_g`` (mean ``Σ|I|`` per
        prompt), ``order_g`` (mean order), ``rho_g`` (mean over prompts with a non-empty
        group), ``gamma_g`` (pooled over prompts; NaN without a reference); ``denoise``
        (``share_removed − share_emerged``, the curve of :func:`denoising_end`); then the
        metrics' columns.
    """
    stats = _stats(frame, [])
    steps = pd.Index(sorted(frame["step"].unique()), name="step")
    out = pd.DataFrame(index=steps)
    for g in GROUPS:
        part = stats[stats["group"] == g].set_index("step")
        for col, name in (("n", "n"), ("share", "share"), ("strength", "strength"),
                          ("mean_order", "order"), ("rho", "rho"), ("gamma", "gamma")):
            fill = 0.0 if col in ("n", "share", "strength") else np.nan
            out[f"{name}_{g}"] = part[col].reindex(steps).fillna(fill) if fill == 0.0 else part[col].reindex(steps)
    out["denoise"] = out["share_removed"] - out["share_emerged"]
    out = out.reset_index()
    if metrics is not None and not metrics.empty:
        out = out.merge(metrics, on="step", how="left")
    return out


def order_profile(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts, strength, ρ and γ of each group by interaction order, per checkpoint.

    Returns:
        One row per (``step``, ``group``, ``order``) with ``n`` (mean count per prompt),
        ``share`` (of ``|Ω_0|``), ``strength``, ``rho``, ``gamma``.
    """
    stats = _stats(frame, ["order"])
    return stats.drop(columns=["mean_order"]).sort_values(["step", "group", "order"]).reset_index(drop=True)
