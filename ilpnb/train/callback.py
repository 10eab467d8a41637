"""Per-sample tracking for any ``Trainer``: a callback that fills an ilpnb run folder.

    trainer.add_callback(ilpnb.TrackingCallback("runs/mine", records))

works with a user's own ``Trainer`` script or TRL's ``SFTTrainer``. At the start of training
and at every evaluation point (each epoch, or every K optimizer steps) it measures every
record with :class:`ilpnb.train.tracking.Tracker` (``RUN/dynamics/point-XXXX.parquet``); a
forward hook on the model reads, from the training forward passes themselves, each trained
sample's loss, token accuracy and exact reproduction (``RUN/train_dynamics.parquet``, as
ilpnb's own SFT writes it) — from the logits, or from the per-token log-probabilities and
top-1 flags of a fused output layer (TRL's ``fused_lm_head``), never from an extra pass. The hook recognises a sample by its tokens: a batch row whose
unpadded ids equal a record's ids as :func:`ilpnb.train.format.encode_pair` makes them (TRL's
conversational prompt-completion datasets do) is that record; other rows (packed ones, a
different template) are counted in ``RUN/tracking.json``, not guessed. At the end it writes
``RUN/dynamics.parquet`` and ``RUN/samples.parquet``. Under DDP every rank measures its
share and rank 0 writes the tables.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from transformers import TrainerCallback

from ilpnb.train.derived import summarize_samples
from ilpnb.train.tracking import Tracker
from ilpnb.train.train_stats import STAT_COLUMNS, StatsRecorder

__all__ = ["TrackingCallback"]


def _rank() -> int:
    return torch.distributed.get_rank() if torch.distributed.is_available() and torch.distributed.is_initialized() else 0


def _gather(rows: list[Any]) -> list[Any]:
    """Every rank's rows, on every rank (the rows themselves in a single process)."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return rows
    parts: list[Any] = [None] * torch.distributed.get_world_size()
    torch.distributed.all_gather_object(parts, rows)
    return [r for part in parts for r in part]


