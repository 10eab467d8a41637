"""One call from a model, a tokenizer and a prompt to the exact interactions of that prompt.

:func:`compute_interactions` chains the pieces: encode the prompt (chat template optional),
choose or name the players, build the value function, fit the learned baseline if asked,
evaluate ``v`` on all ``2^n`` subsets in memory-bounded batches, and compute the AND and OR
interactions (exact transforms) or the fitted AND-OR split. Every piece is public, so a
notebook can run them one by one.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from .andor import AndOrConfig, fit_and_or
from .baseline import BaselineConfig, fit_baseline
from .masking import BASELINES
from .players import (
    MAX_PLAYERS,
    InteractionInputError,
    Player,
    PromptEncoding,
    choose_players,
    encode_prompt,
    name_players,
    word_players,
)
from .result import InteractionResult
from .transforms import and_interactions, or_interactions
from .value import ValueFunction

__all__ = ["WARN_PLAYERS", "check_players", "compute_interactions", "resolve_players"]

WARN_PLAYERS = 16
"""Above this many players a warning about the ``2^n`` cost is emitted."""


def check_players(n: int) -> None:
    """Validate the number of players.

    Raises:
        InteractionInputError: Fewer than 2 or more than :data:`MAX_PLAYERS` players.

    Warns:
        UserWarning: More than :data:`WARN_PLAYERS` players (``2^n`` forward passes).
    """
    if n < 2:
        raise InteractionInputError(f"interactions need at least 2 players, got {n}")
    if n > MAX_PLAYERS:
        raise InteractionInputError(
            f"{n} players is more than the limit of {MAX_PLAYERS}: the exact game has 2^n subsets")
    if n > WARN_PLAYERS:
        warnings.warn(f"{n} players: the exact game needs 2^{n} = {1 << n:,} masked forward passes "
                      "and 2^n-sized transforms; this can take long", UserWarning, stacklevel=3)


def resolve_players(model: Any, tokenizer: Any, encoding: PromptEncoding,
                    players: Sequence[str | int | Player] | None = None, *, max_players: int = 10,
                    select: str = "effect", baseline: Any = "zero", target: Any = None,
                    batch_size: int | None = None) -> list[Player]:
    """The players of a prompt: named ones, or the default choice.

    Args:
        model: The causal LM (used by ``select="effect"``).
        tokenizer: Its tokenizer.
        encoding: The encoded prompt.
        players: Words / phrases / word indices / earlier players to use; ``None`` for the
            default choice.
        max_players: Default choice keeps at most this many words.
        select: ``"effect"`` ranks words by ``|v(N) - v(N \\ {i})|`` (one extra batch of
            forward passes, with the given baseline, or the mean embedding for a learned or
            per-player one); ``"first"`` keeps the first content words.
        baseline: Baseline of the game (see above).
        target: Target of the game.
        batch_size: Rows per forward pass for the effect scores.

    Returns:
        The players, not yet validated by :func:`check_players`.
    """
    candidates = word_players(encoding)
    if players is not None:
        if isinstance(players, str):
            raise InteractionInputError("players must be a list of words, not one string")
        return name_players(candidates, list(players))
    if select not in ("effect", "first"):
        raise InteractionInputError(f"select must be 'effect' or 'first', got {select!r}")
    usable = [p for p in candidates if p.tokens]
    if len(usable) <= max_players or select == "first":
        return choose_players(usable, max_players)
    simple = isinstance(baseline, str) and baseline in ("zero", "mean")
    if not simple and not (isinstance(baseline, (torch.Tensor, np.ndarray)) and baseline.ndim == 1):
        baseline = "mean"
    vf = ValueFunction(model, encoding, usable, baseline=baseline, target=target,
                       tokenizer=tokenizer, batch_size=batch_size)
    keep = ~np.eye(len(usable) + 1, len(usable), k=-1, dtype=bool)  # row 0: all kept
    v = vf(keep)
    return choose_players(usable, max_players, scores=np.abs(v[0] - v[1:]))


def compute_interactions(
    model: Any,
    tokenizer: Any,
    prompt: str,
    players: Sequence[str | int | Player] | None = None,
    *,
    baseline: str | torch.Tensor | np.ndarray = "zero",
    target: str | int | Sequence[int] | None = None,
    and_or: bool = True,
    batch_size: int | None = None,
    memory_budget: int | None = None,
    chat_template: bool | None = None,
    max_players: int = 10,
    select: str = "effect",
    and_or_config: AndOrConfig | None = None,
    baseline_config: BaselineConfig | None = None,
    progress: bool = False,
) -> InteractionResult:
    """Exact AND / OR (or AND-OR) interactions of the words of one prompt.

    Args:
        model: Any Hugging Face causal LM (accepting ``inputs_embeds``).
        tokenizer: Its fast tokenizer.
        prompt: The user's text.
        players: Words / phrases / word indices (or the players of an earlier result) to
            use as players; default: all words, or the ``max_players`` most salient ones
            (see :func:`resolve_players`).
        baseline: ``"zero"``, ``"mean"``, ``"learned"``, or a tensor ``(d,)`` / ``(n, d)``.
        target: ``None`` (the model's greedy first response token), a token id, token ids,
            or a response string (teacher-forced, log-odds summed over its tokens).
        and_or: Fit the AND-OR split (``mode="and-or"``); otherwise return the AND and OR
            transforms of ``v`` (``mode="and"``).
        batch_size: Masked sequences per forward pass; default from ``memory_budget``.
        memory_budget: Bytes per batch for the automatic batch size.
        chat_template: Wrap the prompt in the tokenizer's chat template; ``None`` = when it
            has one.
        max_players: Default choice keeps at most this many words.
        select: Default choice rule, ``"effect"`` or ``"first"``.
        and_or_config: Settings of the AND-OR fit (:class:`~.andor.AndOrConfig`).
        baseline_config: Settings of the learned baseline (:class:`~.baseline.BaselineConfig`).
        progress: Show a progress bar over batches.

    Returns:
        The result (save with ``.save(path)``, tabulate with ``.to_frame()``).

    Raises:
        InteractionInputError: Empty prompt, fewer than 2 or more than 20 players, a named
            word not in the prompt or mapping to no token, an unknown baseline.

    Warns:
        UserWarning: More than 16 players.
    """
    if isinstance(baseline, str) and baseline not in BASELINES:
        raise InteractionInputError(
            f"unknown baseline {baseline!r}; use one of {BASELINES} or a tensor")
    timing: dict[str, float] = {}
    t0 = time.perf_counter()
    encoding = encode_prompt(tokenizer, prompt, chat_template)
    chosen = resolve_players(model, tokenizer, encoding, players, max_players=max_players,
                             select=select, baseline=baseline, target=target, batch_size=batch_size)
    check_players(len(chosen))
    vf = ValueFunction(model, encoding, chosen, baseline=baseline, target=target,
                       tokenizer=tokenizer, batch_size=batch_size, memory_budget=memory_budget)
    timing["setup_s"] = time.perf_counter() - t0
    meta: dict[str, Any] = {
        "model": str(getattr(getattr(model, "config", None), "_name_or_path", "")
                     or type(model).__name__),
        "model_class": type(model).__name__, "batch_size": vf.batch_size,
        "chat_template": encoding.chat_template, "n_players": len(chosen),
    }
    if isinstance(baseline, str) and baseline == "learned":
        t = time.perf_counter()
        fit = fit_baseline(vf, baseline_config)
        vf.baseline = fit.baseline
        timing["baseline_s"] = time.perf_counter() - t
        meta["baseline_fit"] = {"initial": fit.initial, "final": fit.final, "config": fit.config}
    t = time.perf_counter()
    values = vf.all_subsets(progress=progress)
    timing["values_s"] = time.perf_counter() - t
    t = time.perf_counter()
    result = InteractionResult(
        prompt=prompt, players=chosen, values=values, and_values=and_interactions(values),
        or_values=or_interactions(values), mode="and", target_ids=vf.target.token_ids,
        target_text=vf.target.text, target_kind=vf.target.kind,
        baseline=baseline if isinstance(baseline, str) else "custom",
        model_input=encoding.text, meta=meta)
    timing["transforms_s"] = time.perf_counter() - t
    if and_or:
        t = time.perf_counter()
        fit_ao = fit_and_or(values, and_or_config)
        result.mode, result.p, result.q, result.q_bound = "and-or", fit_ao.p, fit_ao.q, fit_ao.bound
        result.and_values, result.or_values = fit_ao.and_values, fit_ao.or_values
        meta["and_or"] = {"initial_loss": fit_ao.initial_loss, "final_loss": fit_ao.final_loss,
                          "config": fit_ao.config}
        timing["and_or_s"] = time.perf_counter() - t
    timing["total_s"] = time.perf_counter() - t0
    meta["timing"] = timing
    return result
