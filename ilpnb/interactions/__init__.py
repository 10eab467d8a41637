"""Token interactions: exact AND / OR / AND-OR interactions between the words of a prompt.

Modules, in pipeline order:

* :mod:`.players` — the input words (players) of a prompt and their token spans;
* :mod:`.masking` — baselines and masked ``inputs_embeds`` for coalitions of players;
* :mod:`.value` — ``v(S)``, the target log-odds, for all ``2^n`` subsets in bounded batches;
* :mod:`.baseline` — the learned baseline (small interactions between disjoint subsets);
* :mod:`.transforms` — exact fast AND (Möbius) and OR transforms, reconstruction, salience;
* :mod:`.andor` — the AND-OR split with learnable ``p`` and bounded ``q``;
* :mod:`.result` — :class:`InteractionResult` (JSON save / load, tidy table);
* :mod:`.compute` — :func:`compute_interactions`, the one-call entry point.
"""

from __future__ import annotations

from .andor import AndOrConfig, AndOrFit, fit_and_or, merge_low_order, sparsity_loss
from .baseline import BaselineConfig, BaselineFit, disjoint_objective, fit_baseline, sample_triples
from .compute import WARN_PLAYERS, check_players, compute_interactions, resolve_players
from .masking import (
    BASELINES,
    embedding_stats,
    mask_embeddings,
    mean_embedding,
    resolve_baseline,
    token_player_index,
)
from .players import (
    MAX_PLAYERS,
    STOP_WORDS,
    InteractionInputError,
    Player,
    PromptEncoding,
    choose_players,
    encode_prompt,
    is_content_word,
    name_players,
    split_words,
    word_players,
)
from .result import InteractionResult
from .transforms import (
    and_interactions,
    and_reconstruct,
    keep_matrix,
    moebius_transform,
    naive_and_interactions,
    or_interactions,
    or_reconstruct,
    salient,
    subset_orders,
    subset_tuple,
    zeta_transform,
)
from .value import Target, ValueFunction, auto_batch_size, log_odds

__all__ = [
    # entry point and result
    "compute_interactions",
    "InteractionResult",
    "InteractionInputError",
    # players
    "MAX_PLAYERS",
    "WARN_PLAYERS",
    "STOP_WORDS",
    "Player",
    "PromptEncoding",
    "check_players",
    "choose_players",
    "encode_prompt",
    "is_content_word",
    "name_players",
    "resolve_players",
    "split_words",
    "word_players",
    # masking and baselines
    "BASELINES",
    "BaselineConfig",
    "BaselineFit",
    "disjoint_objective",
    "embedding_stats",
    "fit_baseline",
    "mask_embeddings",
    "mean_embedding",
    "resolve_baseline",
    "sample_triples",
    "token_player_index",
    # value function
    "Target",
    "ValueFunction",
    "auto_batch_size",
    "log_odds",
    # transforms
    "and_interactions",
    "and_reconstruct",
    "keep_matrix",
    "moebius_transform",
    "naive_and_interactions",
    "or_interactions",
    "or_reconstruct",
    "salient",
    "subset_orders",
    "subset_tuple",
    "zeta_transform",
    # AND-OR split
    "AndOrConfig",
    "AndOrFit",
    "fit_and_or",
    "merge_low_order",
    "sparsity_loss",
]
