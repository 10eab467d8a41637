"""Token interactions: exact AND / OR / AND-OR interactions between the words of a prompt.

Modules, in pipeline order:

* :mod:`.players` — the input words (players) of a prompt and their token spans;
* :mod:`.masking` — baselines and masked ``inputs_embeds`` for coalitions of players;
* :mod:`.value` — ``v(S)``, the target log-odds, for all ``2^n`` subsets in bounded batches;
* :mod:`.baseline` — the learned baseline (small interactions between disjoint subsets);
* :mod:`.transforms` — exact fast AND (Möbius) and OR transforms, reconstruction, salience;
* :mod:`.andor` — the AND-OR split with learnable ``p`` and bounded ``q``;
* :mod:`.result` — :class:`InteractionResult` (JSON save / load, tidy table);
* :mod:`.compute` — :func:`compute_interactions`, the one-call entry point of one game;
* :mod:`.tracking` — :func:`track`, the one engine following games across checkpoints (one table);
* :mod:`.checkpoints` — a run's checkpoints, held-out prompts and their loss / accuracy;
* :mod:`.dynamics` — preserved / emerged / removed sets, ρ, γ, per-checkpoint summaries;
* :mod:`.stopping` — the end of the denoising phase and the lowest validation loss;
* :mod:`.settings` — :class:`DynamicsConfig` and its values per preset.

Following all of it across a fine-tuning run (the sweep), the notebooks' entry points and
their plain-language reports are steps of the pipeline layer: :mod:`ilpnb.pipeline.sweep`,
:mod:`ilpnb.pipeline.interactions`, :mod:`ilpnb.pipeline.interaction_report`.
"""

from __future__ import annotations

from .andor import AndOrConfig, AndOrFit, fit_and_or, merge_low_order, sparsity_loss
from .baseline import BaselineConfig, BaselineFit, disjoint_objective, fit_baseline, sample_triples
from .checkpoints import (
    Checkpoint,
    heldout_metrics,
    heldout_prompts,
    list_checkpoints,
    load_checkpoint,
    read_prompts,
    select_checkpoints,
    split_prompts,
)
from .compute import WARN_PLAYERS, check_players, compute_interactions, resolve_players
from .dynamics import (
    GROUPS,
    STATUSES,
    add_generalisation,
    assign_status,
    generalisation_ratio,
    non_cancelling_ratio,
    order_profile,
    set_cross_entropy,
    status_masks,
    summarize_dynamics,
    track_sets,
)
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
from .settings import DYNAMICS_PRESETS, TARGETS, DynamicsConfig, dynamics_config
from .stopping import (
    STOP_RULES,
    StoppingPoint,
    denoising_curve,
    denoising_end,
    lowest_loss,
    rule_table,
    stopping_summary,
    stopping_table,
)
from .tracking import TRACK_SCHEMA, track
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
    "track",
    "TRACK_SCHEMA",
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
    # dynamics across checkpoints
    "Checkpoint",
    "list_checkpoints",
    "select_checkpoints",
    "split_prompts",
    "load_checkpoint",
    "read_prompts",
    "heldout_prompts",
    "heldout_metrics",
    "GROUPS",
    "STATUSES",
    "STOP_RULES",
    "StoppingPoint",
    "track_sets",
    "status_masks",
    "assign_status",
    "non_cancelling_ratio",
    "generalisation_ratio",
    "set_cross_entropy",
    "add_generalisation",
    "summarize_dynamics",
    "order_profile",
    "denoising_curve",
    "denoising_end",
    "lowest_loss",
    "stopping_summary",
    "stopping_table",
    "rule_table",
    "DYNAMICS_PRESETS",
    "TARGETS",
    "DynamicsConfig",
    "dynamics_config",
]
