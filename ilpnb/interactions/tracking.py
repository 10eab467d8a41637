"""The one interaction-tracking engine: exact interactions of prompts across checkpoints, one table.

:func:`track` takes checkpoints (the base model first), prompts and the settings of a game
(:class:`ilpnb.config.DynamicsConfig`) and returns one table in :data:`TRACK_SCHEMA`: a row per
prompt × checkpoint × kind (AND / OR) × subset with its order, value, salience and status
(preserved / emerged / removed / none, relative to the first checkpoint). The players of a
prompt are chosen once, on the first checkpoint, and its target is the same token(s) at every
checkpoint, so the games are comparable. The interaction sweep of a run
(:func:`ilpnb.pipeline.sweep.interaction_dynamics`), the real track's before / after
comparison and the ``InteractionViewer``'s in-memory computation all call it.

With ``store`` (a folder) each checkpoint's rows are written as they are computed
(``step-NNNNNN.parquet`` and ``.json``, ``players.json``) and a second call skips the
checkpoints already there: an interrupted sweep resumes. ``measure`` adds per-checkpoint
metrics computed with the loaded model (the sweep's held-out loss and accuracy).

Pieces, for callers that re-judge stored rows without recomputing them: :func:`label`
(salience and status of raw rows), :func:`salient_mask`, :func:`game_rows`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ilpnb.config import DynamicsConfig
from ilpnb.data.records import SFTRecord

from .andor import AndOrConfig
from .checkpoints import Checkpoint, load_checkpoint
from .compute import compute_interactions
from .dynamics import assign_status
from .players import Player
from .result import InteractionResult

__all__ = ["TRACK_SCHEMA", "RAW_COLUMNS", "Prompt", "game", "game_rows", "label", "load_part", "prompt_items",
           "salient_mask", "target_of", "track", "write_atomic"]

TRACK_SCHEMA: dict[str, str] = {
    "prompt_id": "key of the prompt (the sample id for SFT prompts)",
    "step": "training step of the checkpoint (0 = the base model)",
    "checkpoint": "label of the checkpoint",
    "kind": "'and' or 'or'",
    "mask": "the subset as a bitmask over the players",
    "subset": "sorted tuple of player indices",
    "words": "the players' words joined by ' & '",
    "order": "len(subset)",
    "value": "the interaction I(S)",
    "v": "the game value v(S) (log-odds of the target with only S's words kept)",
    "target": "the text whose log-odds is the game's value",
    "salient": "|I(S)| > salient_frac * max|I| at that prompt and checkpoint (the empty set excluded)",
    "status": "'preserved' / 'emerged' / 'removed' / 'none', relative to the first checkpoint",
    "base_value": "I(S) at the first checkpoint",
    "base_salient": "salient at the first checkpoint",
}
"""Columns of :func:`track`'s table (every one is present)."""

RAW_COLUMNS = ("prompt_id", "step", "kind", "mask", "subset", "words", "order", "value", "v", "target")
"""Columns of the stored rows of one checkpoint (before :func:`label`)."""

Prompt = tuple[str, str, "str | None"]
"""``(id, prompt text, gold answer or None)``: a prompt as the engine sees it."""


def prompt_items(prompts: Sequence[SFTRecord | str | Prompt]) -> list[Prompt]:
    """Prompts as ``(id, text, gold answer or None)``: records keep their id and answer, a bare
    text becomes ``prompt-<i>`` with no answer (its target is the first checkpoint's greedy token).

    Raises:
        ValueError: Two prompts with one id.
    """
    out: list[Prompt] = []
    for i, p in enumerate(prompts):
        if isinstance(p, SFTRecord):
            out.append((str(p.id), p.prompt, p.response))
        elif isinstance(p, str):
            out.append((f"prompt-{i}", p, None))
        else:
            pid, text, answer = p
            out.append((str(pid), str(text), answer))
    ids = [p[0] for p in out]
    if len(set(ids)) != len(ids):
        raise ValueError(f"prompt ids must be unique; repeated: {sorted({i for i in ids if ids.count(i) > 1})}")
    return out


