"""Interactions along a fine-tuning run: compute, resume, assemble, and decide when to stop.

:func:`interaction_dynamics` takes a fine-tuning run folder (``ilpnb sft`` or
:func:`ilpnb.train.sft.run_sft`) and, for a set of held-out prompts, computes the exact
interactions of every checkpoint (the base model at step 0, then each saved point, in step
order) with the **same players** and the **same target** per prompt — with
:func:`ilpnb.interactions.track`, the one engine — plus those of a reference model of another
architecture (for ``γ``), and writes into the run folder:

* ``interactions.parquet`` — one row per prompt × checkpoint × subset × kind: ``order``,
  ``value``, ``salient``, ``status`` (preserved / emerged / removed / none), ``step``, …;
* ``interaction_summary.parquet`` — one row per checkpoint: counts, strength, order, ``ρ`` and
  ``γ`` per status, validation loss and held-out accuracy (:func:`.dynamics.summarize_dynamics`);
* ``interaction_orders.parquet`` — the same by interaction order (:func:`.dynamics.order_profile`);
* ``interaction_validation.parquet`` — the summary of the validation prompts alone;
* ``interaction_stopping.json`` — the interaction-based and loss-based stopping steps, both
  chosen on the validation prompts, and the test prompts' metrics at each (the split too);
* ``interactions/`` — the work folder: settings, prompts, ``parts/`` (the players and one part per checkpoint),
  the reference model's interactions. A second call skips the checkpoints already computed
  (resume); other settings than the stored ones are an error unless ``fresh=True``.

**Target.** The published method scores the first response token. For a fine-tuned model the
gold answer is what SFT pushes towards, so by default (``target="gold"``) ``v`` is the log-odds
of the *gold answer's first token*, the same token at every checkpoint and in the reference
model (resolved with each model's own tokenizer). ``"response"`` teacher-forces the whole gold
answer (log-odds summed over its tokens); ``"greedy"`` follows each model's own first output
token (then the target may change between checkpoints).

**Players** are chosen once, on the base model (all words of a prompt up to ``max_players``,
else the most effective ones), and reused at every checkpoint and in the reference model.

**Validation and test prompts.** The held-out prompts are split once
(:func:`.checkpoints.split_prompts`, ``validation_share``, seeded; a record's ``meta["split"]``
wins): the validation half chooses the stopping steps, the disjoint test half reports what each
buys (loss, exact answers, first token, and the first-token cross-entropy rebuilt from each
interaction set, :func:`.dynamics.set_cross_entropy`).

**Held-out prompts** of a world run: :func:`.checkpoints.heldout_prompts` (facts the base model
was told in pretraining and no SFT sample asks about); any run takes an SFT-record file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.data.records import SFTRecord, write_records
from ilpnb.interactions.checkpoints import (
    SPLITS,
    Checkpoint,
    heldout_metrics,
    heldout_prompts,
    list_checkpoints,
    load_checkpoint,
    read_prompts,
    select_checkpoints,
    split_prompts,
)
from ilpnb.interactions.dynamics import SETS, add_generalisation, order_profile, set_cross_entropy, summarize_dynamics
from ilpnb.interactions.players import InteractionInputError, Player
from ilpnb.interactions.settings import DynamicsConfig, dynamics_config
from ilpnb.interactions.stopping import stopping_summary
from ilpnb.interactions.tracking import (
    game,
    game_rows,
    label,
    load_part,
    salient_mask,
    target_of,
    track,
    write_atomic,
)
from ilpnb.runs import Run

__all__ = ["METRICS", "OUTPUTS", "WORK", "DynamicsTables", "interaction_dynamics", "reference_model", "rescore"]

WORK = "interactions"
OUTPUTS = ("interactions.parquet", "interaction_summary.parquet", "interaction_orders.parquet",
           "interaction_stopping.json", "interaction_validation.parquet")


@dataclass
class DynamicsTables:
    """The tables :func:`interaction_dynamics` writes, loaded.

    Attributes:
        run: The fine-tuning run folder.
        frame: ``interactions.parquet``.
        summary: ``interaction_summary.parquet``.
        orders: ``interaction_orders.parquet``.
        stopping: ``interaction_stopping.json``.
        validation: ``interaction_validation.parquet``: the summary of the validation prompts
            alone, on which the stopping steps are chosen.
    """

    run: Path
    frame: pd.DataFrame
    summary: pd.DataFrame
    orders: pd.DataFrame
    stopping: dict[str, Any] = field(default_factory=dict)
    validation: pd.DataFrame | None = None

    @classmethod
    def load(cls, run: str | Path) -> DynamicsTables:
        """Read the tables of a run.

        Raises:
            FileNotFoundError: The run has no interaction dynamics yet.
        """
        run = Path(run)
        missing = [n for n in OUTPUTS if not (run / n).is_file()]
        if missing:
            raise FileNotFoundError(f"{run}: no {', '.join(missing)}; run `ilpnb interactions {run}` first")
        return cls(run, pd.read_parquet(run / OUTPUTS[0]), pd.read_parquet(run / OUTPUTS[1]),
                   pd.read_parquet(run / OUTPUTS[2]), json.loads((run / OUTPUTS[3]).read_text()),
                   pd.read_parquet(run / OUTPUTS[4]))

    @property
    def prompts(self) -> list[SFTRecord]:
        """The held-out prompts used."""
        return read_prompts(self.run / WORK / "prompts.jsonl")


# -- helpers -------------------------------------------------------------------------------

def _prompts_key(prompts: Sequence[SFTRecord]) -> str:
    h = hashlib.sha256()
    for p in prompts:
        h.update(json.dumps([p.id, p.prompt, p.response]).encode() + b"\n")
    return h.hexdigest()[:16]


def _arch(model_path: str) -> str | None:
    cfg = Path(model_path) / "config.json"
    return json.loads(cfg.read_text()).get("model_type") if cfg.is_file() else None


def reference_model(run: str | Path, config: DynamicsConfig) -> str | None:
    """The reference model of ``γ`` for a run (a folder or name), or None.

    ``config.reference`` ``"auto"``: for a world run, the world's tiny base model of another
    architecture (``reference_arch``, or another one if the run's model already is one),
    pretrained on the same corpus with the same settings (cached); otherwise none.
    """
    if config.reference in ("none", "", None):
        return None
    if config.reference != "auto":
        return config.reference
    cfg = Run(run).config
    world = cfg.get("world")
    if not world:
        return None
    from ilpnb.config import get_preset, override
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.models.tiny import ARCHS

    p = get_preset(cfg.get("preset", "default"))
    base_arch = _arch(str(cfg["model"])) or p.model.arch
    arch = config.reference_arch
    if arch == base_arch:
        arch = next(a for a in ARCHS if a != base_arch)
    model = override(p.model, {"arch": arch})
    return str(pretrain_base_model(Path(world) / "pretrain.txt", model, p.pretrain, progress=False))


def _measure(recs: Sequence[SFTRecord], max_length: int | None) -> Any:
    """The per-checkpoint metrics of a sweep: teacher-forced loss, exact and first-token hits per prompt."""
    def measure(model: Any, tok: Any, items: Any) -> dict[str, Any]:
        m = heldout_metrics(model, tok, recs, max_length)
        return {"heldout": {r.id: {"loss": m["loss"][i], "exact": m["exact"][i], "first": m["first"][i]}
                            for i, r in enumerate(recs)}}
    return measure


def _compute_reference(path: str, prompts: Sequence[SFTRecord], players: dict[str, list[Player]],
                       config: DynamicsConfig) -> pd.DataFrame:
    model, tok = load_checkpoint(path)
    parts = []
    for rec in prompts:
        try:
            res = game(model, tok, rec.prompt, target_of(tok, rec.prompt, rec.response, config.target,
                                                         config.target_tokens), players[rec.id], config)
        except InteractionInputError as err:  # a word this tokenizer drops: no γ for the prompt
            warnings.warn(f"reference model {path}: prompt {rec.id} skipped ({err})", UserWarning, stacklevel=2)
            continue
        t = game_rows(res, rec.id)
        parts.append(t.rename(columns={"value": "ref_value"})[["prompt_id", "mask", "kind", "ref_value"]])
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(
        columns=["prompt_id", "mask", "kind", "ref_value"])


def _from_file(work: Path) -> bool:
    stored = work / "settings.json"
    return stored.is_file() and json.loads(stored.read_text()).get("prompt_source") == "file"


def _resolve_prompts(run: Path, work: Path, prompts: str | Path | Sequence[SFTRecord] | None,
                     config: DynamicsConfig) -> list[SFTRecord]:
    if prompts is not None:
        return list(prompts) if not isinstance(prompts, (str, Path)) else read_prompts(prompts)
    if _from_file(work) and (work / "prompts.jsonl").is_file():  # resuming with the prompts given before
        return read_prompts(work / "prompts.jsonl")
    cfg = Run(run).config
    if cfg.get("world"):
        return heldout_prompts(cfg["world"], config.n_prompts, config.seed)
    raise ValueError(f"{run}: not a world run, so there are no default held-out prompts; "
                     "pass prompts=FILE (--prompts FILE), an SFT-record file with gold answers")


# -- the sweep -----------------------------------------------------------------------------

def interaction_dynamics(run: str | Path, prompts: str | Path | Sequence[SFTRecord] | None = None,
                         checkpoints: Sequence[int] | str | None = None, config: DynamicsConfig | None = None,
                         preset: str | None = None, fresh: bool = False, progress: bool = True,
                         **changes: Any) -> DynamicsTables:
    """Interactions of held-out prompts across the checkpoints of a fine-tuning run.

    Args:
        run: The fine-tuning run folder.
        prompts: An SFT-record file or records (gold answers needed); default: the world's
            held-out questions (:func:`.checkpoints.heldout_prompts`).
        checkpoints: Steps to use (``"4,8"`` or a list); the base model is always included;
            default all.
        config: Settings; default the preset's (:func:`dynamics_config`) with ``changes``.
        preset: Preset of the settings; default the run's ``config.json["preset"]``.
        fresh: Discard earlier interaction results of the run and start over.
        progress: Show a progress bar over checkpoints.
        **changes: :class:`DynamicsConfig` fields to change.

    Returns:
        The tables, also written into ``run`` (see the module docstring).

    Raises:
        FileNotFoundError: Not a run folder, or no checkpoints.
        ValueError: A step with no checkpoint, no prompts, settings other than the stored ones
            (without ``fresh``).
        RecordError: A bad line in the prompts file.
    """
    run = Path(run)
    all_ck = list_checkpoints(run)
    chosen = select_checkpoints(all_ck, checkpoints)
    run_cfg = Run(run).config
    if config is None:
        config = dynamics_config(preset or run_cfg.get("preset", "default"), **changes)
    elif changes:
        config = replace(config, **changes)
    config.check()
    work = run / WORK
    if fresh:
        shutil.rmtree(work, ignore_errors=True)
        for name in OUTPUTS:
            (run / name).unlink(missing_ok=True)
    recs = _resolve_prompts(run, work, prompts, config)
    if not recs:
        raise ValueError("no held-out prompts")
    ids = [r.id for r in recs]
    if len(set(ids)) != len(ids):
        raise ValueError("held-out prompt ids must be unique")
    ref_path = reference_model(run, config)
    split = split_prompts(recs, config.validation_share, config.seed)
    settings = {"interactions": config.interaction_settings(), "prompts": _prompts_key(recs), "split": split,
                "prompt_source": "file" if prompts is not None or _from_file(work) else "world",
                "reference": ref_path, "salient_frac": config.salient_frac}
    work.mkdir(parents=True, exist_ok=True)
    if (work / "settings.json").is_file():
        stored = json.loads((work / "settings.json").read_text())
        differ = [f"{k}: {stored['interactions'].get(k)!r} there, {v!r} now"
                  for k, v in settings["interactions"].items() if stored.get("interactions", {}).get(k) != v]
        if stored.get("prompts") != settings["prompts"]:
            differ.append("the held-out prompts")
        if stored.get("split") != split:
            differ.append("the validation / test split")
        if differ:
            raise ValueError(f"{work}: computed with other settings ({'; '.join(differ)}); pass "
                             "fresh=True (--fresh) to start over, or the same settings to resume")
    write_atomic(settings, work / "settings.json")
    write_records(recs, work / "prompts.jsonl")
    players: dict[str, list[Player]] = {}
    track(chosen, recs, config, players=players, store=work / "parts", measure=_measure(recs, run_cfg.get("max_length")),
          progress=progress)
    reference = None
    if ref_path is not None:
        ref_file = work / "reference.parquet"
        ref_meta = json.loads((work / "reference.json").read_text()) if (work / "reference.json").is_file() else {}
        if not ref_file.is_file() or ref_meta.get("model") != ref_path:
            write_atomic(_compute_reference(ref_path, recs, players, config), ref_file)
            write_atomic({"model": ref_path, "arch": _arch(ref_path)}, work / "reference.json")
        reference = pd.read_parquet(ref_file)
    return _assemble(run, chosen, config, reference)


METRICS = ("checkpoint", "epoch", "val_loss", "val_acc", "val_first_acc", "test_loss", "test_acc", "test_first_acc",
           "heldout_loss", "heldout_acc", "heldout_first_acc", "target_logodds", "train_exact", "train_loss",
           *[f"test_ce_{n}" for n in ("model", *SETS)])
"""Per-checkpoint metric columns of the summaries (besides the interaction statistics): ``val_*`` on
the validation prompts, ``test_*`` on the test prompts, ``heldout_*`` on both, ``test_ce_<set>``
the test prompts' first-token cross-entropy rebuilt from one set of interactions; ``train_*`` the
SFT samples' (an evaluation pass where the run tracked one, else the in-training statistics of
the batches since the previous checkpoint)."""

REPORT = ("val_loss", "test_loss", "test_acc", "test_first_acc", "test_ce_model", "test_ce_preserved",
          "train_exact", "train_loss")
"""What each stopping point is reported by (chosen on validation prompts, reported on test ones)."""


def _split_metrics(infos: Sequence[dict[str, Any]], split: dict[str, str]) -> pd.DataFrame:
    """Per checkpoint: loss, exact and first-token accuracy on each split and on all prompts."""
    rows = []
    for info in infos:
        per = pd.DataFrame.from_dict(info.get("heldout", {}), orient="index")
        row = {"step": info["step"], "checkpoint": info.get("checkpoint"), "epoch": info.get("epoch"),
               "target_logodds": float(np.mean([p["v_full"] for p in info["prompts"].values()]))}
        for name, ids in (("val", "validation"), ("test", "test"), ("heldout", None)):
            part = per if ids is None else per[[split.get(str(i)) == ids for i in per.index]]
            row[f"{name}_loss"] = float(part["loss"].mean()) if len(part) else np.nan
            row[f"{name}_acc"] = float(part["exact"].astype(float).mean()) if len(part) else np.nan
            row[f"{name}_first_acc"] = float(part["first"].astype(float).mean()) if len(part) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def _derive(run: Path, raw: pd.DataFrame, reference: pd.DataFrame | None, steps: list[int],
            metrics: pd.DataFrame, salient_frac: float, salient_scale: str, stop_rule: str,
            ref_name: str | None, split: dict[str, str], game: dict[str, Any]) -> DynamicsTables:
    """Salience, statuses, generalisation, summaries and stopping from the raw interactions.

    The stopping steps are chosen on the validation prompts' summary and reported on the test
    prompts (``split``); the summary of all prompts describes the run.
    """
    if reference is not None:
        reference = reference.copy()  # the reference model is judged on its own scale
        reference["ref_salient"] = salient_mask(reference, ["prompt_id"], "ref_value", salient_frac)
    frame = add_generalisation(label(raw, steps, salient_frac, salient_scale), reference)
    frame["split"] = frame["prompt_id"].astype(str).map(split).fillna("validation")
    metrics = metrics.drop(columns=[c for c in metrics if c.startswith("test_ce_")])
    test = frame[frame["split"] == "test"]
    if game.get("target") == "gold" and not test.empty:
        ce = set_cross_entropy(test, additive=bool(game.get("and_or", True)))
        ce = ce.drop(columns=["prompt_id", "v_full"]).groupby("step").mean().add_prefix("test_").reset_index()
        metrics = metrics.merge(ce, on="step", how="left")
    summary = summarize_dynamics(frame, metrics)
    validation = summarize_dynamics(frame[frame["split"] == "validation"], metrics)
    stopping = stopping_summary(validation, stop_rule, metrics=REPORT)
    stopping.update(reference=ref_name, n_prompts=int(frame["prompt_id"].nunique()), steps=list(steps),
                    salient_frac=salient_frac, salient_scale=salient_scale, game=game,
                    split={k: sorted(i for i, v in split.items() if v == k) for k in SPLITS})
    return DynamicsTables(run, frame, summary, order_profile(frame), stopping, validation)


def rescore(tables: DynamicsTables, salient_frac: float | None = None, salient_scale: str | None = None,
            stop_rule: str | None = None) -> DynamicsTables:
    """The same interactions judged with another salience threshold, scale or stopping rule.

    Nothing is recomputed from the models and nothing is written: use it to see how much a
    finding depends on the threshold (e.g. ``salient_scale="base"``).

    Args:
        tables: Tables of :func:`interaction_dynamics`.
        salient_frac: New threshold fraction (default: the tables').
        salient_scale: ``own`` or ``base`` (see :class:`DynamicsConfig`).
        stop_rule: Rule of :func:`.stopping.denoising_end`.
    """
    st = tables.stopping
    frac = st.get("salient_frac", 0.05) if salient_frac is None else salient_frac
    scale = st.get("salient_scale", "own") if salient_scale is None else salient_scale
    rule = st.get("rule", "net") if stop_rule is None else stop_rule
    dynamics_config("default", salient_frac=frac, salient_scale=scale, stop_rule=rule)  # validates
    f = tables.frame
    raw = f.drop(columns=[c for c in ("salient", "status", "base_value", "base_salient", "ref_value",
                                      "ref_salient", "generalises", "split") if c in f])
    reference = None
    if "ref_value" in f and f["ref_value"].notna().any():
        first = f[f["step"] == st["steps"][0]]
        reference = first.loc[first["ref_value"].notna(), ["prompt_id", "mask", "kind", "ref_value"]]
    metrics = tables.summary[["step", *[c for c in METRICS if c in tables.summary]]]
    split = {i: k for k, ids in st.get("split", {}).items() for i in ids}
    return _derive(tables.run, raw, reference, list(st["steps"]), metrics, frac, scale, rule, st.get("reference"),
                   split, st.get("game", {}))


def _assemble(run: Path, chosen: Sequence[Checkpoint], config: DynamicsConfig,
              reference: pd.DataFrame | None) -> DynamicsTables:
    parts = [load_part(run / WORK / "parts", c.step) for c in chosen]
    raw = pd.concat([rows for rows, _ in parts], ignore_index=True)
    raw.insert(2, "checkpoint", raw["step"].map({c.step: c.name for c in chosen}))
    split = json.loads((run / WORK / "settings.json").read_text())["split"]
    metrics = _split_metrics([info for _, info in parts], split)
    if (run / "dynamics.parquet").is_file():  # the SFT samples' own fit at the same steps
        dyn = pd.read_parquet(run / "dynamics.parquet", columns=["step", "exact", "loss"])
        train = dyn.groupby("step").agg(train_exact=("exact", "mean"), train_loss=("loss", "mean"))
        metrics = metrics.merge(train.reset_index(), on="step", how="left")
    elif (run / "train_dynamics.parquet").is_file():  # untracked run: the training batches since the last checkpoint
        td = pd.read_parquet(run / "train_dynamics.parquet", columns=["step", "exact", "loss"])
        steps = [c.step for c in chosen]
        train = pd.DataFrame([{"step": b, "train_exact": td.loc[(td["step"] > a) & (td["step"] <= b), "exact"].mean(),
                               "train_loss": td.loc[(td["step"] > a) & (td["step"] <= b), "loss"].mean()}
                              for a, b in zip(steps, steps[1:])])
        metrics = metrics.merge(train, on="step", how="left") if len(train) else metrics
    metrics = metrics[["step", *[c for c in METRICS if c in metrics]]]
    ref_file = run / WORK / "reference.json"
    ref_name = json.loads(ref_file.read_text()).get("model") if reference is not None and ref_file.is_file() else None
    tables = _derive(run, raw, reference, [c.step for c in chosen], metrics, config.salient_frac,
                     config.salient_scale, config.stop_rule, ref_name, split,
                     {"target": config.target, "and_or": config.and_or})
    for table, name in zip((tables.frame, tables.summary, tables.orders, tables.validation), OUTPUTS[:3] + OUTPUTS[4:]):
        write_atomic(table, run / name)
    write_atomic(tables.stopping, run / OUTPUTS[3])
    return tables
