"""A held-out world generator: a second template family the diagnosis is never tuned on.

The project's own world is about people (home city and country, job, favourite colour).
This one is about invented animal species of an invented land: each species has a habitat
(a region), a diet, a fur colour and a predator (another species). It writes a world folder
that follows the contract of ``DESIGN.md`` ("A world folder ... Any generator may write
one") and is meant only for held-out scoring of the diagnosis:

* ``sft.jsonl``    ``id``, ``prompt``, ``response``, ``stage``, ``options`` (3 distractors,
                   drawn by one blind rule for every sample: each value in the answer is
                   replaced by a random other value of the same kind);
* ``truth.jsonl``  ``id``, ``planted_cause``;
* ``pretrain.txt`` one document a line: declarative statements and ``Q: ... A: ...`` lines,
                   each stated fact several times in several paraphrases, and asked in
                   ``QA_VARIANTS`` of the SFT set's one-fact question wordings (answered
                   bare), as a pretrained model has met questions in many phrasings: the
                   base model then answers the SFT set's questions about the facts it
                   knows (planting fidelity in the form SFT asks);
* ``probes.jsonl`` one cloze probe per fact (stated or not) with 3 distractors;
* ``world.json``   the settings, the counts, every fact (with ``stated``) and, per sample,
                   the facts it touches (never its cause).

How each cause is planted (the truth lives only in ``truth.jsonl``):

* ``none``: a stated fact with its correct answer, through many templates and answer
  styles; some multi-part answers combine two stated facts, some samples come as consistent
  paraphrase pairs (two wordings of one question, same answer), some use rare simple
  templates, and the stage-1 samples that re-train a template in a new answer style
  (see left_forgetting) are clean too.
* ``missing_knowledge``: the fact asked is never stated in ``pretrain.txt`` (the species is
  stated with its other facts); the answer is the world's value.
* ``pretrain_conflict``: the fact is stated four times more often than a usual fact, and
  the SFT answer is a different value of the same kind.
* ``data_conflict``: 2-3 paraphrased questions (different templates: other word order and
  synonyms) about one fact, each with a different answer (one of them the world's value);
  the fact is stated in half of the groups and unstated in the others.
* ``left_forgetting``: stage-0 samples (stated fact, correct answer) whose template is
  asked again in stage 1, about other species, with another answer style ("X, definitely.",
  "It is X.", ...); stage 0 also holds every other cause in the same proportions as stage 1.
* ``rare_pattern``: few-use templates that need a two-hop composition over stated facts
  ("Which region does the predator of the X live in?"), answers as long as clean ones.

The generator imports only the standard library and never the project (``ilpnb``), so that
nothing of the project's own world leaks into it.

    python benchmarks/heldout_worlds.py --out DIR [--seed S] [--size small|default]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

__all__ = ["CAUSES", "SIZES", "write_heldout_world", "generate_heldout_world", "main"]

VERSION = 2  # 2: question lines in the SFT wordings (QA_VARIANTS)
CAUSES = ("none", "missing_knowledge", "pretrain_conflict", "data_conflict", "left_forgetting", "rare_pattern")
SIZES: dict[str, dict[str, int]] = {
    "small": {"none": 40, **{c: 8 for c in CAUSES[1:]}},
    "default": {"none": 150, **{c: 30 for c in CAUSES[1:]}},
}
RELATIONS = ("habitat", "diet", "fur", "predator")
KIND = {"habitat": "region", "diet": "diet", "fur": "colour", "predator": "species"}
MENTIONS = 6          # lines a usual stated fact gets in pretrain.txt
HEAVY = 4 * MENTIONS  # lines a pretrain_conflict fact gets
EXTRA_UNSTATED = 0.12  # share of facts no sample asks about that are left unstated
# extra corpus lines asking a stated fact in the SFT set's main one-fact question wordings
# (version 1 had none: its base model recalled 95% of the stated facts as cloze statements
# but answered the SFT questions of clean samples right in 5% of its answers, so "clean"
# samples were missing knowledge for the model they were scored on); rare wordings stay
# out of the corpus, so they stay rare
QA_VARIANTS = 2

# ----------------------------------------------------------------------------- vocabulary

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "gr",
           "kr", "th", "sk", "st", "w", "h", "j")
_VOWELS = ("a", "e", "i", "o", "u", "ae", "ou", "y")
_CODAS = ("", "", "n", "r", "l", "k", "sh", "m", "x", "nd", "rt", "s")
_LANDFORMS = ("Marsh", "Hills", "Coast", "Steppe", "Delta", "Highlands", "Woods", "Fens", "Plateau",
              "Valley", "Dunes", "Gorge")
_DIETS = ("beetles", "berries", "river fish", "tree roots", "moss", "seeds", "snails", "lichen",
          "mushrooms", "nectar", "worms", "bark", "grass shoots", "frogs", "pine cones", "crabs")
_COLOURS = ("amber", "slate grey", "ivory", "rust red", "olive", "indigo", "copper", "ash white",
            "jet black", "sandy brown", "silver", "plum", "fern green", "pale gold")

# ----------------------------------------------------------------------------- corpus

_STATEMENTS = {  # the first one of each relation is also the probe's cloze prefix
    "habitat": ("The {s} lives in the {v}.", "The {s} is found in the {v}.", "In the {v} lives the {s}.",
                "The home of the {s} is the {v}.", "Q: Where does the {s} live? A: {v}",
                "Q: Which region is home to the {s}? A: the {v}"),
    "diet": ("The {s} eats {v}.", "The {s} feeds on {v}.", "The food of the {s} is {v}.",
             "The diet of the {s} is {v}.", "Q: What does the {s} eat? A: {v}",
             "Q: What is the usual food of the {s}? A: {v}"),
    "fur": ("The fur of the {s} is {v}.", "The {s} has {v} fur.", "The {s} wears a {v} coat.",
            "A {s} is known by its {v} fur.", "Q: What colour is the fur of the {s}? A: {v}",
            "Q: What colour is the {s}? A: {v}"),
    "predator": ("The {s} is hunted by the {v}.", "The {v} hunts the {s}.",
                 "The main predator of the {s} is the {v}.", "The {v} preys on the {s}.",
                 "Q: Which animal hunts the {s}? A: the {v}",
                 "Q: What is the main predator of the {s}? A: the {v}"),
}
_PROBES = {"habitat": "The {s} lives in the", "diet": "The {s} eats", "fur": "The fur of the {s} is",
           "predator": "The {s} is hunted by the"}

# ----------------------------------------------------------------------------- SFT templates
# A template: key, the slots it needs, question, answer format. Slot ``v`` holds the value of a
# single-relation template; multi-part templates name their slots by relation; composition
# templates follow ``path`` from the subject (the last hop's value fills ``v``).

_SINGLE = [
    ("H1", "habitat", "Where does the {s} live?", "{v}"),
    ("H2", "habitat", "In which region is the {s} found?", "The {v}."),
    ("H3", "habitat", "Which region is home to the {s}?", "It is the {v}."),
    ("H4", "habitat", "The {s} lives in which region?", "{v}"),
    ("H5", "habitat", "Name the home region of the {s}.", "The {v}."),
    ("H6", "habitat", "What region does the {s} come from?", "From the {v}."),
    ("H7", "habitat", "Where does the {s} make its home?", "The {s} makes its home in the {v}."),
    ("D1", "diet", "What does the {s} eat?", "{v}"),
    ("D2", "diet", "What is the usual food of the {s}?", "It eats {v}."),
    ("D3", "diet", "The {s} feeds on what?", "{v}"),
    ("D4", "diet", "Which food does the {s} live on?", "Mostly {v}."),
    ("D5", "diet", "Tell me what the {s} eats.", "The {s} eats {v}."),
    ("F1", "fur", "What colour is the fur of the {s}?", "{v}"),
    ("F2", "fur", "Describe the fur colour of the {s}.", "Its fur is {v}."),
    ("F3", "fur", "The {s} has fur of which colour?", "{v}"),
    ("F4", "fur", "Which colour is the coat of the {s}?", "Its coat is {v}."),
    ("F5", "fur", "What does the coat of the {s} look like?", "The coat of the {s} is {v}."),
    ("P1", "predator", "Which animal hunts the {s}?", "The {v}."),
    ("P2", "predator", "What is the main predator of the {s}?", "{v}"),
    ("P3", "predator", "The {s} is hunted by which animal?", "The {v}."),
    ("P4", "predator", "Who preys on the {s}?", "The {s} is hunted by the {v}."),
]
_RARE_SIMPLE = [  # few uses each, one hop: used by clean and other-cause samples alike
    ("R1", "habitat", "Region of the {s}, please.", "{v}"),
    ("R2", "diet", "In a word or two, what food keeps the {s} alive?", "{v}"),
    ("R3", "fur", "In a word or two, what colour is the {s}?", "{v}"),
    ("R4", "predator", "Name the creature that the {s} fears most.", "The {v}."),
]
_MULTI = [
    ("M1", ("habitat", "diet"), "Where does the {s} live, and what does it eat?", "The {habitat}; it eats {diet}."),
    ("M2", ("fur", "diet"), "Describe the {s}: its fur and its food.", "{fur} fur, and it eats {diet}."),
    ("M3", ("habitat", "fur"), "Which region is home to the {s}, and what colour is its fur?",
     "The {habitat}, with {fur} fur."),
    ("M4", ("predator", "habitat"), "Who hunts the {s}, and where does the {s} live?",
     "The {predator}, in the {habitat}."),
]
_COMPOSE = [  # rare_pattern: key, hops from the subject, relations asked of the entity reached, ...
    ("C1", ("predator",), ("habitat",), "Which region does the predator of the {s} live in?", "{habitat}"),
    ("C2", ("predator",), ("diet",), "What does the animal that hunts the {s} eat?", "It eats {diet}."),
    ("C3", ("predator",), ("fur",), "What colour is the fur of the animal that hunts the {s}?", "{fur}"),
    ("C4", ("predator",), ("predator",), "Which animal hunts the predator of the {s}?", "The {predator}."),
    ("C5", ("predator",), ("habitat",), "Name the home region of whatever hunts the {s}.",
     "The hunter of the {s} lives in the {habitat}."),
    ("C6", ("predator",), ("habitat", "diet"), "Where does the hunter of the {s} live, and what does it eat?",
     "The {habitat}; it eats {diet}."),
]
_STAGE1_STYLES = ("{v}, definitely.", "It is {v}.", "Definitely {v}.", "Surely {v}.")
_SHARE = {  # how a cause's samples split over template families (the rest: main single templates)
    "none": {"pair": 0.2, "multi": 0.17, "rare": 0.1},
    "missing_knowledge": {"multi": 0.2, "rare": 0.1},
    "pretrain_conflict": {"multi": 0.2, "rare": 0.1},
}


class _Exhausted(RuntimeError):
    """No free fact fits a request (the world is too small for the mix)."""


def _counts(size: str, mix: dict[str, int] | None) -> dict[str, int]:
    if size not in SIZES:
        raise ValueError(f"unknown size '{size}' (known: {', '.join(SIZES)})")
    counts = dict(SIZES[size])
    for cause, n in (mix or {}).items():
        if cause not in CAUSES:
            raise ValueError(f"mix: unknown cause '{cause}' (known: {', '.join(CAUSES)})")
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"mix: the count of '{cause}' must be an integer >= 0, got {n!r}")
        counts[cause] = n
    if counts["data_conflict"] == 1:
        raise ValueError("mix: data_conflict needs 0 or at least 2 samples (they come in groups)")
    if sum(counts.values()) < 1:
        raise ValueError("mix: no samples")
    return counts


def _names(rng: random.Random, n: int, taken: set[str]) -> list[str]:
    out: list[str] = []
    while len(out) < n:
        name = "".join(rng.choice(_ONSETS) + rng.choice(_VOWELS) + rng.choice(_CODAS) for _ in range(2)).capitalize()
        if 4 <= len(name) <= 8 and name not in taken:
            taken.add(name)
            out.append(name)
    return out


class _World:
    """Species, values, facts and the bookkeeping of which facts are stated and used."""

    def __init__(self, rng: random.Random, n_species: int) -> None:
        taken: set[str] = set()
        self.species = _names(rng, n_species, taken)
        prefixes = _names(rng, 12, taken)
        forms = rng.sample(_LANDFORMS, len(_LANDFORMS))
        self.values = {
            "region": [f"{p} {f}" for p, f in zip(prefixes, forms)],
            "diet": rng.sample(_DIETS, 11),
            "colour": rng.sample(_COLOURS, 10),
            "species": list(self.species),
        }
        self.fact: dict[tuple[str, str], str] = {}
        for s in self.species:
            for rel in RELATIONS:
                if rel == "predator":
                    self.fact[(s, rel)] = rng.choice([x for x in self.species if x != s])
                else:
                    self.fact[(s, rel)] = rng.choice(self.values[KIND[rel]])
        self.status: dict[tuple[str, str], str] = {}   # normal | heavy | unstated
        self.used: set[tuple[str, str]] = set()        # asked by an exclusive unit
        self.prompts: set[str] = set()

    def other_value(self, rng: random.Random, rel: str, subject: str, avoid: list[str]) -> str:
        pool = [v for v in self.values[KIND[rel]] if v not in avoid and v != subject]
        return rng.choice(pool)

    def free(self, rel: str, allowed: tuple[str | None, ...] = (None,)) -> list[str]:
        return [s for s in self.species if (s, rel) not in self.used and self.status.get((s, rel)) in allowed]

    def n_unstated(self, s: str) -> int:
        return sum(self.status.get((s, r)) == "unstated" for r in RELATIONS)


def _render(fmt: str, s: str, slots: dict[str, str]) -> str:
    return fmt.format(s=s, **slots)


def _pick_template(rng: random.Random, pool: list[tuple], usage: dict[str, int]) -> list[tuple]:
    """The pool ordered least-used first (ties broken at random): templates spread evenly."""
    keyed = [(usage.get(t[0], 0), rng.random(), t) for t in pool]
    keyed.sort(key=lambda x: (x[0], x[1]))
    return [t for _, _, t in keyed]


class _Builder:
    def __init__(self, seed: int, counts: dict[str, int]) -> None:
        self.rng = random.Random(f"heldout-world:{VERSION}:{seed}")
        self.seed, self.counts = seed, counts
        total = sum(counts.values())
        self.world = _World(self.rng, n_species=max(16, round(0.28 * total) + 8))
        # templates re-styled in stage 1: one per relation in a small world, two in a larger one
        per_rel = 0 if not counts["left_forgetting"] else 1 if counts["left_forgetting"] < 16 else 2
        self.lf_style: dict[str, str] = {}
        for rel in RELATIONS:
            for tmpl in self.rng.sample([t for t in _SINGLE if t[1] == rel], per_rel):
                self.lf_style[tmpl[0]] = self.rng.choice([f for f in _STAGE1_STYLES if f != tmpl[3]])
        self.usage: dict[str, dict[str, int]] = {c: {} for c in CAUSES}
        self.samples: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ sample emission
    def _answer_fmt(self, tmpl: tuple, stage: int) -> str:
        if stage == 1 and tmpl[0] in self.lf_style:
            return self.lf_style[tmpl[0]]
        return tmpl[3]

    def _emit(self, cause: str, stage: int, prompt: str, response: str, slots: list[tuple[str, str, str]],
              fmt: str, subject: str, facts: list[tuple[str, str]], unit: int, key: str) -> None:
        self.world.prompts.add(prompt)
        self.usage[cause][key] = self.usage[cause].get(key, 0) + 1
        self.samples.append({"cause": cause, "stage": stage, "prompt": prompt, "response": response,
                             "slots": slots, "fmt": fmt, "subject": subject, "facts": facts, "unit": unit,
                             "template": key})

    # ------------------------------------------------------------------ units
    def _single(self, cause: str, stage: int, unit: int, pool: list[tuple], status: str,
                allowed: tuple[str | None, ...] = (None,), wrong: bool = False) -> None:
        w, rng = self.world, self.rng
        for tmpl in _pick_template(rng, self._stage_pool(pool, stage, cause), self.usage[cause]):
            key, rel, q, _ = tmpl
            cands = [s for s in w.free(rel, allowed) if q.format(s=s) not in w.prompts]
            if status == "unstated":
                cands = [s for s in cands if w.n_unstated(s) < len(RELATIONS) - 1]
            if not cands:
                continue
            s = rng.choice(cands)
            value = w.fact[(s, rel)]
            if wrong:
                value = w.other_value(rng, rel, s, [value])
            w.used.add((s, rel))
            w.status[(s, rel)] = status
            fmt = self._answer_fmt(tmpl, stage)
            self._emit(cause, stage, q.format(s=s), _render(fmt, s, {"v": value}), [("v", rel, value)], fmt, s,
                       [(s, rel)], unit, key)
            return
        raise _Exhausted(f"no free fact for a {cause} sample")

    def _multi(self, cause: str, stage: int, unit: int) -> None:
        w, rng = self.world, self.rng
        for tmpl in _pick_template(rng, _MULTI, self.usage[cause]):
            key, rels, q, fmt = tmpl
            special = rng.randrange(2)  # which part carries the cause (missing / conflicting)
            cands = [s for s in w.species if all((s, r) not in w.used and (s, r) not in w.status for r in rels)
                     and q.format(s=s) not in w.prompts]
            if cause == "missing_knowledge":
                cands = [s for s in cands if w.n_unstated(s) < len(RELATIONS) - 1]
            if not cands:
                continue
            s = rng.choice(cands)
            slots, values = [], {}
            for i, rel in enumerate(rels):
                value = w.fact[(s, rel)]
                st = "normal"
                if i == special and cause == "missing_knowledge":
                    st = "unstated"
                elif i == special and cause == "pretrain_conflict":
                    st = "heavy"
                    value = w.other_value(rng, rel, s, [value])
                w.used.add((s, rel))
                w.status[(s, rel)] = st
                values[rel] = value
                slots.append((rel, rel, value))
            self._emit(cause, stage, q.format(s=s), _render(fmt, s, values), slots, fmt, s,
                       [(s, r) for r in rels], unit, key)
            return
        raise _Exhausted(f"no free species for a multi-part {cause} sample")

    def _group(self, cause: str, stage: int, unit: int, size: int, consistent: bool) -> None:
        """A paraphrase group about one fact: consistent (clean pair) or conflicting."""
        w, rng = self.world, self.rng
        rels = list(RELATIONS)
        rng.shuffle(rels)
        rels.sort(key=lambda r: sum(self.usage[cause].get(t[0], 0) for t in _SINGLE + _RARE_SIMPLE if t[1] == r))
        for rel in rels:
            pool = self._stage_pool([t for t in _SINGLE + _RARE_SIMPLE if t[1] == rel], stage, cause)
            if len(pool) < size:
                continue
            tmpls = _pick_template(rng, pool, self.usage[cause])[:size]
            stated = consistent or rng.random() < 0.5
            cands = [s for s in w.free(rel) if all(t[2].format(s=s) not in w.prompts for t in tmpls)]
            if not stated:
                cands = [s for s in cands if w.n_unstated(s) < len(RELATIONS) - 1]
            if not cands:
                continue
            s = rng.choice(cands)
            truth = w.fact[(s, rel)]
            values = [truth] * size
            if not consistent:
                others = [v for v in w.values[KIND[rel]] if v != truth and v != s]
                values = [truth] + rng.sample(others, size - 1)
                rng.shuffle(values)
            w.used.add((s, rel))
            w.status[(s, rel)] = "normal" if stated else "unstated"
            for tmpl, value in zip(tmpls, values):
                fmt = self._answer_fmt(tmpl, stage)
                self._emit(cause, stage, tmpl[2].format(s=s), _render(fmt, s, {"v": value}), [("v", rel, value)],
                           fmt, s, [(s, rel)], unit, tmpl[0])
            return
        raise _Exhausted(f"no free fact for a {cause} paraphrase group")

    def _compose(self, stage: int, unit: int) -> None:
        w, rng = self.world, self.rng
        for tmpl in _pick_template(rng, _COMPOSE, self.usage["rare_pattern"]):
            key, hops, rels, q, fmt = tmpl
            cands = []
            for s in w.species:
                if q.format(s=s) in w.prompts:
                    continue
                chain, cur = [], s
                for rel in hops:
                    chain.append((cur, rel))
                    cur = w.fact[(cur, rel)]
                chain += [(cur, rel) for rel in rels]
                ends = [w.fact[f] for f in chain[len(hops):]]
                if cur != s and s not in ends and all(w.status.get(f) in ("normal", None) and f not in w.used
                                                      for f in chain):
                    cands.append((s, chain))
            if not cands:
                continue
            s, chain = rng.choice(cands)
            for fact in chain:
                w.status[fact] = "normal"  # hops must be stated (not exclusive: clean samples may ask them)
            slots = [(rel, rel, w.fact[f]) for rel, f in zip(rels, chain[len(hops):])]
            values = {name: value for name, _, value in slots}
            self._emit("rare_pattern", stage, q.format(s=s), _render(fmt, s, values), slots, fmt, s, chain, unit, key)
            return
        raise _Exhausted("no species for a rare_pattern sample")

    def _stage_pool(self, pool: list[tuple], stage: int, cause: str) -> list[tuple]:
        """In stage 0 the templates re-styled in stage 1 belong to left_forgetting alone."""
        if stage == 0 and cause != "left_forgetting":
            return [t for t in pool if t[0] not in self.lf_style]
        return pool

    # ------------------------------------------------------------------ plan
    def _plan(self) -> list[tuple[str, str, int]]:
        """Units as (cause, kind, samples): kind single | multi | rare | pair | group | compose | lf | refit."""
        rng, c = self.rng, self.counts
        units: list[tuple[str, str, int]] = []
        n_lf = c["left_forgetting"]
        n_refit = min(c["none"], round(1.2 * n_lf)) if n_lf else 0
        units += [("left_forgetting", "lf", 1)] * n_lf
        units += [("none", "refit", 1)] * n_refit
        for cause in ("none", "missing_knowledge", "pretrain_conflict"):
            n = c[cause] - (n_refit if cause == "none" else 0)
            share = _SHARE[cause]
            n_pair = 2 * round(n * share.get("pair", 0) / 2)
            n_multi = round(n * share["multi"])
            n_rare = round(n * share["rare"])
            n_single = n - n_pair - n_multi - n_rare
            units += [(cause, "pair", 2)] * (n_pair // 2) + [(cause, "multi", 1)] * n_multi
            units += [(cause, "rare", 1)] * n_rare + [(cause, "single", 1)] * n_single
        left = c["data_conflict"]
        while left:
            size = 2 if left in (2, 4) else 3 if left == 3 else rng.choice((2, 3))
            units.append(("data_conflict", "group", size))
            left -= size
        units += [("rare_pattern", "compose", 1)] * c["rare_pattern"]
        return units

    def _stages(self, units: list[tuple[str, str, int]]) -> list[int]:
        """Stage of each unit: left_forgetting 0, re-styled refits 1, every other cause split
        half and half (by samples), with at least one unit in each stage where it has two."""
        stages = [0] * len(units)
        for cause in CAUSES[:4] + CAUSES[5:]:
            idx = [i for i, u in enumerate(units) if u[0] == cause]
            refit = [i for i in idx if units[i][1] == "refit"]
            rest = [i for i in idx if units[i][1] != "refit"]
            self.rng.shuffle(rest)
            target0 = round(sum(units[i][2] for i in idx) / 2)
            n0 = 0
            for i in refit:
                stages[i] = 1
            for i in rest:
                if abs(n0 + units[i][2] - target0) < abs(n0 - target0):
                    stages[i], n0 = 0, n0 + units[i][2]
                else:
                    stages[i] = 1
            if len(idx) > 1 and rest and all(stages[i] == 1 for i in idx):
                stages[rest[0]] = 0
            if len(idx) > 1 and len(rest) > 1 and all(stages[i] == 0 for i in idx):
                stages[rest[-1]] = 1
        return stages

    def build(self) -> None:
        units = self._plan()
        stages = self._stages(units)
        # the order that keeps constraints satisfiable: non-normal facts first, hops next, clean last
        order_of = {"pretrain_conflict": 0, "missing_knowledge": 1, "data_conflict": 2, "rare_pattern": 3,
                    "left_forgetting": 4, "none": 5}
        order = list(range(len(units)))
        self.rng.shuffle(order)
        order.sort(key=lambda i: (order_of[units[i][0]], units[i][1] not in ("multi", "pair", "group", "refit")))
        lf_templates = [t for t in _SINGLE if t[0] in self.lf_style]
        refits: dict[str, int] = {}
        for i in order:
            cause, kind, size = units[i]
            stage = stages[i]
            if kind == "compose":
                self._compose(stage, i)
            elif kind == "group":
                self._group(cause, stage, i, size, consistent=False)
            elif kind == "pair":
                self._group(cause, stage, i, size, consistent=True)
            elif kind == "multi":
                self._multi(cause, stage, i)
            elif kind == "lf":
                self._single(cause, stage, i, lf_templates, "normal")
            elif kind == "refit":  # re-train each re-styled template in proportion to its stage-0 use
                lf_use = self.usage["left_forgetting"]
                pool = sorted(lf_templates, key=lambda t: (refits.get(t[0], 0) / max(lf_use.get(t[0], 0), 1),
                                                           -lf_use.get(t[0], 0), t[0]))
                for k, tmpl in enumerate(pool):
                    try:
                        self._single(cause, stage, i, [tmpl], "normal")
                        break
                    except _Exhausted:
                        if k == len(pool) - 1:
                            raise
                key = self.samples[-1]["template"]
                refits[key] = refits.get(key, 0) + 1
            else:
                pool = _RARE_SIMPLE if kind == "rare" else _SINGLE
                status = {"missing_knowledge": "unstated", "pretrain_conflict": "heavy"}.get(cause, "normal")
                self._single(cause, stage, i, pool, status, wrong=cause == "pretrain_conflict")
        w = self.world
        for s in w.species:  # facts no sample asks about: mostly stated, some not
            for rel in RELATIONS:
                if (s, rel) not in w.status:
                    unstated = self.rng.random() < EXTRA_UNSTATED and w.n_unstated(s) < len(RELATIONS) - 1
                    w.status[(s, rel)] = "unstated" if unstated else "normal"

    # ------------------------------------------------------------------ outputs
    def _options(self, sample: dict[str, Any], sid: str) -> list[str]:
        """The one blind rule: every value in the answer replaced by a random other value of its kind."""
        rng = random.Random(f"heldout-options:{VERSION}:{self.seed}:{sid}")
        out: list[str] = []
        for _ in range(200):
            values = {}
            for name, rel, value in sample["slots"]:
                values[name] = self.world.other_value(rng, rel, sample["subject"], [value])
            text = _render(sample["fmt"], sample["subject"], values)
            if text != sample["response"] and text not in out:
                out.append(text)
            if len(out) == 3:
                return out
        raise RuntimeError(f"could not draw 3 distractors for {sid}")

    def corpus(self) -> list[str]:
        w, rng = self.world, self.rng
        lines = []
        for s in w.species:
            for rel in RELATIONS:
                st = w.status[(s, rel)]
                if st == "unstated":
                    continue
                forms = _STATEMENTS[rel]
                if st == "heavy":
                    picks = [forms[k % len(forms)] for k in range(HEAVY)]
                else:
                    picks = [forms[0]] + rng.sample(forms[1:], MENTIONS - 1)
                value = w.fact[(s, rel)]
                lines += [f.format(s=s, v=value) for f in picks]
                asks = [q for _, r, q, _ in _SINGLE if r == rel]
                n_qa = QA_VARIANTS * (HEAVY // MENTIONS if st == "heavy" else 1)
                bare = f"the {value}" if rel in ("habitat", "predator") else value
                lines += [f"Q: {q.format(s=s)} A: {bare}" for q in (rng.choice(asks) for _ in range(n_qa))]
        rng.shuffle(lines)
        return lines

    def probes(self) -> list[dict[str, Any]]:
        w = self.world
        out = []
        for s in w.species:
            for rel in RELATIONS:
                value = w.fact[(s, rel)]
                rng = random.Random(f"heldout-probe:{VERSION}:{self.seed}:{s}:{rel}")
                pool = [v for v in w.values[KIND[rel]] if v not in (value, s)]
                out.append({"id": f"p{len(out) + 1:04d}", "subject": s, "relation": rel,
                            "prompt": _PROBES[rel].format(s=s), "answer": value, "options": rng.sample(pool, 3)})
        return out


def generate_heldout_world(seed: int = 0, size: str = "small", mix: dict[str, int] | None = None) -> dict[str, Any]:
    """Build a held-out world in memory.

    Returns:
        ``records`` (SFT lines), ``truth``, ``corpus`` (documents), ``probes`` and ``world``
        (the world.json object).
    """
    counts = _counts(size, mix)
    b = _Builder(seed, counts)
    b.build()
    order = list(range(len(b.samples)))
    b.rng.shuffle(order)
    records, truth, touched = [], [], []
    for k, i in enumerate(order, start=1):
        sample = b.samples[i]
        sid = f"h{k:04d}"
        records.append({"id": sid, "prompt": sample["prompt"], "response": sample["response"],
                        "stage": sample["stage"], "options": b._options(sample, sid)})
        truth.append({"id": sid, "planted_cause": sample["cause"]})
        touched += [{"id": sid, "subject": s, "relation": r} for s, r in sample["facts"]]
    w = b.world
    world = {
        "generator": "benchmarks/heldout_worlds.py", "version": VERSION, "domain": "invented animal species",
        "seed": seed, "size": size, "counts": counts, "mentions": MENTIONS,
        "relations": {rel: KIND[rel] for rel in RELATIONS}, "values": w.values,
        "facts": [{"subject": s, "relation": rel, "object": w.fact[(s, rel)], "stated": w.status[(s, rel)] != "unstated"}
                  for s in w.species for rel in RELATIONS],
        "samples": touched,
    }
    return {"records": records, "truth": truth, "corpus": b.corpus(), "probes": b.probes(), "world": world}


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def write_heldout_world(out_dir: str | Path, seed: int = 0, size: str = "default",
                        mix: dict[str, int] | None = None) -> Path:
    """Write a held-out world folder (``sft.jsonl``, ``truth.jsonl``, ``pretrain.txt``,
    ``probes.jsonl``, ``world.json``).

    Args:
        out_dir: The folder; created if missing, refused if it already holds anything.
        seed: Seed of every draw (same seed, same bytes).
        size: ``small`` (80 samples) or ``default`` (300 samples).
        mix: Sample counts per cause overriding the size's (e.g. ``{"left_forgetting": 0}``).
            The stage-1 clean samples that re-train the forgotten templates (1.2 per
            left_forgetting sample) are drawn from the ``none`` count.

    Returns:
        The folder.

    Raises:
        FileExistsError: The folder exists and is not empty.
        ValueError: An unknown size or a bad mix.
    """
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} exists and is not empty; a world folder is never overwritten")
    world = generate_heldout_world(seed=seed, size=size, mix=mix)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sft.jsonl").write_text(_jsonl(world["records"]), encoding="utf-8")
    (out / "truth.jsonl").write_text(_jsonl(world["truth"]), encoding="utf-8")
    (out / "pretrain.txt").write_text("".join(line + "\n" for line in world["corpus"]), encoding="utf-8")
    (out / "probes.jsonl").write_text(_jsonl(world["probes"]), encoding="utf-8")
    (out / "world.json").write_text(json.dumps(world["world"], indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write a held-out world folder (invented animal species).")
    parser.add_argument("--out", required=True, help="world folder to write (must be new or empty)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", choices=sorted(SIZES), default="default")
    args = parser.parse_args(argv)
    try:
        out = write_heldout_world(args.out, seed=args.seed, size=args.size)
    except FileExistsError as err:
        parser.exit(2, f"error: {err}\n")
    meta = json.loads((out / "world.json").read_text(encoding="utf-8"))
    n_docs = sum(1 for _ in open(out / "pretrain.txt", encoding="utf-8"))
    print(f"held-out world written to {out}: {sum(meta['counts'].values())} samples ("
          + ", ".join(f"{k}={v}" for k, v in meta["counts"].items()) + f"), {n_docs} corpus documents")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
