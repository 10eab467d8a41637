"""SFT of any causal LM with per-sample learning dynamics, in one or several stages.

:func:`run_sft` fine-tunes a model (the world's tiny base model, a local folder, a
registered short name or a Hugging Face name) on SFT records, stage after stage (records'
``stage``, trained in order) or all together, fully or with LoRA, with transformers'
``Trainer`` — so ``torchrun`` / ``accelerate launch`` run it on several processes unchanged.
Before any update (step 0) and at every evaluation point it measures every sample of every
stage (:class:`ilpnb.train.tracking.Tracker`) and writes ``RUN/dynamics.parquet``; it
saves model checkpoints (each beside ``ilpnb_checkpoint.json``), ``RUN/samples.parquet``
(learned at the end, first learned, forgetting events) and ``RUN/truncation.json``. From the
training forward passes themselves (no extra pass) it records every trained sample's loss,
token accuracy and exact reproduction at each optimizer step, ``RUN/train_dynamics.parquet``
(:mod:`ilpnb.train.train_stats`: forgetting events, the cartography map). An interrupted run
continues with ``resume=True``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PrinterCallback, TrainerCallback, TrainingArguments

from ilpnb.config import SFTConfig, get_preset, override, to_dict
from ilpnb.runs import RunFolder, read_dynamics
from ilpnb.probe.criteria import learned as learned_rows
from ilpnb.train.convergence import ConvergenceMonitor, ConvergenceRule, lr_share
from ilpnb.train.derived import summarize_samples
from ilpnb.train.format import encode_pair
from ilpnb.train.plan import ResampleOnDrop, relabelled, stage_examples
from ilpnb.train.trainer import NonFiniteLossError, PointCallback, SFTTrainer, collate, epoch_of
from ilpnb.train.tracking import Tracker, greedy_outputs
from ilpnb.quiet import quiet

__all__ = ["SFTJob", "run_sft", "load_dynamics", "resolve_job"]


@dataclass
class SFTJob:
    """Everything a fine-tuning run needs, resolved (stored as ``config.json``)."""

    model: str
    data: str
    out: str
    sft: SFTConfig
    max_length: int = 256
    world: str | None = None
    preset: str = "default"
    stages: str = "sequential"  # or "mixed": all stages shuffled together, as one training stage 0
    checkpoints: str = "points"  # "points", "stages" or "none"
    track_options: str = "all"  # "all" points or "ends" (step 0, stage ends, final)
    track: str = "points"  # "points": every sample at every point; "ends": step 0 and the end; "none": no dynamics
    train_stats: bool = True  # per-sample loss / accuracy / exact read off the training forward pass (train_dynamics)
    plan: dict[str, Any] | None = None  # a mitigation plan (see ilpnb.mitigate.interventions.Plan)
    max_samples: int | None = None  # a seeded subset of the records (order kept), e.g. a smoke run on a real set

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        out = {k: v for k, v in self.__dict__.items() if k != "sft"}
        out["sft"] = to_dict(self.sft)
        out["kind"] = "sft"
        return out


def resolve_job(out: str | Path, model: str | None = None, data: str | None = None, world: str | Path | None = None,
                preset: str = "default", sft: dict[str, Any] | None = None, progress: bool = True,
                **job: Any) -> SFTJob:
    """Fill an :class:`SFTJob` from a preset, a world folder and overrides.

    With ``world``, the data is ``WORLD/sft.jsonl`` and the model is the world's tiny base
    model (pretrained now, or fetched from the cache).
    """
    p = get_preset(preset)
    cfg = override(p.sft, sft or {}, source="sft") if sft else p.sft
    if world is not None:
        from ilpnb.models.pretrain import pretrain_base_model

        world = Path(world)
        needs = ["sft.jsonl"] * (data is None) + ["pretrain.txt"] * (model is None)
        for name in needs:
            if not (world / name).is_file():
                why = "the SFT records" if name == "sft.jsonl" else "the corpus the tiny base model is pretrained on"
                raise FileNotFoundError(f"{world / name}: missing; a world folder needs {name} ({why})")
        data = data or str(world / "sft.jsonl")
        if model is None:
            model = str(pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=progress).resolve())
        job.setdefault("max_length", p.model.max_length)
    if model is None or data is None:
        raise ValueError("give --model and --data, or --world")
    return SFTJob(model=str(model), data=str(data), out=str(out), sft=cfg, preset=preset,
                  world=str(world) if world is not None else None, **job)


#: where the cheap passes the convergence rule reads at unmeasured points are kept (``RUN/NAME/point-XXXX.parquet``)
CONVERGENCE_PASSES = "convergence_passes"


def _records(job: SFTJob) -> list[Any]:
    """The SFT records, read (and checked) before any run folder is created."""
    from ilpnb.data.packaged import resolve_data

    records = resolve_data(job.data)
    if not records:
        raise ValueError(f"{job.data}: no SFT records")
    if job.max_samples is not None and len(records) > job.max_samples:
        import random

        keep = sorted(random.Random(job.sft.seed).sample(range(len(records)), job.max_samples))
        records = [records[i] for i in keep]
    if job.track not in ("points", "ends", "none"):
        raise ValueError(f"track must be 'points', 'ends' or 'none', got {job.track!r}")
    return records


def _load(job: SFTJob, records: list[Any]) -> tuple[Any, Any, list[Any]]:
    from ilpnb.models.registry import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(job.model)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    if job.sft.lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=job.sft.lora_r, lora_alpha=2 * job.sft.lora_r, lora_dropout=0.0,
                                                 target_modules="all-linear", task_type="CAUSAL_LM"))
    return model, tok, records


def _rank() -> int:
    return int(os.environ.get("RANK", "0"))


def _barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()


def _begin_distributed() -> bool:
    """Under ``torchrun`` (``WORLD_SIZE`` > 1), start the process group through accelerate, as
    the ``Trainer`` would, so ranks can meet at barriers before the ``Trainer`` exists.

    Returns:
        Whether this call started the group (and so the run must close it at the end).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or not torch.distributed.is_available():
        return False
    if torch.distributed.is_initialized():
        return False
    from accelerate import PartialState

    PartialState()
    return torch.distributed.is_initialized()


