"""InteractionResult: the interactions of one prompt, saved and loaded as JSON.

It holds the game ``v`` over all ``2^n`` subsets (bitmask order, bit i set = player i kept),
the players, the target, and the interactions. ``mode`` says how to read them:

* ``"and"``: ``and_values`` is the Möbius transform of ``v`` and ``or_values`` the OR
  transform of ``v``; *each alone* rebuilds ``v``;
* ``"and-or"``: ``and_values`` / ``or_values`` come from the fitted AND-OR split (``p``,
  ``q`` stored); *together* they rebuild ``v + q`` (``|q|`` is bounded by ``q_bound``).

:meth:`InteractionResult.to_frame` gives a tidy table, one row per (subset, kind).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .players import Player
from .transforms import and_reconstruct, or_reconstruct, salient, subset_orders, subset_tuple

__all__ = ["FORMAT_VERSION", "InteractionResult"]

FORMAT_VERSION = 1


def _arr(x: Any) -> np.ndarray | None:
    return None if x is None else np.asarray(x, dtype=np.float64)


@dataclass
class InteractionResult:
    """Exact interactions of one prompt.

    Attributes:
        prompt: The user's text.
        players: The players (word, word indices, character span, token positions).
        values: ``v(S)`` for all subsets, bitmask order.
        and_values: AND interactions, bitmask order.
        or_values: OR interactions, bitmask order (see the module docstring).
        mode: ``"and"`` or ``"and-or"``.
        target_ids: Target token id(s).
        target_text: Decoded target.
        target_kind: ``"greedy"``, ``"token"`` or ``"response"``.
        baseline: Baseline name (``"zero"``, ``"mean"``, ``"learned"`` or ``"custom"``).
        p: AND-OR split vector (``"and-or"`` mode only).
        q: AND-OR bounded noise (``"and-or"`` mode only).
        q_bound: The bound on ``|q|``.
        model_input: The full text fed to the model (chat template included).
        meta: Free-form JSON-ready details (model name, batch size, timings, fit losses).
    """

    prompt: str
    players: list[Player]
    values: np.ndarray
    and_values: np.ndarray
    or_values: np.ndarray | None = None
    mode: str = "and"
    target_ids: tuple[int, ...] = ()
    target_text: str = ""
    target_kind: str = "greedy"
    baseline: str = "zero"
    p: np.ndarray | None = None
    q: np.ndarray | None = None
    q_bound: float = 0.0
    model_input: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def n_players(self) -> int:
        """Number of players."""
        return len(self.players)

    @property
    def words(self) -> list[str]:
        """The players' words."""
        return [p.word for p in self.players]

    def reconstruct(self) -> np.ndarray:
        """The game rebuilt from the interactions (``v``, or ``v + q`` in ``"and-or"`` mode)."""
        rebuilt = and_reconstruct(self.and_values)
        if self.mode == "and-or" and self.or_values is not None:
            rebuilt = rebuilt + or_reconstruct(self.or_values)
        return rebuilt

    def kinds(self) -> dict[str, np.ndarray]:
        """The available interaction vectors by kind (``"and"``, ``"or"``)."""
        out = {"and": self.and_values}
        if self.or_values is not None:
            out["or"] = self.or_values
        return out

    def salient_mask(self, frac: float = 0.05) -> dict[str, np.ndarray]:
        """Salient interactions per kind: ``|I| > frac · max|I|`` over all kinds, ∅ excluded."""
        kinds = self.kinds()
        stacked = np.stack(list(kinds.values()))
        mask = salient(stacked, frac)
        return {k: mask[i] for i, k in enumerate(kinds)}

    def to_frame(self, wide: bool = False, frac: float = 0.05) -> pd.DataFrame:
        """Tidy table of the interactions.

        Args:
            wide: One row per subset with ``and_value`` / ``or_value`` columns instead of one
                row per (subset, kind).
            frac: Salience threshold for the ``salient`` column(s).

        Returns:
            Long form columns: ``subset`` (sorted tuple of player indices), ``words`` (the
            players' words joined by ``" & "``), ``order``, ``kind`` (``"and"``/``"or"``),
            ``value``, ``salient``, ``v`` (the game value of the subset). Wide form:
            ``subset``, ``words``, ``order``, ``v``, ``and_value``, ``or_value``,
            ``and_salient``, ``or_salient``.
        """
        n = self.n_players
        subsets = [subset_tuple(m) for m in range(1 << n)]
        names = [" & ".join(self.players[i].word for i in s) for s in subsets]
        orders = subset_orders(n)
        sal = self.salient_mask(frac)
        if wide:
            data: dict[str, Any] = {"subset": subsets, "words": names, "order": orders,
                                    "v": self.values}
            for k, vals in self.kinds().items():
                data[f"{k}_value"] = vals
                data[f"{k}_salient"] = sal[k]
            return pd.DataFrame(data)
        frames = [pd.DataFrame({"subset": subsets, "words": names, "order": orders, "kind": k,
                                "value": vals, "salient": sal[k], "v": self.values})
                  for k, vals in self.kinds().items()]
        return pd.concat(frames, ignore_index=True)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (arrays as lists)."""

        def lst(x: np.ndarray | None) -> list[float] | None:
            return None if x is None else [float(a) for a in x]

        return {
            "format": FORMAT_VERSION, "prompt": self.prompt, "model_input": self.model_input,
            "players": [p.to_dict() for p in self.players], "mode": self.mode,
            "target_ids": list(self.target_ids), "target_text": self.target_text,
            "target_kind": self.target_kind, "baseline": self.baseline, "q_bound": self.q_bound,
            "values": lst(self.values), "and_values": lst(self.and_values),
            "or_values": lst(self.or_values), "p": lst(self.p), "q": lst(self.q), "meta": self.meta,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InteractionResult:
        """Inverse of :meth:`to_dict`."""
        if d.get("format", FORMAT_VERSION) > FORMAT_VERSION:
            raise ValueError(f"interaction result format {d['format']} is newer than this ilpnb")
        return cls(
            prompt=d["prompt"], players=[Player.from_dict(p) for p in d["players"]],
            values=_arr(d["values"]), and_values=_arr(d["and_values"]),
            or_values=_arr(d.get("or_values")), mode=d.get("mode", "and"),
            target_ids=tuple(d.get("target_ids", ())), target_text=d.get("target_text", ""),
            target_kind=d.get("target_kind", "greedy"), baseline=d.get("baseline", "zero"),
            p=_arr(d.get("p")), q=_arr(d.get("q")), q_bound=float(d.get("q_bound", 0.0)),
            model_input=d.get("model_input", ""), meta=dict(d.get("meta", {})),
        )

    def save(self, path: str | Path) -> Path:
        """Write the result as JSON; returns the path."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict()), encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: str | Path) -> InteractionResult:
        """Read a result written by :meth:`save`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
