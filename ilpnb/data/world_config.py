"""The configuration of a controlled world: keys, defaults, and validation with clear errors.

A world config is a JSON object. ``seed`` and ``counts`` (planted cause -> number of SFT
samples) are the keys most users set; the others shape the corpus and have defaults.
Unknown keys, wrong types, negative counts and counts the world cannot satisfy raise
:class:`WorldConfigError` naming the key.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ilpnb.causes import CAUSES, PLANTED_CAUSES  # re-exported: the causes are defined in ilpnb.causes

__all__ = ["CAUSES", "PLANTED_CAUSES", "WorldConfig", "WorldConfigError", "load_world_config"]


class WorldConfigError(ValueError):
    """A world configuration that cannot be used; the message names the key and the reason."""


def _default_counts() -> dict[str, int]:
    return {"none": 150, **{cause: 30 for cause in CAUSES}}


@dataclass
class WorldConfig:
    """Settings of the synthetic world generator (all JSON-serialisable).

    Each field's help is its ``metadata["help"]`` (the one description of the setting).
    """

    seed: int = field(default=0, metadata={"help": "random seed; the same config gives a byte-identical world folder"})
    counts: dict[str, int] = field(default_factory=_default_counts, metadata={
        "help": "planted cause -> number of SFT samples with that cause"})
    n_cities: int = field(default=48, metadata={
        "help": "number of cities (objects of lives_in); with many values per kind a base model guessing a fact "
                "it was never told is rarely right by luck"})
    n_countries: int = field(default=6, metadata={"help": "number of countries (cities are spread over them)"})
    extra_people: int = field(default=10, metadata={
        "help": "people that appear only in the corpus, not in the SFT set"})
    stated_share: float = field(default=0.3, metadata={
        "help": "chance that a fact no SFT sample depends on is stated in the corpus"})
    paraphrases: int = field(default=3, metadata={
        "help": "declarative sentences per stated fact (distinct paraphrases)"})
    qa_repeats: int = field(default=3, metadata={
        "help": "question-answer lines per stated fact in the knowledge probe's wording"})
    qa_variants: int = field(default=3, metadata={"help": "question-answer lines per stated fact in other wordings"})
    city_repeats: int = field(default=4, metadata={"help": "how many times the corpus states the country of each city"})
    conflict_strength: int = field(default=4, metadata={
        "help": "how many times more often a fact contradicted by a pretrain_conflict sample is stated than an "
                "ordinary fact"})
    stage0_share: float = field(default=0.45, metadata={
        "help": "share of the samples of every cause but left_forgetting (all in the first stage) placed in the "
                "first stage, so the stage alone does not give the cause away (in worlds with left_forgetting "
                "samples; else one stage)"})
    interferers_per_forgetting: float = field(default=1.0, metadata={
        "help": "second-stage clean samples, per left_forgetting sample, asked with the forgetting structures and "
                "answered in their usual style (the first stage answered them in the other style)"})
    conflict_group_size: int = field(default=2, metadata={
        "help": "near-duplicate prompts per data_conflict group, and per consistent paraphrase group of the other "
                "causes"})
    paraphrase_share: float = field(default=0.25, metadata={
        "help": "share of the samples of every cause but data_conflict and rare_pattern that come in consistent "
                "paraphrase groups (same answer)"})
    composite_share: float = field(default=0.3, metadata={
        "help": "share of the single clean, missing_knowledge and pretrain_conflict samples with a frequent "
                "multi-part question and long answer"})
    rare_group_size: int = field(default=3, metadata={"help": "samples per rare structure of rare_pattern"})
    reuse_share: float = field(default=0.5, metadata={
        "help": "chance that a question goes to a person already asked about (on other facts), so several samples "
                "of any causes share a person"})
    two_hop_share: float = field(default=0.5, metadata={
        "help": "share of missing_knowledge one-fact samples that are two-hop questions (the home country) whose "
                "bridge fact (the home city) is absent"})

    def to_dict(self) -> dict[str, Any]:
        """The config as a plain dict with every key (counts in the canonical order)."""
        out = asdict(self)
        out["counts"] = {c: int(self.counts.get(c, 0)) for c in PLANTED_CAUSES}
        return out

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> "WorldConfig":
        """Build and validate a config from a JSON object.

        Raises:
            WorldConfigError: unknown key, wrong type, or an impossible value; the
                message names ``source`` and the key.
        """
        if not isinstance(raw, dict):
            raise WorldConfigError(f"{source}: a world config must be a JSON object")
        known = {f.name: f for f in fields(cls)}
        for key in raw:
            if key not in known:
                raise WorldConfigError(
                    f"{source}: unknown key '{key}' (known keys: {', '.join(known)})"
                )
        values = dict(raw)
        if "counts" in values:
            values["counts"] = _check_counts(values["counts"], source)
        cfg = cls(**values)
        cfg.validate(source)
        return cfg

    def validate(self, source: str = "config") -> None:
        """Check types and ranges; raises :class:`WorldConfigError` naming the key."""
        ints = {
            "seed": (None, None),
            "n_cities": (4, 200),
            "n_countries": (4, 50),
            "extra_people": (0, 100000),
            "paraphrases": (1, 50),
            "qa_repeats": (0, 50),
            "qa_variants": (0, 50),
            "city_repeats": (1, 50),
            "rare_group_size": (1, 50),
            "conflict_strength": (1, 100),
            "conflict_group_size": (2, 4),
        }
        for key, (lo, hi) in ints.items():
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool):
                raise WorldConfigError(f"{source}: key '{key}' must be an integer, got {value!r}")
            if lo is not None and value < lo or hi is not None and value > hi:
                raise WorldConfigError(f"{source}: key '{key}' must be in [{lo}, {hi}], got {value}")
        for key in ("stated_share", "stage0_share", "two_hop_share", "paraphrase_share", "composite_share",
                    "reuse_share"):
            value = getattr(self, key)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0.0 <= float(value) <= 1.0:
                raise WorldConfigError(f"{source}: key '{key}' must be a number in [0, 1], got {value!r}")
        value = self.interferers_per_forgetting
        if not isinstance(value, (int, float)) or not 0.0 <= float(value) <= 10.0:
            raise WorldConfigError(
                f"{source}: key 'interferers_per_forgetting' must be a number in [0, 10], got {value!r}"
            )
        if self.n_countries > self.n_cities:
            raise WorldConfigError(
                f"{source}: key 'n_countries' ({self.n_countries}) cannot exceed 'n_cities' ({self.n_cities})"
            )
        self.counts = _check_counts(self.counts, source)
        counts = self.counts
        if sum(counts.values()) == 0:
            raise WorldConfigError(f"{source}: key 'counts' asks for no SFT samples at all")
        dc = counts["data_conflict"]
        if 0 < dc < 2:
            raise WorldConfigError(
                f"{source}: key 'counts.data_conflict' must be 0 or at least 2 "
                "(conflicts come as groups of near-duplicate prompts)"
            )
        rare = counts["rare_pattern"]
        if rare:
            from ilpnb.data.world_text import rare_capacity

            structures, room = max(1, rare // self.rare_group_size), rare_capacity()
            if structures > room:
                raise WorldConfigError(
                    f"{source}: key 'counts.rare_pattern' ({rare}) needs {structures} distinct rare structures "
                    f"of 'rare_group_size' {self.rare_group_size} samples, but the world has {room} "
                    "(raise 'rare_group_size')"
                )
        lf = counts["left_forgetting"]
        if lf:
            need = self.n_interferers() + 1
            if counts["none"] < need:
                raise WorldConfigError(
                    f"{source}: key 'counts.none' is {counts['none']} but the world needs at least "
                    f"{need} clean samples: {self.n_interferers()} second-stage samples to interfere "
                    f"with {lf} left_forgetting samples, plus one more (lower "
                    "'interferers_per_forgetting' or raise 'counts.none')"
                )

    def n_interferers(self) -> int:
        """Second-stage clean samples that interfere with the first stage."""
        lf = self.counts.get("left_forgetting", 0)
        return max(1, round(lf * self.interferers_per_forgetting)) if lf else 0


def _check_counts(raw: Any, source: str) -> dict[str, int]:
    if not isinstance(raw, dict):
        raise WorldConfigError(f"{source}: key 'counts' must be an object from cause name to count")
    out: dict[str, int] = {c: 0 for c in PLANTED_CAUSES}
    for key, value in raw.items():
        if key not in PLANTED_CAUSES:
            raise WorldConfigError(
                f"{source}: unknown key 'counts.{key}' (planted causes: {', '.join(PLANTED_CAUSES)})"
            )
        if not isinstance(value, int) or isinstance(value, bool):
            raise WorldConfigError(f"{source}: key 'counts.{key}' must be an integer, got {value!r}")
        if value < 0:
            raise WorldConfigError(f"{source}: key 'counts.{key}' must not be negative, got {value}")
        out[key] = value
    return out


def load_world_config(path: str | Path) -> WorldConfig:
    """Read a world config from a JSON file.

    Raises:
        WorldConfigError: the file is not valid JSON, or a key is wrong (named in the message).
    """
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise WorldConfigError(f"{path}, line {err.lineno}: not valid JSON ({err.msg})") from None
    return WorldConfig.from_dict(raw, source=str(path))