def _end_distributed(owned: bool, wait: bool = True) -> None:
    """Let every rank finish (rank 0 writes the tables last), then close a group this run started.

    A rank that leaves while the group still holds gloo's threads can abort at interpreter exit
    ("terminate called without an active exception"); closing the group first prevents that.
    """
    if wait:
        _barrier()
    if owned and torch.distributed.is_initialized():
        from accelerate.state import AcceleratorState

        torch.distributed.destroy_process_group()
        AcceleratorState._reset_state(reset_partial_state=True)  # a later run in this process starts afresh


def _open_run(job: SFTJob, resume: bool) -> RunFolder:
    """Rank 0 creates (or reopens) the run folder; the other ranks open it once rank 0 says it
    could (a folder rank 0 refuses is an error on every rank, not a wait until the timeout)."""
    folder, error = None, None
    if _rank() == 0:
        try:
            folder = RunFolder.create(job.out, job.to_dict(), resume=resume)
        except Exception as err:  # noqa: BLE001 - re-raised below, after the other ranks heard of it
            error = err
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        said = [f"{type(error).__name__}: {error}" if error is not None else None]
        torch.distributed.broadcast_object_list(said, src=0)
        if error is None and said[0] is not None:
            raise RuntimeError(f"{job.out}: rank 0 could not open the run folder ({said[0]})")
    if error is not None:
        raise error
    return folder if folder is not None else RunFolder.open(job.out)


load_dynamics = read_dynamics  # the dynamics table of a run: one torch-free reader, ilpnb.runs