class TrackingCallback(TrainerCallback):
    """Per-sample dynamics of any ``Trainer`` run, written to an ilpnb run folder.

    Args:
        run_dir: the run folder (created; an existing non-empty one is refused).
        records: the SFT records trained on (objects with ``id``, ``prompt``, ``response``,
            ``stage``, ``options``), or a path :func:`ilpnb.data.records.read_records` reads.
        tokenizer: the model's tokenizer (default: the trainer's ``processing_class``).
        max_length: longest sequence, as in training (None: no truncation).
        every: ``"epoch"`` or a number of optimizer steps between evaluation points.
        options: score the multiple-choice options at every point.
        batch_size: sequences per evaluation forward pass.
    """

    def __init__(self, run_dir: str | Path, records: Sequence[Any] | str | Path, tokenizer: Any = None,
                 max_length: int | None = None, every: str | int = "epoch", options: bool = True,
                 batch_size: int = 32) -> None:
        self.data = str(records) if isinstance(records, (str, Path)) else None  # the file the run names
        if isinstance(records, (str, Path)):
            from ilpnb.data.records import read_records

            records = read_records(records)
        self.records = list(records)
        if not self.records:
            raise ValueError("TrackingCallback: no records to track")
        if every != "epoch" and (not str(every).isdigit() or int(every) < 1):
            raise ValueError(f"TrackingCallback: every must be 'epoch' or a positive number of steps, got {every!r}")
        self.run_dir, self.tokenizer, self.max_length = Path(run_dir), tokenizer, max_length
        self.every, self.options, self.batch_size = every, options, batch_size
        self.tracker: Tracker | None = None
        self.stats = StatsRecorder()
        self.lookup: dict[tuple[int, ...], int] = {}
        self.unmatched = 0
        self.point = 0
        self.state: Any = None
        self._hook: Any = None

    # -- the trainer's events -------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, processing_class: Any = None,
                       **kw: Any) -> None:
        tok = self.tokenizer or processing_class or kw.get("tokenizer")
        if tok is None:
            raise ValueError("TrackingCallback: no tokenizer; pass tokenizer= or give the trainer a processing_class")
        if _rank() == 0:
            self._create_run(args, model)
        self.tracker = Tracker(tok, self.records, self.max_length, batch_size=self.batch_size)
        self.lookup = {}
        for i, it in enumerate(self.tracker.items):
            self.lookup.setdefault(tuple(it.enc.input_ids), i)  # identical samples: the first one
        self.state = state
        self._hook = model.register_forward_hook(self._on_forward, with_kwargs=True)
        self._point(model, state)

    def _create_run(self, args: Any, model: Any) -> None:
        """The run folder with a ``config.json`` that readers (``ilpnb diagnose``) understand:
        the base model (the one training starts from) and the SFT data (written to
        ``RUN/sft.jsonl`` when the records were given as objects)."""
        import json

        from ilpnb.runs import RunFolder

        data = self.data or str(self.run_dir / "sft.jsonl")
        config = {"kind": "sft", "tracked_by": "ilpnb.TrackingCallback", "data": data,
                  "model": getattr(getattr(model, "config", None), "_name_or_path", None),
                  "max_length": self.max_length, "every": self.every, "options": self.options,
                  "sft": {"epochs": args.num_train_epochs, "lr": args.learning_rate,
                          "batch_size": args.per_device_train_batch_size, "seed": args.seed, "criterion": "exact"}}
        RunFolder.create(self.run_dir, config)
        if self.data is None:
            rows = [{"id": str(r.id), "prompt": r.prompt, "response": r.response, "stage": int(r.stage),
                     **({"options": list(r.options)} if r.options else {})} for r in self.records]
            (self.run_dir / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    def on_step_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if self.every != "epoch" and state.global_step % int(self.every) == 0:
            self._point(model, state)

    def on_epoch_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if self.every == "epoch":
            self._point(model, state)

    def on_train_end(self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any) -> None:
        if self.every != "epoch" and state.global_step % int(self.every) != 0:
            self._point(model, state)
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        if _rank() == 0:
            self._assemble()

    # -- reading the training forward passes ------------------------------------------
    @torch.no_grad()
    def _on_forward(self, module: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
        if not module.training or self.tracker is None:
            return
        ids = kwargs.get("input_ids", args[0] if args else None)
        logits = getattr(output, "logits", None)
        fused = logits is None and all(getattr(output, k, None) is not None for k in ("log_probs", "label_mask", "is_top1"))
        if ids is None or (logits is None and not fused):
            return
        mask = kwargs.get("attention_mask")
        mask = torch.ones_like(ids, dtype=torch.bool) if mask is None else mask.bool()
        rows, found, labels = [], [], torch.full_like(ids, -100)
        for row in range(ids.shape[0]):
            where = mask[row].nonzero(as_tuple=True)[0]
            i = self.lookup.get(tuple(ids[row, where].tolist()))
            if i is None or (len(where) and int(where[-1] - where[0]) + 1 != len(where)):
                self.unmatched += 1
                continue
            labels[row, where] = torch.tensor(self.tracker.items[i].enc.labels, device=ids.device)
            rows.append(row)
            found.append(i)
        if rows:
            keep = torch.tensor(rows, device=ids.device)
            step = int(self.state.global_step) + 1 if self.state is not None else 0
            epoch = float(self.state.epoch or 0.0) if self.state is not None else 0.0
            if fused:  # a fused output layer (TRL): per-token log-probs and top-1 flags instead of logits
                self.stats.add_token_stats(step, epoch, torch.tensor(found), output.log_probs[keep],
                                           output.is_top1[keep], output.label_mask[keep])
            else:
                self.stats.add(step, epoch, torch.tensor(found), logits[keep], labels[keep])

    # -- points and tables --------------------------------------------------------------
    def _point(self, model: Any, state: Any) -> None:
        point, step = self.point, int(state.global_step)
        self.point += 1
        info = {"point": point, "step": step, "epoch": round(float(state.epoch or 0.0), 3), "stage": 0}
        table = self.tracker.measure(model, info, options=self.options) if self.tracker is not None else None
        stats = _gather(self.stats.pop())
        unmatched = sum(_gather([self.unmatched]))
        if _rank() != 0:
            return
        if table is not None:
            self._write("dynamics", point, table)
        if stats:
            raw = pd.DataFrame(stats)
            td = pd.DataFrame({"id": [self.tracker.items[i].id for i in raw["idx"]],
                               "sample_stage": [self.tracker.items[i].stage for i in raw["idx"]],
                               "step": raw["step"], "stage": "0", "epoch": raw["epoch"].round(6), "point": point})
            for col in STAT_COLUMNS:
                td[col] = raw[col]
            td["exact"] = td["exact"].astype(bool)
            self._write("train_dynamics", point, td.sort_values(["step", "id"], kind="stable"))
        (self.run_dir / "tracking.json").write_text(f'{{"unmatched_training_rows": {unmatched}}}\n')

    def _write(self, name: str, point: int, table: pd.DataFrame) -> None:
        path = self.run_dir / name / f"point-{point:04d}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        table.to_parquet(tmp, index=False)
        os.replace(tmp, path)

    def _assemble(self) -> None:
        for name in ("dynamics", "train_dynamics"):
            parts = sorted((self.run_dir / name).glob("point-*.parquet"))
            if parts:
                pd.concat([pd.read_parquet(p) for p in parts], ignore_index=True).to_parquet(
                    self.run_dir / f"{name}.parquet", index=False)
        if (self.run_dir / "dynamics.parquet").exists():
            dyn = pd.read_parquet(self.run_dir / "dynamics.parquet")
            summarize_samples(dyn).to_parquet(self.run_dir / "samples.parquet", index=False)
