"""The pieces ilpnb adds to transformers' ``Trainer`` for SFT with per-sample tracking.

* :class:`SFTTrainer` — ``Trainer`` with an ordered (unshuffled) mode, optional per-sample
  loss weights, and a stop with a clear message when the loss is not finite;
* :class:`PointCallback` — calls ilpnb's SFT run at each evaluation point (each epoch, or
  every K steps), which measures every sample, writes the rows and saves checkpoints (a
  user's own ``Trainer`` takes :class:`ilpnb.train.callback.TrackingCallback` instead);
* :func:`collate` — pads a batch (labels with -100) and carries the samples' indices, so the
  trainer records at which optimizer step every sample was trained (the training schedule)
  and, from the same forward pass, each sample's loss, token accuracy and exact reproduction
  at that step (:mod:`ilpnb.train.train_stats`; no extra forward pass).

Everything else (DDP through ``torchrun`` / ``accelerate launch``, gradient accumulation,
mixed precision, resuming from a checkpoint) is the ``Trainer``'s own.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch.utils.data import SequentialSampler
from transformers import Trainer, TrainerCallback

from ilpnb.train.train_stats import StatsRecorder

__all__ = ["NonFiniteLossError", "PointCallback", "SFTTrainer", "collate", "response_start", "accepts_logits_to_keep"]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or infinite."""