class _Run:
    """State of one fine-tuning run (kept out of the public API)."""

    def __init__(self, job: SFTJob, folder: RunFolder, progress: bool, records: list[Any]) -> None:
        self.job, self.folder, self.progress = job, folder, progress
        self.model, self.tok, self.records = _load(job, relabelled(records, job.plan))
        self.last_table: pd.DataFrame | None = None
        self.base_table: pd.DataFrame | None = None
        self.base_measured = False
        self.last_stage = False
        self.tracker = Tracker(self.tok, self.records, job.max_length, batch_size=max(32, 2 * job.sft.batch_size))
        self.point = 0
        self.first_point = 1
        self.base_top: list[tuple[str, float]] = []
        self.base_outputs: list[str] = []
        self.offset = 0
        self.stage: int | str = 0
        self.state_file = "progress.json"
        self.trainer: SFTTrainer | None = None
        self.sampler: Any = None
        self.data: list[dict[str, Any]] = []
        self.resampler = ResampleOnDrop(int((job.plan or {}).get("resample") or 0))
        cfg = job.sft
        self.rule = ConvergenceRule(cfg.converge_window, cfg.converge_loss_tol, cfg.converge_rel_tol,
                                    cfg.converge_flip_share, cfg.converge_min_lr_share)
        self.monitor = ConvergenceMonitor(self.rule)
        self.stage_steps = 0
        self.stage_idx: list[int] = []
        self.stage_converged = False
        self.last_good = self._newest_checkpoint() or f"{job.model} (the base model; no checkpoint saved yet)"
        self._report_truncation()

    def _newest_checkpoint(self) -> str | None:
        metas = list((self.folder.path / "checkpoints").glob("*/ilpnb_checkpoint.json"))
        if not metas:
            return None
        return str(max(metas, key=lambda m: json.loads(m.read_text())["step"]).parent)

    def _report_truncation(self) -> None:
        cut = [(r.id, e.truncated) for r in self.records
               for e in [encode_pair(self.tok, r.prompt, r.response, self.job.max_length)] if e.truncated]
        info = {"max_length": self.job.max_length, "truncated_samples": len(cut),
                "truncated_tokens": sum(n for _, n in cut), "ids": [i for i, _ in cut]}
        if _rank() == 0:
            self.folder.write_json("truncation.json", info)
        if cut:
            print(f"warning: {len(cut)} of {len(self.records)} samples longer than {self.job.max_length} tokens were "
                  f"truncated ({info['truncated_tokens']} tokens); ids in {self.folder.path / 'truncation.json'}")

    # -- points -----------------------------------------------------------------------
    def part(self, point: int) -> Path:
        return self.folder.path / "dynamics" / f"point-{point:04d}.parquet"

    def measure(self, point: int, step: int, epoch: float, options: bool,
                final: bool = False) -> tuple[bool, pd.DataFrame | None]:
        """Measure every sample at a point (``final``: the last point, with the greedy outputs).

        Returns:
            Whether the point was measured now (the same answer on every rank) and its table
            (on rank 0; None elsewhere).
        """
        self.point = point
        ends_only = self.job.track == "ends" and point != 0 and not final
        measured, table = False, None
        if self.job.track != "none" and not ends_only and not self.part(point).exists():
            measured, table = True, self._write_point(point, step, epoch, options, outputs=final)
        if self.job.checkpoints == "points" and step > 0:
            self.save_checkpoint(f"point-{point:04d}-step-{step:06d}", step, epoch)
        return measured, table

    def _write_point(self, point: int, step: int, epoch: float, options: bool,
                     outputs: bool = False) -> pd.DataFrame | None:
        info = {"point": point, "step": step, "epoch": epoch, "stage": self.stage}
        if point == 0 and self.base_measured:  # the base model was just measured (on every rank): no second pass
            table = self.base_table.drop(columns="output") if self.base_table is not None else None
            self.base_table, self.base_measured = None, False
        else:
            table = self.tracker.measure(self.model, info, options=options, outputs=outputs)
        if table is not None:
            if not np.isfinite(table["loss"].to_numpy(dtype=float)).all():
                raise NonFiniteLossError(
                    f"the per-sample loss is not finite at point {point} (step {step}): training diverged "
                    f"(try a lower learning rate); the last good checkpoint is {self.last_good}")
            table["base_top_answer"], table["base_top_p"] = zip(*self.base_top) if self.base_top else (None, None)
            self.part(self.point).parent.mkdir(exist_ok=True)
            tmp = self.part(self.point).with_suffix(".tmp")
            table.to_parquet(tmp, index=False)
            os.replace(tmp, self.part(self.point))
        return table

    def save_checkpoint(self, name: str, step: int, epoch: float) -> None:
        if _rank() != 0:
            return
        target = self.folder.path / "checkpoints" / name
        if (target / "ilpnb_checkpoint.json").exists():  # made before an interruption: never overwritten
            self.last_good = str(target)
            return
        self.model.save_pretrained(target)
        self.tok.save_pretrained(target)
        meta = {"step": step, "epoch": epoch, "stage": self.stage, "point": self.point, "base_model": self.job.model,
                "lora": self.job.sft.lora, "settings": self.job.to_dict()}
        (target / "ilpnb_checkpoint.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n")
        self.last_good = str(target)
        if self.trainer is not None:
            self.trainer.last_good_checkpoint = self.last_good

    def base_answers(self) -> None:
        """The base model's distributions at the answer, its own top answer among the options (or
        its greedy output) with its probability, and its greedy outputs — kept for a resume."""
        path = self.folder.path / "base_answers.json"
        dist = self.folder.path / "base_first_logprobs.npy"
        if path.exists() and dist.exists():
            saved = json.loads(path.read_text())
            self.base_top = [tuple(x) for x in saved["top"]]
            self.base_outputs = saved["outputs"]
            self.tracker.base_logprobs = np.load(dist).astype(np.float32)
            return
        self.base_top = []
        table = self.tracker.measure(self.model, {"point": 0, "step": 0, "epoch": 0.0, "stage": self.stage},
                                     options=True, outputs=True)
        # every rank took part; only rank 0 holds the table. Whether point 0 still needs a pass
        # must not depend on files rank 0 writes (another rank could look before or after).
        self.base_measured = True
        if table is None:
            return
        self.base_table = table  # also the point-0 rows
        for row in table.itertuples():
            gold = self.records[row.Index].response
            top = getattr(row, "mc_top_option", None)
            if top is None or (isinstance(top, float)):
                self.base_top.append((row.output, float(row.gold_first_p if row.output == gold else row.top_token_p)))
            else:
                self.base_top.append((gold if top == "<gold>" else top, float(row.mc_top_p)))
        self.base_outputs = table["output"].tolist()
        # stored in float16 (small); used rounded from now on, so a resumed run measures the same js_base
        self.tracker.base_logprobs = self.tracker.base_logprobs.astype(np.float16)
        np.save(dist, self.tracker.base_logprobs)
        self.tracker.base_logprobs = self.tracker.base_logprobs.astype(np.float32)
        path.write_text(json.dumps({"top": self.base_top, "outputs": self.base_outputs}))

    # -- training ---------------------------------------------------------------------
    def stages(self) -> list[tuple[int | str, list[int]]]:
        if self.job.stages == "mixed":  # one training stage (0) holding every record; sample_stage keeps theirs
            return [(0, list(range(len(self.records))))]
        by: dict[int, list[int]] = {}
        for i, r in enumerate(self.records):
            by.setdefault(int(r.stage), []).append(i)
        return sorted(by.items())

    def train(self, callbacks: Sequence[TrainerCallback] = ()) -> None:
        progress = self.folder.read_json(self.state_file) if self.folder.exists(self.state_file) else {"done": []}
        progress.setdefault("stages", {})
        if self.job.track != "none":
            self.base_answers()
        self.measure(0, 0, 0.0, options=True)
        cfg = self.job.sft
        self.first_point = 1
        stages = self.stages()
        for stage, idx in stages:
            self.stage = stage
            self.last_stage = stage == stages[-1][0]
            data, sampler = stage_examples(self.job.plan, [str(r.id) for r in self.records],
                                           [int(r.stage) for r in self.records], idx, stage, self._example,
                                           cfg.batch_size, cfg.seed, cfg.ordered)
            self.sampler, self.data = sampler, data
            steps = self._steps(len(data))
            self.stage_steps = steps
            if str(stage) in progress["done"]:
                done = progress["stages"].get(str(stage), {})
                self.offset += int(done.get("steps", steps))
                self.first_point += int(done.get("points", self._points_in(steps)))
                self._load_stage_end(stage)
                continue
            self.stage_idx = idx
            self.monitor = ConvergenceMonitor(self.rule, stage)
            self.stage_converged = False
            self._replay_points()
            out_dir = self.folder.path / "trainer" / f"stage-{stage}"
            args = TrainingArguments(
                output_dir=str(out_dir), num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
                learning_rate=cfg.lr, lr_scheduler_type=cfg.lr_scheduler, warmup_steps=cfg.warmup_ratio,
                weight_decay=cfg.weight_decay, logging_steps=max(1, steps // 10),
                save_strategy="epoch" if cfg.eval_every == "epoch" else "steps",
                save_steps=1 if cfg.eval_every == "epoch" else int(cfg.eval_every), save_total_limit=1,
                report_to=[], seed=cfg.seed, disable_tqdm=not self.progress, remove_unused_columns=False,
                dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(), ddp_find_unused_parameters=False,
            )
            pad = self.tok.pad_token_id
            self.trainer = SFTTrainer(model=self.model, args=args, train_dataset=data, ordered=cfg.ordered, sampler=sampler,
                                      train_stats=self.job.train_stats,
                                      data_collator=lambda f: collate(f, pad),
                                      callbacks=[PointCallback(self._on_point(), cfg.eval_every), *callbacks])
            self.trainer.last_good_checkpoint = self.last_good
            if not self.progress:  # no tqdm bar, and no printed log dicts either
                self.trainer.remove_callback(PrinterCallback)
            last = _latest_checkpoint(out_dir)
            self.trainer.train(resume_from_checkpoint=last)
            state = self.trainer.state
            points = self._point_of(state) - self.first_point + 1
            self.offset += state.global_step
            self.first_point += points
            self.save_checkpoint(f"stage-{stage}-end", self.offset, epoch_of(state))
            status = self.monitor.status(self.stage_converged, self.offset, epoch_of(state), checked=cfg.converge)
            if self.progress:  # quiet runs: the line is in convergence.json (the CLI and notebook 01 print it)
                print(status.line())
            progress["done"].append(str(stage))
            progress["stages"][str(stage)] = {"steps": state.global_step, "points": points,
                                              "convergence": status.to_dict()}
            if _rank() == 0:
                self.folder.write_json(self.state_file, progress)
                self.folder.write_json("convergence.json", {
                    "rule": {**self.rule.__dict__, "on": cfg.converge, "cap_epochs": cfg.epochs},
                    "stages": [progress["stages"][k]["convergence"] for k in progress["done"]
                               if "convergence" in progress["stages"].get(k, {})]})

    def _steps(self, n: int) -> int:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return -(-n // (self.job.sft.batch_size * world)) * self.job.sft.epochs

    def _points_in(self, steps: int) -> int:
        every = self.job.sft.eval_every
        if every == "epoch":
            return self.job.sft.epochs
        return -(-steps // int(every))

    def _point_of(self, state: Any) -> int:
        every = self.job.sft.eval_every
        within = round(float(state.epoch or 0)) if every == "epoch" else -(-state.global_step // int(every))
        return self.first_point + within - 1

    # -- convergence ------------------------------------------------------------------
    def _observe(self, table: pd.DataFrame, point: int, step: int, epoch: float) -> bool:
        """Feed one point of the current stage to the monitor (rank 0's table)."""
        rows = table.iloc[self.stage_idx]
        criterion = self.job.sft.criterion
        if criterion == "mc" and "pass@5" not in rows:  # options not scored at this point
            criterion = "exact"
        verdicts = learned_rows(rows, criterion).to_numpy()
        sft = self.job.sft
        lr = lr_share(sft.lr_scheduler, step - self.offset, self.stage_steps, sft.warmup_ratio)
        return self.monitor.update(point, step, epoch, rows["loss"].to_numpy(dtype=float), verdicts, lr_share=lr)

    def _replay_points(self) -> None:
        """A resumed stage: feed the points already measured back to the monitor — the stored
        dynamics, and the cheap convergence passes of points whose dynamics are not stored
        (``track_options``/``track`` ``ends`` or ``none``), so the window does not restart."""
        parts = {int(p.stem.split("-")[1]): p for p in (self.folder.path / CONVERGENCE_PASSES).glob("point-*.parquet")}
        parts.update({int(p.stem.split("-")[1]): p for p in (self.folder.path / "dynamics").glob("point-*.parquet")})
        for _, part in sorted(parts.items()):
            table = pd.read_parquet(part)
            point = int(table["point"].iloc[0])
            if point >= self.first_point and table["stage"].astype(str).iloc[0] == str(self.stage):
                self.stage_converged = self._observe(table, point, int(table["step"].iloc[0]),
                                                     float(table["epoch"].iloc[0]))

    def _converged_now(self, measured: bool, table: pd.DataFrame | None, point: int, step: int, epoch: float) -> bool:
        """Whether the stage has converged at this point; every rank gets rank 0's answer."""
        if not measured and not self.job.sft.converge:  # a fixed budget: nothing to decide, no extra pass
            return False
        if not measured:  # "ends" or "none": a cheap pass (no options, no outputs), kept for a resume only
            info = {"point": point, "step": step, "epoch": epoch, "stage": self.stage}
            table = self.tracker.measure(self.model, info, options=False, outputs=False)
            if table is not None and _rank() == 0:
                self._write_part(CONVERGENCE_PASSES, point, table)
        answer = [self._observe(table, point, step, epoch) if table is not None else False]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.broadcast_object_list(answer, src=0)
        return bool(answer[0])

    def _load_stage_end(self, stage: int | str) -> None:
        from safetensors.torch import load_file

        folder = self.folder.path / "checkpoints" / f"stage-{stage}-end"
        files = sorted(folder.glob("*.safetensors"))
        state: dict[str, torch.Tensor] = {}
        for f in files:
            state.update(load_file(f))
        if self.job.sft.lora:
            from peft import set_peft_model_state_dict

            set_peft_model_state_dict(self.model, state)
        else:
            self.model.load_state_dict(state, strict=False)

    def _example(self, i: int) -> dict[str, Any]:
        enc = self.tracker.items[i].enc
        return {"input_ids": enc.input_ids, "labels": enc.labels, "idx": i}

    def _on_point(self) -> Any:
        def on_point(state: Any, control: Any) -> None:
            point, step, epoch = self._point_of(state), self.offset + state.global_step, epoch_of(state)
            cap = state.global_step >= state.max_steps  # the cap ends this stage: options for "ends" too
            measured, table = self.measure(point, step, epoch, options=self.job.track_options == "all" or cap,
                                           final=cap and self.last_stage)
            self.stage_converged = self._converged_now(measured, table, point, step, epoch)
            if self.job.sft.converge and self.stage_converged and not cap:
                control.should_training_stop = True
                self._remeasure_as_end(point, step, epoch)
            self._write_schedule(point)
            factor = int((self.job.plan or {}).get("resample") or 0)
            if factor and self.sampler is not None and self.part(self.point).exists():
                self.resampler.update(pd.read_parquet(self.part(self.point)), self.data,
                                      [str(r.id) for r in self.records], self.sampler)
        return on_point

    def _write_schedule(self, point: int) -> None:
        """Store which samples were trained at which step since the previous point
        (``RUN/schedule/point-XXXX.parquet``) and their in-training statistics
        (``RUN/train_dynamics/point-XXXX.parquet``); both gathered from every rank."""
        pairs = self.trainer.pop_trained() if self.trainer is not None else []
        stats = self.trainer.pop_stats() if self.trainer is not None else []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, (pairs, stats))
            pairs = [p for part in gathered for p in part[0]]
            stats = [r for part in gathered for r in part[1]]
        if _rank() != 0:
            return
        table = pd.DataFrame({"id": [str(self.records[i].id) for _, i in pairs],
                              "step": [self.offset + s for s, _ in pairs], "stage": str(self.stage), "point": point})
        self._write_part("schedule", point, table.sort_values(["step", "id"], kind="stable"))
        if stats:
            self._write_part("train_dynamics", point, self._stats_table(stats, point))

    def _stats_table(self, rows: list[dict[str, Any]], point: int) -> pd.DataFrame:
        """The in-training statistics rows of one point, keyed by sample id and run-wide step."""
        raw = pd.DataFrame(rows)
        table = pd.DataFrame({"id": [str(self.records[i].id) for i in raw["idx"]],
                              "sample_stage": [int(self.records[i].stage) for i in raw["idx"]],
                              "step": self.offset + raw["step"], "stage": str(self.stage),
                              "epoch": raw["epoch"].round(6), "point": point})
        for col in ("loss", "token_acc", "p_gold"):
            table[col] = raw[col].astype(float)
        table["exact"] = raw["exact"].astype(bool)
        table["n_tokens"] = raw["n_tokens"].astype(int)
        return table.sort_values(["step", "id"], kind="stable").reset_index(drop=True)

    def _write_part(self, name: str, point: int, table: pd.DataFrame) -> None:
        """Write ``RUN/NAME/point-XXXX.parquet`` atomically (a point redone after a resume
        trains the same batches again and replaces it)."""
        path = self.folder.path / name / f"point-{point:04d}.parquet"
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_suffix(".tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)

    def _remeasure_as_end(self, point: int, step: int, epoch: float) -> None:
        """The stage converged before its cap: this point is its end, measured as an end is
        (options in every tracking mode, greedy outputs after the last stage)."""
        needs = self.job.track != "none" and (self.last_stage or self.job.track_options != "all"
                                              or self.job.track == "ends")
        if not needs:
            return
        if _rank() == 0 and self.part(point).exists():
            self.part(point).unlink()
        _barrier()
        self.measure(point, step, epoch, options=True, final=self.last_stage)

    def finish(self) -> None:
        """Assemble ``dynamics.parquet`` (the final point was measured with its outputs and
        options at the end of training: no second pass here), ``schedule.parquet`` and
        ``train_dynamics.parquet`` (these two in every tracking mode)."""
        if _rank() != 0:
            return
        for name in ("schedule", "train_dynamics"):
            parts = sorted((self.folder.path / name).glob("point-*.parquet"))
            if parts:
                pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True).to_parquet(
                    self.folder.path / f"{name}.parquet", index=False)
        if self.job.track == "none":
            return
        dyn = load_dynamics(self.folder.path)
        last = dyn["point"].max()
        at_last = dyn["point"] == last
        final = dyn.pop("output") if "output" in dyn else pd.Series(None, index=dyn.index, dtype=object)
        if final[at_last].isna().any():  # a run measured before outputs were kept with the final point
            order = {r.id: i for i, r in enumerate(self.records)}
            texts = greedy_outputs(self.model, self.tok, [it.enc for it in self.tracker.items], self.tracker.batch_size)
            final[at_last] = dyn.loc[at_last, "id"].map(lambda i: texts[order[i]])
        dyn["output"] = None
        if self.base_outputs:
            dyn.loc[dyn["point"] == 0, "output"] = dyn.loc[dyn["point"] == 0, "id"].map(
                dict(zip((r.id for r in self.records), self.base_outputs)))
        dyn.loc[at_last, "output"] = final[at_last]
        dyn.to_parquet(self.folder.path / "dynamics.parquet", index=False)
        summarize_samples(dyn, self.job.sft.criterion).to_parquet(self.folder.path / "samples.parquet", index=False)


def _latest_checkpoint(folder: Path) -> str | None:
    found = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1])) if folder.exists() else []
    return str(found[-1]) if found else None