def target_of(tokenizer: Any, prompt: str, answer: str | None, kind: str, tokens: int = 0) -> int | list[int] | None:
    """The target of ``v`` for one prompt in this tokenizer's ids.

    ``gold``: the gold answer's first token; ``response``: its tokens (the first ``tokens`` of
    them when ``tokens > 0``), teacher-forced; ``greedy`` or no answer: ``None`` (the model's own
    first token).
    """
    if kind == "greedy" or answer is None:
        return None
    from ilpnb.train.format import encode_pair

    ids = list(encode_pair(tokenizer, prompt, answer).response_ids)
    body = [i for i in ids if i != tokenizer.eos_token_id] or ids
    if kind == "gold":
        return int(body[0])
    return body[:tokens] if tokens > 0 else body


def game(model: Any, tokenizer: Any, prompt: str, target: int | list[int] | None, players: list[Player] | None,
         settings: DynamicsConfig) -> InteractionResult:
    """One prompt's exact interactions under the settings (players chosen here when ``None``)."""
    ao = AndOrConfig(iterations=settings.and_or_iterations, merge_low_order=settings.merge_low_order)
    return compute_interactions(model, tokenizer, prompt, players=players, baseline=settings.baseline,
                                target=target, and_or=settings.and_or, max_players=settings.max_players,
                                and_or_config=ao)