def collate(features: list[dict[str, Any]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-pad ``input_ids`` (with ``pad_id``) and ``labels`` (with -100) of a batch."""
    width = max(len(f["input_ids"]) for f in features)
    ids = torch.full((len(features), width), pad_id, dtype=torch.long)
    labels = torch.full((len(features), width), -100, dtype=torch.long)
    mask = torch.zeros((len(features), width), dtype=torch.long)
    for row, f in enumerate(features):
        n = len(f["input_ids"])
        ids[row, :n] = torch.tensor(f["input_ids"])
        labels[row, :n] = torch.tensor(f["labels"])
        mask[row, :n] = 1
    batch = {"input_ids": ids, "attention_mask": mask, "labels": labels}
    if "weight" in features[0]:
        batch["weight"] = torch.tensor([float(f["weight"]) for f in features])
    if "idx" in features[0]:  # which samples the batch holds: the training schedule, never a model input
        batch["idx"] = torch.tensor([int(f["idx"]) for f in features])
    return batch


def response_start(labels: torch.Tensor) -> int:
    """The first position whose logits the loss needs: one before the earliest supervised
    label of the batch (0 when nothing is supervised).

    Logits at earlier positions (the chat template's header and the prompt) only feed the
    output layer for nothing: with a 49k-word vocabulary that layer is about a fifth of a
    small LM's forward and backward pass.
    """
    supervised = labels != -100
    rows = supervised.any(dim=1)
    if not bool(rows.any()):
        return 0
    first = supervised.float().argmax(dim=1)[rows]
    return max(int(first.min()) - 1, 0)


def accepts_logits_to_keep(model: torch.nn.Module) -> bool:
    """Whether the causal LM under ``model`` (a PEFT or DDP wrapper included) takes
    ``logits_to_keep`` (transformers' causal LMs do since 4.50)."""
    import inspect

    inner = getattr(model, "module", model)  # DDP
    if hasattr(inner, "get_base_model"):  # PEFT (its forward passes the keyword on)
        inner = inner.get_base_model()
    try:
        return "logits_to_keep" in inspect.signature(inner.forward).parameters
    except (TypeError, ValueError):
        return False


class SFTTrainer(Trainer):
    """``Trainer`` with ordered data, per-sample loss weights and a finite-loss check.

    Args:
        ordered: iterate the training set in its order (no shuffling).
        sampler: a :class:`PlanSampler` (mitigation plans: bucketing, dynamic resampling).
        *args, **kwargs: as for ``Trainer``.
    """

    def __init__(self, *args: Any, ordered: bool = False, sampler: Any = None, train_stats: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ordered = ordered
        self.plan_sampler = sampler
        self.last_good_checkpoint: str | None = None
        #: (optimizer step, sample index) of every example trained since the last :meth:`pop_trained`
        self.trained: list[tuple[int, int]] = []
        #: per-sample statistics of the training forward passes (None: not recorded)
        self.stats: StatsRecorder | None = StatsRecorder() if train_stats else None
        self._trim: bool | None = None  # the model takes logits_to_keep (found at the first step)

    def pop_trained(self) -> list[tuple[int, int]]:
        """The (step, sample index) pairs trained since the last call (this process's share)."""
        out, self.trained = self.trained, []
        return out

    def pop_stats(self) -> list[dict[str, Any]]:
        """The in-training statistics rows since the last call (this process's share; see
        :class:`ilpnb.train.train_stats.StatsRecorder`); empty when not recorded."""
        return self.stats.pop() if self.stats is not None else []

    def _trim_to_responses(self, model: torch.nn.Module, inputs: dict[str, Any]) -> None:
        """Compute logits only from :func:`response_start` on: ``logits_to_keep`` and the
        labels cut to the same window. The loss, its token count and the per-sample
        statistics are unchanged (every supervised label lies in the window, and the label
        at its first position, which the shift drops, is a prompt token)."""
        labels = inputs.get("labels")
        if labels is None or "logits_to_keep" in inputs:
            return
        if self._trim is None:
            self._trim = accepts_logits_to_keep(model)
        start = response_start(labels) if self._trim else 0
        if start > 0:
            inputs["labels"] = labels[:, start:]
            inputs["logits_to_keep"] = labels.shape[1] - start

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        if self.plan_sampler is not None:
            return self.plan_sampler
        if self.ordered:
            return SequentialSampler(train_dataset if train_dataset is not None else self.train_dataset)
        return super()._get_train_sampler(train_dataset)

    def compute_loss(self, model: torch.nn.Module, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        weight = inputs.pop("weight", None)
        idx = inputs.pop("idx", None)
        step = self.state.global_step + 1  # the step this micro-batch's gradient goes into
        record = idx is not None and model.training
        if record:
            self.trained.extend((step, int(i)) for i in idx.tolist())
        keep = record and self.stats is not None  # the statistics are read off this forward pass's logits
        self._trim_to_responses(model, inputs)
        labels_in = inputs.get("labels")
        if weight is None:
            result = super().compute_loss(model, inputs, return_outputs or keep, num_items_in_batch)
            if keep:
                self.stats.add(step, float(self.state.epoch or 0.0), idx, result[1].logits, labels_in)
                result = result if return_outputs else result[0]
        else:
            labels = inputs.pop("labels")
            outputs = model(**inputs)
            logits = outputs.logits[:, :-1].float()
            target = labels[:, 1:]
            tok = torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100, reduction="none"
            ).view(target.shape)
            mask = (target != -100).float()
            per_sample = (tok * mask).sum(1) / mask.sum(1).clamp(min=1)
            loss = (per_sample * weight.to(per_sample.device)).sum() / weight.sum().clamp(min=1e-8)
            if keep:
                self.stats.add(step, float(self.state.epoch or 0.0), idx, outputs.logits, labels)
            result = (loss, outputs) if return_outputs else loss
        loss_value = result[0] if isinstance(result, tuple) else result
        if not torch.isfinite(loss_value.detach()).all():
            where = f"; the last good checkpoint is {self.last_good_checkpoint}" if self.last_good_checkpoint else ""
            raise NonFiniteLossError(
                f"training loss became {loss_value.item()} at step {self.state.global_step + 1} "
                f"(try a lower learning rate){where}"
            )
        return result


class PointCallback(TrainerCallback):
    """Calls ``on_point(trainer_state, control)`` at each evaluation point.

    Args:
        on_point: the measurement (and checkpoint) function; it may set
            ``control.should_training_stop`` (the stage has converged).
        every: ``"epoch"`` or a number of optimizer steps.
    """

    def __init__(self, on_point: Callable[[Any], None], every: str | int = "epoch") -> None:
        self.on_point = on_point
        self.every = every

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.every != "epoch" and state.global_step % int(self.every) == 0:
            self.on_point(state, control)

    def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.every == "epoch":
            self.on_point(state, control)

    def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if self.every != "epoch" and state.global_step % int(self.every) != 0:
            self.on_point(state, control)  # the end of a stage is always a point


def epoch_of(state: Any) -> float:
    """The (possibly fractional) epoch of a trainer state, rounded for tables."""
    return round(float(state.epoch or 0.0), 3) if not math.isnan(float(state.epoch or 0.0)) else 0.0


__all__ += ["epoch_of"]


class PlanSampler(torch.utils.data.Sampler):
    """Per-epoch order of a training set under a mitigation plan.

    Each index appears ``multiplicity[i]`` times per epoch (dynamic resampling changes it
    between epochs); with ``groups``, the order is arranged so that members of one group
    (e.g. near-duplicate conflicting samples) never share a batch of ``batch_size``.

    Args:
        n: dataset size.
        batch_size: per-device batch size (the unit in which groups are kept apart).
        seed: base seed; epoch ``e`` uses ``seed + e``.
        groups: group id per index (None = no constraint).
        ordered: keep the dataset order (before multiplicity and grouping).
    """

    def __init__(self, n: int, batch_size: int, seed: int = 0, groups: list[int | None] | None = None,
                 ordered: bool = False) -> None:
        self.n, self.batch_size, self.seed, self.groups, self.ordered = n, batch_size, seed, groups, ordered
        self.multiplicity = [1] * n
        self.epoch = 0

    def __len__(self) -> int:
        return sum(self.multiplicity)

    def __iter__(self):  # type: ignore[override]
        import random

        rng = random.Random(self.seed + self.epoch)
        self.epoch += 1
        order = [i for i in range(self.n) for _ in range(self.multiplicity[i])]
        if not self.ordered:
            rng.shuffle(order)
        if self.groups is not None:
            order = _spread_groups(order, self.groups, self.batch_size)
        return iter(order)


def _spread_groups(order: list[int], groups: list[int | None], batch_size: int) -> list[int]:
    """Reorder greedily so that no batch holds two indices of the same group."""
    pending = list(order)
    out: list[int] = []
    while pending:
        batch: list[int] = []
        seen: set[int] = set()
        rest: list[int] = []
        for i in pending:
            g = groups[i]
            if len(batch) < batch_size and (g is None or g not in seen):
                batch.append(i)
                if g is not None:
                    seen.add(g)
            else:
                rest.append(i)
        out += batch
        pending = rest
    return out


__all__ += ["PlanSampler"]