@quiet()  # no transformers bar per checkpoint saved or loaded (the Trainer's own bar stays)
def run_sft(out: str | Path, model: str | None = None, data: str | None = None, world: str | Path | None = None,
            preset: str = "default", sft: dict[str, Any] | None = None, resume: bool = False, progress: bool = True,
            callbacks: Sequence[TrainerCallback] = (), **job: Any) -> Path:
    """Fine-tune with per-sample tracking into the run folder ``out``.

    Args:
        out: the run folder (never overwritten; ``resume=True`` continues it).
        model: model short name, local folder or Hugging Face name.
        data: SFT file (JSONL / Alpaca / chat) or registered dataset name.
        world: a world folder: its SFT set and its tiny base model.
        preset: ``smoke``, ``default`` or ``full``.
        sft: overrides of :class:`ilpnb.config.SFTConfig` fields.
        resume: continue an interrupted run in ``out``.
        progress: tqdm progress bars.
        callbacks: more Trainer callbacks, run after ilpnb's own at each event (so at an
            evaluation point the point is already measured and written), e.g. one that stops or
            interrupts a run.
        **job: other :class:`SFTJob` fields (``stages``, ``checkpoints``, ``track_options``, ``track``,
            ``max_length``).

    Returns:
        The run folder.
    """
    spec = resolve_job(out, model, data, world, preset, sft, progress=progress, **job)
    records = _records(spec)  # a bad SFT file fails here, before a run folder exists
    owned = _begin_distributed()
    ok = False
    try:
        folder = _open_run(spec, resume)
        if not folder.exists("dynamics.parquet"):
            run = _Run(spec, folder, progress, records)
            run.train(callbacks)
            run.finish()
        ok = True
    finally:
        _end_distributed(owned, wait=ok)  # no barrier on the way out of an error: the others may be gone
    return folder.path
