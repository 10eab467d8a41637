"""Per-sample learning dynamics: measure every training sample at an evaluation point.

A :class:`Tracker` encodes the SFT records once and, at each evaluation point, scores all
of them with teacher forcing (one forward pass per batch, no generation):

* ``loss`` (mean NLL of the response tokens), ``token_acc``, ``exact`` (greedy decoding
  reproduces the response exactly: every teacher-forced argmax equals the target);
* at the first response token: the gold token's probability and rank, the top token and
  its probability, and the Jensen–Shannon divergence (bits) to the base model (step 0);
* for records with ``options``, when asked: the probability that the model picks the gold
  option among gold + distractors (``mc_p_gold``), the top option, and pass@N for each N
  (the chance that N answers drawn from that distribution contain the gold one,
  ``1 - (1 - p)**N``, computed exactly); the distractors are scored on the key/value cache of
  the sample's own pass, so its prompt is encoded once for the gold answer and every option
  (``followers`` of :func:`ilpnb.probe.scoring.score_continuations`);
* optionally the greedy output text (used at the base and the final point; generated only
  for the samples not reproduced exactly — an exact one's greedy output is its response).

With ``torch.distributed`` initialised, each rank measures a disjoint share of the samples
and rank 0 receives the whole table, so every sample is measured exactly once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from ilpnb.probe.decoding import generate_rows
from ilpnb.probe.scoring import option_probabilities, score_continuations, score_shared_context
from ilpnb.train.format import Encoded, encode_pair

__all__ = ["Tracker", "js_divergence_bits", "greedy_outputs"]


def js_divergence_bits(logp: np.ndarray, logq: np.ndarray) -> np.ndarray:
    """Row-wise Jensen–Shannon divergence (base 2, in [0, 1]) of two log-distributions."""
    p, q = np.exp(logp.astype(np.float64)), np.exp(logq.astype(np.float64))
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        kl_pm = np.where(p > 0, p * (np.log2(p) - np.log2(m)), 0.0).sum(axis=1)
        kl_qm = np.where(q > 0, q * (np.log2(q) - np.log2(m)), 0.0).sum(axis=1)
    return np.clip(0.5 * (kl_pm + kl_qm), 0.0, 1.0)


@torch.no_grad()
def greedy_outputs(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, encoded: Sequence[Encoded], batch_size: int = 32,
    extra_tokens: int = 8,
) -> list[str]:
    """Greedy continuations of each prompt (decoded, special tokens dropped)."""
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    out: list[str] = [""] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].prompt_ids))
    was_training = model.training
    model.eval()
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        width = max(len(encoded[i].prompt_ids) for i in idx)
        ids = torch.full((len(idx), width), pad, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, i in enumerate(idx):  # left padding, as generation needs
            p = encoded[i].prompt_ids
            ids[row, width - len(p):] = torch.tensor(p)
            mask[row, width - len(p):] = 1
        new = max(len(encoded[i].response_ids) for i in idx) + extra_tokens  # the batch's budget, for every row
        eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
        gen = generate_rows(model, ids.to(device), mask.to(device), [new] * len(idx), eos, pad)
        for row, i in enumerate(idx):
            out[i] = tokenizer.decode(gen[row], skip_special_tokens=True).strip()
    if was_training:
        model.train()
    return out


@dataclass
class _Item:
    id: str
    stage: int
    enc: Encoded
    options: list[Encoded]
    option_texts: list[str]


class Tracker:
    """Measures every SFT sample at evaluation points (see the module docstring).

    Args:
        tokenizer: the model's tokenizer.
        records: SFT records (objects with ``id``, ``prompt``, ``response``, ``stage``, ``options``).
        max_length: longest sequence (as in training).
        batch_size: sequences per forward pass.
        pass_n: the N values of pass@N.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, records: Sequence[Any], max_length: int | None = None,
                 batch_size: int = 64, pass_n: Sequence[int] = (1, 5, 10)) -> None:
        self.tokenizer = tokenizer
        self.batch_size = batch_size
        self.pass_n = tuple(pass_n)
        self.items: list[_Item] = []
        for r in records:
            enc = encode_pair(tokenizer, r.prompt, r.response, max_length)
            opts = list(r.options or [])
            self.items.append(_Item(str(r.id), int(r.stage), enc,
                                    [encode_pair(tokenizer, r.prompt, o, max_length) for o in opts], opts))
        self.base_logprobs: np.ndarray | None = None
        self.base_top: list[tuple[str, float]] | None = None
        self.has_options = any(it.options for it in self.items)

    @property
    def pad_id(self) -> int:
        tok = self.tokenizer
        return tok.pad_token_id if tok.pad_token_id is not None else (tok.eos_token_id or 0)

    def _shard(self) -> list[int]:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            rank, world = torch.distributed.get_rank(), torch.distributed.get_world_size()
            return list(range(rank, len(self.items), world))
        return list(range(len(self.items)))

    def measure(self, model: torch.nn.Module, info: dict[str, Any], options: bool = True,
                outputs: bool = False) -> pd.DataFrame | None:
        """Measure all samples at one evaluation point.

        Args:
            model: the (unwrapped) model at this point.
            info: columns identifying the point (``point``, ``step``, ``epoch``, ``stage``).
            options: also score the multiple-choice options.
            outputs: also generate the greedy output text.

        Returns:
            The table (one row per sample) on rank 0; None on other ranks.
        """
        idx = self._shard()
        local = self._measure_indices(model, idx, options, outputs)
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(gathered, local)
            if torch.distributed.get_rank() != 0:
                return None
            local = pd.concat(gathered, ignore_index=True)
        table = local.sort_values("_order").drop(columns="_order").reset_index(drop=True)
        for key, value in reversed(list(info.items())):
            table.insert(1, key, value)
        return table

    def _measure_indices(self, model: torch.nn.Module, idx: list[int], options: bool, outputs: bool) -> pd.DataFrame:
        items = [self.items[i] for i in idx]
        pairs = [(it.enc.prompt_ids, it.enc.response_ids) for it in items]
        # the options that share the sample's (untruncated) prompt ride on its own pass's key/value cache
        scored = options and self.has_options
        follow = [[o.response_ids for o in it.options] if scored and self._shares_prompt(it) else [] for it in items]
        s = score_continuations(model, pairs, self.batch_size, self.pad_id, first_logprobs=True,
                                followers=follow if any(follow) else None)
        first = s.first_logprobs if s.first_logprobs is not None else np.zeros((len(items), 1), np.float32)
        gold_tok = np.array([it.enc.response_ids[0] for it in items], dtype=np.int64)
        gold_lp = first[np.arange(len(items)), gold_tok] if len(items) else np.zeros(0)
        rank = (first > gold_lp[:, None]).sum(axis=1) + 1 if len(items) else np.zeros(0, int)
        top = first.argmax(axis=1) if len(items) else np.zeros(0, int)
        cols: dict[str, Any] = {
            "id": [it.id for it in items],
            "sample_stage": [it.stage for it in items],
            "loss": s.loss, "token_acc": s.token_acc, "exact": s.exact, "n_tokens": s.n_tokens,
            "gold_first_p": np.exp(gold_lp), "gold_first_rank": rank,
            "top_token": [self.tokenizer.convert_ids_to_tokens(int(t)) for t in top],
            "top_token_p": np.exp(first.max(axis=1)) if len(items) else np.zeros(0),
        }
        if self.base_logprobs is None:  # this is the base model: keep its distributions
            full = np.zeros((len(self.items), first.shape[1]), np.float32)
            full[idx] = first
            self.base_logprobs = full
        cols["js_base"] = js_divergence_bits(self.base_logprobs[idx], first) if len(items) else np.zeros(0)
        if scored:
            cols.update(self._options(model, items, s.logprob, s.followers))
        if outputs:
            cols["output"] = self._outputs(model, items, s.exact)
        cols["_order"] = idx
        return pd.DataFrame(cols)

    def _outputs(self, model: torch.nn.Module, items: list[_Item], exact: np.ndarray) -> list[str]:
        """Greedy output texts. A sample reproduced exactly (whole response, end-of-sequence
        included, not truncated) has its response as greedy output, so only the others are
        generated."""
        eos = self.tokenizer.eos_token_id
        known = [bool(ok) and not it.enc.truncated and eos is not None and it.enc.response_ids[-1] == eos
                 for it, ok in zip(items, exact)]
        out = [self.tokenizer.decode(it.enc.response_ids, skip_special_tokens=True).strip() if k else ""
               for it, k in zip(items, known)]
        todo = [k for k, done in enumerate(known) if not done]
        if todo:
            for k, text in zip(todo, greedy_outputs(model, self.tokenizer, [items[k].enc for k in todo], self.batch_size)):
                out[k] = text
        return out

    @staticmethod
    def _shares_prompt(item: _Item) -> bool:
        """Every option has the gold answer's prompt ids (a long option may have cut its prompt)."""
        return all(o.prompt_ids == item.enc.prompt_ids for o in item.options)

    def _options(self, model: torch.nn.Module, items: list[_Item], gold_lp: np.ndarray,
                 followed: list[Any] | None = None) -> dict[str, Any]:
        """Multiple-choice columns; ``followed``: the options already scored on each sample's own
        pass (the others are scored here, each prompt once for all its options)."""
        width = 1 + max((len(it.options) for it in items), default=0)
        table = np.full((len(items), width), -np.inf)
        table[:, 0] = gold_lp
        pairs, owner = [], []
        for k, it in enumerate(items):
            done = followed[k].logprob if followed is not None else np.zeros(0)
            if len(done) == len(it.options) and len(done):
                table[k, 1:1 + len(done)] = done
                continue
            for o in it.options:
                pairs.append((o.prompt_ids, o.response_ids))
                owner.append(k)
        if pairs:
            lp = score_shared_context(model, pairs, self.batch_size, self.pad_id).logprob
            col = np.ones(len(items), dtype=int)
            for j, k in enumerate(owner):
                table[k, col[k]] = lp[j]
                col[k] += 1
        probs = option_probabilities(table)
        has = np.array([bool(it.options) for it in items])
        p_gold = np.where(has, probs[:, 0], np.nan)
        best = probs.argmax(axis=1)
        out: dict[str, Any] = {
            "mc_p_gold": p_gold,
            "mc_top_option": [None if not it.options else ("<gold>" if b == 0 else it.option_texts[b - 1])
                              for it, b in zip(items, best)],
            "mc_top_p": np.where(has, probs.max(axis=1), np.nan),
        }
        for n in self.pass_n:
            out[f"pass@{n}"] = 1.0 - (1.0 - p_gold) ** n
        return out
