"""The value function ``v(S)``: target log-odds of a causal LM on a masked prompt.

``v(S) = log p/(1-p)`` of the target when only the players in ``S`` are kept (the others
masked by their baseline, see :mod:`.masking`). The target is, by default, the model's own
greedy first response token on the full unmasked input; it can also be a given token id, or
a response string, in which case the response is teacher-forced after the prompt and ``v``
is the sum over its tokens of the per-token log-odds.

Log-odds are computed stably from the logits ``z``: ``log p - log(1-p) = z_y -
logsumexp_{k≠y} z_k`` (the shared normaliser cancels), so neither ``p≈1`` nor ``p≈0``
loses precision. Only the logits of the needed positions are materialised (``logits_to_keep``).

Shared prefix: every masked input of a prompt begins with the same tokens, those before the
first player's first token (the chat template's system and user header, unplayed words),
since only players' tokens are ever masked. By default (``prefix_cache=True``) that prefix is
run once (batch 1, with the cache on) and each batch runs only the rest of the sequence with
the prefix's key/value cache (a :class:`transformers.DynamicCache`, copied and repeated over
the batch, since a forward appends to it) and ``position_ids`` counting on from the prefix.
No padding is used, so no attention mask is passed: the model's causal mask covers prefix +
rest from the cache length. Values equal the bare forward's to float rounding. Without a
prefix (first player at position 0) or on a model whose forward takes no cache, the bare path
runs. The prefix is run when the value function is built, so build a new one after changing
the model's weights.

Memory: :meth:`ValueFunction.all_subsets` builds the masked embeddings one batch at a time
(``batch_size`` rows; by default chosen from a memory budget by :func:`auto_batch_size`) and
keeps only the ``2^n`` scalar values, so peak memory is bounded by the batch, not by ``2^n``.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from .masking import eval_mode, mask_embeddings, resolve_baseline, token_player_index
from .players import InteractionInputError, Player, PromptEncoding
from .transforms import keep_matrix

__all__ = ["DEFAULT_CPU_BUDGET", "Target", "ValueFunction", "auto_batch_size", "log_odds"]

DEFAULT_CPU_BUDGET = 512 * 2**20
"""Default memory budget (bytes) for one batch of forward passes on CPU."""


@dataclass(frozen=True)
class Target:
    """What ``v`` scores.

    Attributes:
        token_ids: The target token id(s).
        text: Their decoded text.
        kind: ``"greedy"`` (model's own first token), ``"token"`` (a given id) or
            ``"response"`` (a teacher-forced response, log-odds summed over its tokens).
    """

    token_ids: tuple[int, ...]
    text: str
    kind: str


def log_odds(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Stable ``log p/(1-p)`` of target tokens.

    Args:
        logits: Shape ``(..., V)``.
        target: Long tensor of target ids broadcastable to ``logits.shape[:-1]``.

    Returns:
        ``z_y - logsumexp_{k≠y} z_k`` with shape ``logits.shape[:-1]`` (float32 or wider).
    """
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    idx = target.expand(z.shape[:-1]).unsqueeze(-1)
    zy = z.gather(-1, idx)
    others = z.scatter(-1, idx, float("-inf"))
    return (zy - torch.logsumexp(others, dim=-1, keepdim=True)).squeeze(-1)


def _cfg(model: Any, *names: str, default: int) -> int:
    cfg = getattr(model, "config", None)
    if cfg is not None and hasattr(cfg, "get_text_config"):
        cfg = cfg.get_text_config()
    for name in names:
        val = getattr(cfg, name, None)
        if isinstance(val, int) and val > 0:
            return val
    return default


def auto_batch_size(model: Any, seq_len: int, n_logits: int = 1,
                    memory_budget: int | None = None) -> int:
    """Batch size for masked forward passes from a memory budget.

    A rough inference estimate per sequence: a few hidden-size and MLP-size activations per
    token, the attention scores, and the kept logits (float32, a few copies for the
    log-odds), all times a safety factor of 2.

    Args:
        model: The causal LM (its config gives the sizes).
        seq_len: Tokens per sequence.
        n_logits: Positions whose logits are kept.
        memory_budget: Bytes for one batch; default half the free GPU memory on CUDA,
            :data:`DEFAULT_CPU_BUDGET` otherwise.

    Returns:
        A batch size of at least 1.
    """
    weight = model.get_input_embeddings().weight
    if memory_budget is None:
        if weight.device.type == "cuda":
            memory_budget = int(torch.cuda.mem_get_info(weight.device)[0] * 0.5)
        else:
            memory_budget = DEFAULT_CPU_BUDGET
    d = weight.shape[1]
    inter = _cfg(model, "intermediate_size", "n_inner", "ffn_dim", default=4 * d)
    heads = _cfg(model, "num_attention_heads", "n_head", default=1)
    vocab = weight.shape[0]
    elt = weight.element_size()
    per_seq = elt * seq_len * (8 * d + 2 * inter) + 4 * heads * seq_len**2 * 2
    per_seq += 4 * n_logits * vocab * 3 + elt * seq_len * d
    return max(1, int(memory_budget // (2 * per_seq)))


class ValueFunction:
    """``v(S)`` for coalitions of players of one prompt.

    Args:
        model: Any Hugging Face causal LM accepting ``inputs_embeds``.
        encoding: The tokenized prompt (:func:`~.players.encode_prompt`).
        players: The players (disjoint token spans).
        baseline: A baseline name or tensor (see :func:`~.masking.resolve_baseline`); may be
            replaced later through :attr:`baseline`.
        target: ``None`` (greedy first token), a token id, a sequence of ids, or a response
            string (teacher-forced; tokenized without special tokens and appended).
        tokenizer: Needed to tokenize a response string and to decode the target.
        batch_size: Rows per forward pass; ``None`` chooses it with :func:`auto_batch_size`.
        memory_budget: Bytes per batch for the automatic choice.
        prefix_cache: Run the tokens before the first player once and reuse their key/value
            cache for every coalition (see the module docstring); ``False`` runs every
            masked sequence in full.

    Attributes:
        prefix_len: Tokens served from the prefix cache (0 = the bare path is used).
    """

    def __init__(self, model: Any, encoding: PromptEncoding, players: Sequence[Player],
                 baseline: str | torch.Tensor | np.ndarray = "zero",
                 target: str | int | Sequence[int] | None = None, tokenizer: Any = None,
                 batch_size: int | None = None, memory_budget: int | None = None,
                 prefix_cache: bool = True) -> None:
        self.model = model
        self.encoding = encoding
        self.players = list(players)
        self.n_players = len(self.players)
        emb_layer = model.get_input_embeddings()
        self.device = emb_layer.weight.device
        self.baseline = resolve_baseline(model, baseline, self.n_players)
        prompt_ids = torch.tensor(encoding.input_ids, dtype=torch.long, device=self.device)
        resp_ids = self._response_ids(target, tokenizer)
        ids = torch.cat([prompt_ids, resp_ids]) if resp_ids is not None else prompt_ids
        with torch.no_grad():
            self.embeds = emb_layer(ids[None])[0].detach()  # (L, d)
        self.owner = token_player_index(self.players, ids.shape[0]).to(self.device)
        self._fwd_kwargs = self._forward_kwargs(model)
        self._cache_arg = self._cache_kwarg(model)
        self.prefix_cache = bool(prefix_cache)
        self.prefix_len = self._shared_prefix_len() if self.prefix_cache and self._cache_arg else 0
        if resp_ids is None:
            if target is None:
                with eval_mode(model), torch.no_grad():
                    logits = self._logits(self.embeds[None], 1)
                tid = int(logits[0, -1].argmax())
                kind = "greedy"
            else:
                tid, kind = int(target), "token"
            self.target_ids = torch.tensor([tid], device=self.device)
        else:
            self.target_ids, kind = resp_ids, "response"
        self.n_logits = int(self.target_ids.shape[0])
        ids_t = tuple(int(i) for i in self.target_ids)
        text = tokenizer.decode(list(ids_t)) if tokenizer is not None else ""
        self.target = Target(ids_t, text, kind)
        if batch_size is None:
            batch_size = auto_batch_size(model, int(ids.shape[0]), self.n_logits + 1, memory_budget)
        if batch_size < 1:
            raise InteractionInputError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = int(batch_size)
        self._prefix = self._prefix_cache() if self.prefix_len else None

    def _response_ids(self, target: Any, tokenizer: Any) -> torch.Tensor | None:
        if target is None or isinstance(target, (int, np.integer)):
            return None
        if isinstance(target, str):
            if tokenizer is None:
                raise InteractionInputError("a tokenizer is needed to score a response string")
            ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        else:
            ids = [int(i) for i in target]
        if not ids:
            raise InteractionInputError("the target response encodes to no tokens")
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    @staticmethod
    def _forward_kwargs(model: Any) -> dict[str, Any]:
        try:
            params = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            params = {}
        kwargs: dict[str, Any] = {}
        if "use_cache" in params:
            kwargs["use_cache"] = False
        if "logits_to_keep" in params:
            kwargs["logits_to_keep"] = 0  # filled per call
        return kwargs

    @staticmethod
    def _cache_kwarg(model: Any) -> str | None:
        """Name of the forward's key/value-cache argument, or ``None`` (no prefix cache)."""
        if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
            return None
        try:
            params = inspect.signature(model.forward).parameters
        except (TypeError, ValueError):
            return None
        if "use_cache" not in params or "position_ids" not in params:
            return None
        return next((name for name in ("cache", "past_key_values") if name in params), None)

    def _shared_prefix_len(self) -> int:
        """Tokens before the first player's first token (identical in every masked input)."""
        played = torch.nonzero(self.owner >= 0)
        return int(played[0, 0]) if played.numel() else 0

    def _prefix_cache(self) -> Any:
        """The prefix's key/value cache (batch 1), run once when the value function is built.

        Built outside inference mode, so its tensors are ordinary ones that :meth:`evaluate`
        can also use under autograd (the baseline fit): the prefix holds no player, so it is
        a constant. Returns ``None`` and sets ``prefix_len = 0`` (the bare path) when the model
        returns no cache that can be repeated over a batch.
        """
        kwargs: dict[str, Any] = {"use_cache": True}
        if "logits_to_keep" in self._fwd_kwargs:
            kwargs["logits_to_keep"] = 1
        with torch.inference_mode(False), torch.no_grad(), eval_mode(self.model):
            out = self.model(inputs_embeds=self.embeds[None, :self.prefix_len].clone(), **kwargs)
        cache = getattr(out, self._cache_arg, None)
        if cache is None or not callable(getattr(cache, "batch_repeat_interleave", None)):
            self.prefix_len = 0
            return None
        return cache

    def _batch_cache(self, batch: int) -> Any:
        """A fresh copy of the prefix cache repeated ``batch`` times (a forward appends to it)."""
        cache = copy.deepcopy(self._prefix)
        cache.batch_repeat_interleave(batch)
        return cache

    def _logits(self, embeds: torch.Tensor, n_keep: int, cache: Any = None) -> torch.Tensor:
        kwargs = dict(self._fwd_kwargs)
        if "logits_to_keep" in kwargs:
            kwargs["logits_to_keep"] = n_keep
        if cache is not None:
            start = self.prefix_len
            kwargs[self._cache_arg] = cache
            kwargs["position_ids"] = torch.arange(start, start + embeds.shape[1], device=self.device)[None]
        logits = self.model(inputs_embeds=embeds, **kwargs).logits
        return logits[:, -n_keep:]

    def evaluate(self, keep: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
        """``v`` for one batch of coalitions, differentiable w.r.t. ``baseline``.

        Args:
            keep: Boolean rows, shape ``(B, n)``, on any device.
            baseline: Baseline vectors ``(n, d)``; default :attr:`baseline`.

        Returns:
            Float tensor of shape ``(B,)`` (runs under the caller's grad mode).
        """
        keep = torch.as_tensor(keep, dtype=torch.bool, device=self.device)
        base = self.baseline if baseline is None else baseline
        cache = self._batch_cache(int(keep.shape[0])) if self.prefix_len else None
        start = self.prefix_len
        embeds = mask_embeddings(self.embeds[start:], self.owner[start:], keep, base)
        r = self.n_logits
        if self.target.kind == "response":
            logits = self._logits(embeds, r + 1, cache)[:, :-1]  # positions predicting the response
        else:
            logits = self._logits(embeds, 1, cache)
        return log_odds(logits, self.target_ids[None]).sum(dim=-1)

    def __call__(self, keep: np.ndarray | torch.Tensor) -> np.ndarray:
        """``v`` for any number of coalitions, in batches of :attr:`batch_size`.

        Args:
            keep: Boolean rows, shape ``(m, n)``.

        Returns:
            Float64 array of shape ``(m,)``.
        """
        keep = torch.as_tensor(np.asarray(keep) if not isinstance(keep, torch.Tensor) else keep)
        if keep.ndim != 2 or keep.shape[1] != self.n_players:
            raise InteractionInputError(
                f"coalitions must have shape (m, {self.n_players}), got {tuple(keep.shape)}")
        out = np.empty(keep.shape[0], dtype=np.float64)
        with eval_mode(self.model), torch.inference_mode():
            for a in range(0, keep.shape[0], self.batch_size):
                b = min(a + self.batch_size, keep.shape[0])
                out[a:b] = self.evaluate(keep[a:b]).double().cpu().numpy()
        return out

    def all_subsets(self, progress: bool = False) -> np.ndarray:
        """``v(S)`` for all ``2^n`` subsets in bitmask order (bit i set = player i kept).

        Args:
            progress: Show a tqdm progress bar over batches.

        Returns:
            Float64 array of shape ``(2^n,)``.
        """
        n, total = self.n_players, 1 << self.n_players
        out = np.empty(total, dtype=np.float64)
        starts = range(0, total, self.batch_size)
        if progress:
            from tqdm.auto import tqdm
            starts = tqdm(starts, desc=f"v(S), 2^{n} subsets", unit="batch")
        with eval_mode(self.model), torch.inference_mode():
            for a in starts:
                b = min(a + self.batch_size, total)
                keep = torch.from_numpy(keep_matrix(n, a, b)).to(self.device)
                out[a:b] = self.evaluate(keep).double().cpu().numpy()
        return out