def game_rows(result: InteractionResult, prompt_id: str) -> pd.DataFrame:
    """The raw rows (:data:`RAW_COLUMNS` but ``step``) of one game."""
    table = result.to_frame()
    size = 1 << result.n_players
    table.insert(0, "prompt_id", prompt_id)
    table.insert(1, "mask", np.tile(np.arange(size, dtype=np.int64), len(table) // size))
    table["subset"] = [list(s) for s in table["subset"]]
    table["target"] = result.target_text
    return table[[c for c in RAW_COLUMNS if c != "step"]]


def salient_mask(table: pd.DataFrame, by: Sequence[str], column: str, frac: float,
                 base: pd.DataFrame | None = None) -> np.ndarray:
    """``|I| > frac · max|I|`` within each game (AND and OR together, the empty set excluded).

    With ``base`` (the first checkpoint's rows), the maximum is the base model's, per prompt.
    """
    mag = table[column].abs().where(table["mask"] != 0, 0.0)
    if base is None:
        top = mag.groupby([table[c] for c in by]).transform("max")
    else:
        base_top = base[column].abs().where(base["mask"] != 0, 0.0).groupby(base["prompt_id"]).max()
        top = table["prompt_id"].map(base_top)
    return ((mag > frac * top) & (table["mask"] != 0)).to_numpy()


def label(raw: pd.DataFrame, steps: Sequence[int], salient_frac: float = 0.05,
          salient_scale: str = "own") -> pd.DataFrame:
    """Salience and status of raw rows: the ``salient``, ``status``, ``base_value`` and
    ``base_salient`` columns of :data:`TRACK_SCHEMA` (``steps`` in order, the first the base).

    Raises:
        ValueError: A prompt misses a step.
    """
    raw = raw.copy()
    base = raw[raw["step"] == steps[0]] if salient_scale == "base" else None
    raw["salient"] = salient_mask(raw, ["prompt_id", "step"], "value", salient_frac, base)
    return assign_status(raw, steps)


def write_atomic(obj: pd.DataFrame | Mapping[str, Any], path: Path) -> None:
    """Write a table (parquet) or a JSON object to ``path`` through a temporary file and a rename."""
    tmp = path.with_suffix(".tmp")
    if isinstance(obj, pd.DataFrame):
        obj.to_parquet(tmp, index=False)
    else:
        tmp.write_text(json.dumps(obj, indent=1, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def _part(store: Path, step: int) -> tuple[Path, Path]:
    return store / f"step-{step:06d}.parquet", store / f"step-{step:06d}.json"


def load_part(store: str | Path, step: int) -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The stored rows and information of one checkpoint, or ``None`` when not computed yet."""
    rows, info = _part(Path(store), step)
    if not (rows.is_file() and info.is_file()):
        return None
    return pd.read_parquet(rows), json.loads(info.read_text())


def _checkpoint(ck: Checkpoint | str | Path, i: int) -> tuple[Checkpoint | str | Path, int, str]:
    if isinstance(ck, Checkpoint):
        return ck, ck.step, ck.name
    return ck, i, Path(str(ck)).name or str(ck)


def track(checkpoints: Sequence[Checkpoint | str | Path], prompts: Sequence[SFTRecord | str | Prompt],
          settings: DynamicsConfig | None = None, *, players: dict[str, list[Player]] | None = None,
          store: str | Path | None = None,
          measure: Callable[[Any, Any, list[Prompt]], dict[str, Any]] | None = None,
          progress: bool = False, loader: Callable[[Any], tuple[Any, Any]] = load_checkpoint) -> pd.DataFrame:
    """Exact interactions of every prompt at every checkpoint, labelled, in one table.

    Args:
        checkpoints: :class:`Checkpoint` objects (their steps order the table) or model
            folders / names (stepped 0, 1, …), the base model first.
        prompts: Records (the gold answer gives the target), bare texts (the first
            checkpoint's greedy token) or ``(id, text, answer)`` triples.
        settings: Game settings (players, baseline, target, AND-OR fit, salience); default
            :class:`DynamicsConfig`'s.
        players: Players by prompt id, fixed beforehand; the others are chosen on the first
            checkpoint. Updated in place.
        store: A folder to keep each checkpoint's rows in and resume from.
        measure: ``measure(model, tokenizer, prompts)`` → metrics of a checkpoint, stored in its
            information (``RUN/interactions/parts/step-*.json`` in a sweep).
        progress: A progress bar over the checkpoints to compute.
        loader: Loads a checkpoint as ``(model, tokenizer)``.

    Returns:
        A table with the columns of :data:`TRACK_SCHEMA`, sorted by prompt, step, kind, mask.

    Raises:
        ValueError: No checkpoint or no prompt, repeated prompt ids or steps.
    """
    settings = (settings or DynamicsConfig()).check()
    items = prompt_items(prompts)
    cks = [_checkpoint(c, i) for i, c in enumerate(checkpoints)]
    if not cks or not items:
        raise ValueError("track needs at least one checkpoint and one prompt")
    steps = [s for _, s, _ in cks]
    if len(set(steps)) != len(steps):
        raise ValueError(f"checkpoint steps must be unique, got {steps}")
    players = {} if players is None else players
    targets: dict[str, Any] = {}
    store = Path(store) if store is not None else None
    if store is not None:
        store.mkdir(parents=True, exist_ok=True)
        saved = store / "players.json"
        if saved.is_file():
            for k, v in json.loads(saved.read_text()).items():
                players.setdefault(k, [Player.from_dict(p) for p in v])
    todo = [c for c in cks if store is None or load_part(store, c[1]) is None]
    if todo and todo[0][1] != steps[0] and any(p[0] not in players for p in items):
        todo = [cks[0]] + todo  # the first checkpoint fixes the players
    frames: dict[int, pd.DataFrame] = {}
    bar = todo
    if progress and todo:
        from tqdm.auto import tqdm
        bar = tqdm(todo, desc="interactions per checkpoint", unit="ckpt")
    for ck, step, name in bar:
        model, tok = loader(ck)
        parts, per_prompt = [], {}
        for pid, text, answer in items:
            if pid not in targets:
                targets[pid] = target_of(tok, text, answer, settings.target, settings.target_tokens)
            res = game(model, tok, text, targets[pid], players.get(pid), settings)
            if pid not in players:
                players[pid] = res.players
            if targets[pid] is None:  # greedy on a bare prompt: the first checkpoint's token from now on
                targets[pid] = list(res.target_ids) if settings.target != "greedy" else None
            parts.append(game_rows(res, pid))
            per_prompt[pid] = {"target": res.target_text, "v_full": float(res.values[-1]),
                               "v_empty": float(res.values[0]), "n_players": res.n_players}
        info = {"step": step, "checkpoint": name, "epoch": getattr(ck, "epoch", None),
                "path": str(getattr(ck, "path", ck)), "prompts": per_prompt}
        if measure is not None:
            info.update(measure(model, tok, items))
        del model
        frame = pd.concat(parts, ignore_index=True)
        frame.insert(1, "step", step)
        frames[step] = frame
        if store is not None:
            write_atomic({k: [p.to_dict() for p in v] for k, v in players.items()}, store / "players.json")
            rows_path, info_path = _part(store, step)
            write_atomic(frame, rows_path)
            write_atomic(info, info_path)
    if store is not None:
        for _, step, _ in cks:
            if step not in frames:
                frames[step] = load_part(store, step)[0]
    raw = pd.concat([frames[s] for s in steps], ignore_index=True)
    raw.insert(2, "checkpoint", raw["step"].map({s: n for _, s, n in cks}))
    out = label(raw, steps, settings.salient_frac, settings.salient_scale)
    return out[[*TRACK_SCHEMA, *[c for c in out.columns if c not in TRACK_SCHEMA]]]
