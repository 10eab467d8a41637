"""The controlled world: a seeded generator of facts, a pretraining corpus and an SFT set
in which every cause of incomplete learning is planted on purpose, without shortcuts.

People have a home city (in a country), a job and a favourite colour. The pretraining corpus
states a chosen subset of these facts, each in several paraphrased statements and
question-answer lines (the knowledge probe's wording and others), every copy in its own
place in the corpus. The SFT set asks about them through question *structures* (see
:mod:`ilpnb.data.world_text`): one-fact questions answered bare or in a sentence, frequent
multi-part questions with long answers, unusual wordings, and rare compositions. How each
cause is planted:

* ``none`` — every fact the answer uses is stated in the corpus and the answer agrees;
* ``missing_knowledge`` — a fact the answer needs is never stated (for a two-hop question,
  the home city behind the home country; for a multi-part answer, one of its parts);
* ``pretrain_conflict`` — the answer contradicts (in one part) a fact the corpus states
  ``conflict_strength`` times as often as an ordinary fact;
* ``data_conflict`` — paraphrases of one question about an unstated fact (another
  structure, word order or synonyms) with different answers;
* ``left_forgetting`` — first-stage samples asked with a *forgetting structure* (one per
  relation, drawn per world) and answered in the other style than usual (bare instead of a
  sentence, or the reverse); in the second stage clean samples (the interferers) are asked
  with the same structures and answered in the usual style;
* ``rare_pattern`` — a structure only ``rare_group_size`` samples use: a pair of facts no
  frequent structure asks, in a list or a sentence as frequent answers are written, a
  profile, or a fact asked in a roundabout way or written differently.

Every surface feature is spread over the causes. Samples of every cause sit in the first
stage (about ``stage0_share`` of each; left forgetting only there, necessarily). Every cause
but data conflict and rare patterns also comes in consistent paraphrase groups (same fact,
same answer). Clean, missing and conflicting samples also have long multi-part answers, rare
patterns also short ones; unusual wordings are used by every cause; people are asked about
in several samples of different causes (``reuse_share``); the forgetting structures are
used by no other sample. The multiple-choice options of every sample are drawn by one rule,
blind to the cause: each distractor replaces one value of the answer by a random other value
of its kind that no SFT sample gives for that fact. The planted cause of a sample is written
only to ``truth.jsonl``.

:func:`generate_world` writes the world folder of DESIGN.md: ``sft.jsonl`` (no truth
inside), ``truth.jsonl``, ``pretrain.txt``, ``probes.jsonl`` and ``world.json`` (the
config, the facts, the values of each kind and what each sample asks — never its cause).
The same config gives a byte-identical folder.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ilpnb.data.records import jsonl_text
from ilpnb.data.world_config import WorldConfig, WorldConfigError
from ilpnb.data.world_text import (
    COLOURS,
    COMPOSITE_ASKS,
    JOBS,
    PERSON_RELATIONS,
    RARE_WORDINGS,
    RELATIONS,
    SINGLE_ASKS,
    Ask,
    expand,
    flipped,
    invent_names,
    qa_line,
    rare_asks,
)

__all__ = ["World", "build_world", "generate_world", "WORLD_FILES"]

WORLD_FILES = ("sft.jsonl", "truth.jsonl", "pretrain.txt", "probes.jsonl", "world.json")
_N_OPTIONS = 3
#: Share of one-fact samples (of every cause but left forgetting) asked in an unusual wording.
_RARE_WORDING_SHARE = 0.1
_ALL_RELATIONS = ("lives_in", "works_as", "likes", "country")


def _key(relation: str) -> str:
    """The stated fact behind a relation: a person's country is stated with the home city."""
    return "lives_in" if relation == "country" else relation


@dataclass
class World:
    """A generated world held in memory (see :func:`build_world`).

    Attributes:
        config: the resolved configuration.
        records: SFT records as JSON objects (``id``, ``prompt``, ``response``, ``stage``,
            ``options``), in file order.
        truth: ``{"id", "planted_cause"}`` per record, same order.
        corpus: pretraining documents, one per line.
        probes: knowledge probes (``id``, ``subject``, ``relation``, ``prompt``, ``answer``,
            ``options``).
        facts: every fact with ``stated`` and ``strength`` (kept in ``world.json`` only).
        cities: city -> country.
        values: relation -> every value its objects take (the choices of a guess).
        samples: per record, what it asks (``subject``, ``relation`` — ``profile`` when the
            answer uses several facts —, ``relations``, ``structure``, ``stage`` and
            ``answer_objects``, the values its answer writes); never its cause.
    """

    config: WorldConfig
    records: list[dict[str, Any]] = field(default_factory=list)
    truth: list[dict[str, str]] = field(default_factory=list)
    corpus: list[str] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    cities: dict[str, str] = field(default_factory=dict)
    values: dict[str, list[str]] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Unit:
    """One question about one person, asked by ``size`` samples (paraphrases of each other).

    ``strength`` maps the stated facts behind the question (``lives_in``, ``works_as``,
    ``likes``) to how often the corpus states them (0: never). ``wrong`` is the slot whose
    answer contradicts the corpus (``pretrain_conflict``); ``conflict`` marks a group whose
    members answer differently (``data_conflict``).
    """

    cause: str
    ask: Ask
    stage: int
    size: int = 1
    strength: dict[str, int] = field(default_factory=dict)
    wrong: int | None = None
    conflict: bool = False
    person: str = ""


class _Builder:
    """Samples one world; kept private so :func:`build_world` is the only entry point."""

    def __init__(self, cfg: WorldConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.taken: set[str] = set()
        self.values: dict[str, tuple[str, ...]] = {"job": JOBS, "colour": COLOURS}
        self.strength: dict[tuple[str, str], int] = {}
        self.person_facts: dict[str, dict[str, str]] = {}
        self.two_stages = cfg.counts["left_forgetting"] > 0
        # the forgetting structures, drawn per world: one per relation, two of them answered
        # bare as a rule and two in a sentence. In the first stage only ``left_forgetting``
        # samples use them, answered in the other style; in the second stage only their
        # interferers (clean samples), answered in the usual style.
        self.forgetting: list[Ask] = []
        if self.two_stages:
            styles = ["bare", "sentence"] * 2
            self.rng.shuffle(styles)
            for rel, style in zip(_ALL_RELATIONS, styles):
                self.forgetting.append(self.rng.choice([a for a in SINGLE_ASKS[rel] if a.style == style]))

    # -- entities -----------------------------------------------------------------------
    def make_places(self) -> None:
        cfg, rng = self.cfg, self.rng
        countries = invent_names(rng, cfg.n_countries, (2, 3), self.taken)
        cities = invent_names(rng, cfg.n_cities, (2, 3), self.taken)
        homes = [countries[i % len(countries)] for i in range(len(cities))]
        rng.shuffle(homes)
        self.values["city"] = tuple(cities)
        self.values["country"] = tuple(countries)
        self.city_country = dict(zip(cities, homes))

    def make_people(self, n: int) -> list[str]:
        """``n`` people; each relation's values are dealt evenly, so no value is more common."""
        people = invent_names(self.rng, n, (2, 3), self.taken)
        dealt = {}
        for rel in PERSON_RELATIONS:
            kind = self.values[RELATIONS[rel].kind]
            deck = [kind[i % len(kind)] for i in range(n)]
            self.rng.shuffle(deck)
            dealt[rel] = deck
        for i, person in enumerate(people):
            self.person_facts[person] = {rel: dealt[rel][i] for rel in PERSON_RELATIONS}
        return people

    def obj(self, person: str, relation: str) -> str:
        if relation == "country":
            return self.city_country[self.person_facts[person]["lives_in"]]
        return self.person_facts[person][relation]

    def other(self, kind: str, exclude: set[str]) -> str:
        return self.rng.choice([v for v in self.values[kind] if v not in exclude])

    # -- structures --------------------------------------------------------------------------
    def pool(self, relation: str) -> list[Ask]:
        """The one-fact structures of a relation that a sample of any cause but left
        forgetting may use: all of them but the forgetting structures."""
        return [a for a in SINGLE_ASKS[relation] if a not in self.forgetting]

    def single_ask(self, relation: str, size: int) -> Ask:
        """A one-fact structure for a sample of any cause but left forgetting."""
        if size == 1 and self.rng.random() < _RARE_WORDING_SHARE:
            return self.rng.choice(RARE_WORDINGS[relation])
        return self.rng.choice(self.pool(relation))

    def equivalents(self, ask: Ask) -> list[Ask]:
        """Other structures asking the same one fact as ``ask`` (for paraphrase groups, whose
        members may answer bare or in a sentence, each as its structure does)."""
        if len(ask.relations) > 1 or ask.key.endswith("/flipped"):
            return []
        return [a for a in self.pool(ask.relations[0]) if a is not ask]

    # -- units per cause ------------------------------------------------------------------------
    def group_sizes(self, n: int) -> list[int]:
        """Split ``n`` samples into consistent paraphrase groups and single samples."""
        g = self.cfg.conflict_group_size
        groups = min(n // g, round(self.cfg.paraphrase_share * n / g))
        return [g] * groups + [1] * (n - g * groups)

    def units(self) -> list[_Unit]:
        cfg, rng, counts = self.cfg, self.rng, self.cfg.counts
        out: list[_Unit] = []
        n_int = cfg.n_interferers()
        for k in range(n_int):  # clean second-stage samples asked with the forgetting structures
            ask = self.forgetting[k % len(self.forgetting)]
            out.append(_Unit("none", ask, 1, strength={_key(ask.relations[0]): 1}))
        for cause in ("none", "missing_knowledge", "pretrain_conflict"):
            sizes = self.group_sizes(counts[cause] - (n_int if cause == "none" else 0))
            stages = self.stages(sizes, counts[cause])
            for size, stage in zip(sizes, stages):
                out.append(self.plain_unit(cause, size, stage))
        dc_sizes = _group_sizes(counts["data_conflict"], cfg.conflict_group_size)
        for size, stage in zip(dc_sizes, self.stages(dc_sizes, counts["data_conflict"])):
            # distractors avoid every answer of the group: the relation needs enough values
            rels = [r for r in _ALL_RELATIONS if len(self.values[RELATIONS[r].kind]) >= size + _N_OPTIONS]
            rel = rng.choice(rels)
            out.append(_Unit("data_conflict", self.single_ask(rel, size), stage, size,
                             strength={_key(rel): 0}, conflict=True))
        for k, size in enumerate(self.group_sizes(counts["left_forgetting"])):
            fits = [a for a in self.forgetting if len(a.wordings()) >= size]
            ask = flipped(fits[k % len(fits)] if size > 1 and fits else self.forgetting[k % len(self.forgetting)])
            if len(ask.wordings()) < size:  # no forgetting structure has wordings enough: singles
                out += [_Unit("left_forgetting", ask, 0, strength={_key(ask.relations[0]): 1}) for _ in range(size)]
            else:
                out.append(_Unit("left_forgetting", ask, 0, size, strength={_key(ask.relations[0]): 1}))
        n_rare = counts["rare_pattern"]
        groups = _group_sizes(n_rare, cfg.rare_group_size)  # samples per rare structure
        asks = [a for a, size in zip(rare_asks(rng, len(groups)), groups) for _ in range(size)]
        for ask, stage in zip(asks, self.stages([1] * n_rare, n_rare)):
            out.append(_Unit("rare_pattern", ask, stage, strength={_key(r): 1 for r in ask.relations}))
        return out

    def stages(self, sizes: list[int], total: int) -> list[int]:
        """A stage per unit: about ``stage0_share`` of a cause's ``total`` samples in the first
        stage (for clean samples, ``total`` counts the interferers, which sit in the second)."""
        if not self.two_stages:
            return [0] * len(sizes)
        target = round(self.cfg.stage0_share * total)
        order = list(range(len(sizes)))
        self.rng.shuffle(order)
        out = [1] * len(sizes)
        placed = 0
        for i in order:
            if placed + sizes[i] <= target:
                out[i] = 0
                placed += sizes[i]
        return out

    def plain_unit(self, cause: str, size: int, stage: int) -> _Unit:
        """A clean, missing-knowledge or pretraining-conflict question (one fact or several)."""
        cfg, rng = self.cfg, self.rng
        if size == 1 and rng.random() < cfg.composite_share:
            ask = rng.choice(COMPOSITE_ASKS)
        elif cause == "missing_knowledge" and rng.random() < cfg.two_hop_share:
            ask = self.single_ask("country", size)
        else:
            rels = PERSON_RELATIONS if cause == "missing_knowledge" else _ALL_RELATIONS
            ask = self.single_ask(rng.choice(rels), size)
        keys = [_key(r) for r in ask.relations]
        strength = {k: 1 for k in keys}
        unit = _Unit(cause, ask, stage, size, strength=strength)
        if cause != "none":
            slot = rng.randrange(len(ask.relations))
            strength[keys[slot]] = 0 if cause == "missing_knowledge" else cfg.conflict_strength
            if cause == "pretrain_conflict":
                unit.wrong = slot
        return unit

    def place(self, units: list[_Unit]) -> list[str]:
        """Give every unit a person: a new one, or (``reuse_share``) one already asked about
        whose facts this question does not touch."""
        rng = self.rng
        order = list(range(len(units)))
        rng.shuffle(order)
        order.sort(key=lambda i: -len(units[i].strength))  # questions on several facts first
        hosts: list[set[str]] = []  # per person: the facts already asked about
        owner: dict[int, int] = {}
        for i in order:
            keys = set(units[i].strength)
            free = [p for p, used in enumerate(hosts) if not used & keys]
            if free and rng.random() < self.cfg.reuse_share:
                p = rng.choice(free)
            else:
                p = len(hosts)
                hosts.append(set())
            hosts[p] |= keys
            owner[i] = p
        people = self.make_people(len(hosts) + self.cfg.extra_people)
        for i, unit in enumerate(units):
            unit.person = people[owner[i]]
            for k, s in unit.strength.items():
                self.strength[(unit.person, k)] = s
        return people

    # -- samples -------------------------------------------------------------------------------
    def options(self, ask: Ask, subject: str, values: list[str], given: dict[tuple[str, str], set[str]]) -> list[str]:
        """The one rule of every sample's distractors: replace one value of the answer (a slot
        drawn at random) by a random other value of its kind that no SFT sample gives for
        that fact; three distinct texts."""
        answer = ask.render(subject, values)
        out: list[str] = []
        for _ in range(1000):
            i = self.rng.randrange(len(values))
            alt = list(values)
            alt[i] = self.other(ask.slot_kind(i), {values[i]} | given.get((subject, ask.relations[i]), set()))
            text = ask.render(subject, alt)
            if text != answer and text not in out:
                out.append(text)
                if len(out) == _N_OPTIONS:
                    return out
        raise RuntimeError(f"cannot draw {_N_OPTIONS} distinct options for structure {ask.key}")

    def members(self, unit: _Unit) -> list[tuple[Ask, str, list[str]]]:
        """The samples of a unit: (structure, wording, values of the answer) each."""
        rng, person, ask = self.rng, unit.person, unit.ask
        truth = [self.obj(person, r) for r in ask.relations]
        if unit.wrong is not None:
            truth[unit.wrong] = self.other(ask.slot_kind(unit.wrong), {truth[unit.wrong]})
        answers = [list(truth) for _ in range(unit.size)]
        if unit.conflict:
            kind = ask.slot_kind(0)
            others = rng.sample([v for v in self.values[kind] if v != truth[0]], unit.size - 1)
            for k, v in enumerate(others, start=1):
                answers[k][0] = v
        pick = [(ask, rng.choice(ask.wordings()))]
        if unit.size > 1:
            rest = [(a, w) for a in [ask] + self.equivalents(ask) for w in a.wordings() if w != pick[0][1]]
            pick += rng.sample(rest, min(len(rest), unit.size - 1))
        if len(pick) < unit.size:
            raise RuntimeError(f"structure {ask.key} has too few wordings for a group of {unit.size}")
        return [(a, wording, values) for (a, wording), values in zip(pick, answers)]

    # -- the whole world ---------------------------------------------------------------------
    def build(self) -> World:
        cfg, rng = self.cfg, self.rng
        self.make_places()
        units = self.units()
        people = self.place(units)
        drafted = [(unit, self.members(unit)) for unit in units]
        given: dict[tuple[str, str], set[str]] = {}
        for unit, members in drafted:
            for a, _, values in members:
                for rel, v in zip(a.relations, values):
                    given.setdefault((unit.person, rel), set()).add(v)
        pending = []
        for unit, members in drafted:
            person = unit.person
            for a, wording, values in members:
                pending.append({
                    "cause": unit.cause, "stage": unit.stage,
                    "prompt": wording.format(s=person), "response": a.render(person, values),
                    "options": self.options(a, person, values, given),
                    "info": {"subject": person, "relation": a.relations[0] if len(a.relations) == 1 else "profile",
                             "relations": list(a.relations), "structure": a.key, "stage": unit.stage,
                             "answer_objects": values},
                })
        for person in people:  # facts no sample depends on: stated by chance
            for relation in PERSON_RELATIONS:
                if (person, relation) not in self.strength:
                    self.strength[(person, relation)] = int(rng.random() < cfg.stated_share)
        world = World(config=cfg, cities=dict(self.city_country),
                      values={r: list(self.values[RELATIONS[r].kind]) for r in RELATIONS})
        world.corpus = self.corpus(people)
        self.facts_and_probes(world, people)
        by_stage: dict[int, list[dict[str, Any]]] = {}
        for s in pending:
            by_stage.setdefault(s["stage"], []).append(s)
        for stage in sorted(by_stage):
            batch = by_stage[stage]
            rng.shuffle(batch)
            for s in batch:
                sid = f"w{len(world.records) + 1:05d}"
                world.records.append({"id": sid, "prompt": s["prompt"], "response": s["response"],
                                      "stage": s["stage"], "options": s["options"]})
                world.truth.append({"id": sid, "planted_cause": s["cause"]})
                world.samples.append({"id": sid, **s["info"]})
        return world

    def corpus(self, people: list[str]) -> list[str]:
        cfg = self.cfg
        lines: list[str] = []
        for city, country in self.city_country.items():
            lines += self.statements("city_in", city, country, cfg.city_repeats)
        for person in people:
            for relation in PERSON_RELATIONS:
                strength = self.strength[(person, relation)]
                if strength:
                    lines += self.statements(relation, person, self.obj(person, relation), strength)
                    if relation == "lives_in":
                        lines += self.statements("country", person, self.obj(person, "country"), strength)
        self.rng.shuffle(lines)
        return lines

    def statements(self, relation: str, subject: str, obj: str, strength: int) -> list[str]:
        """Corpus lines stating one fact: paraphrased statements, the probe's question-answer
        line, and question-answer lines in other wordings; ``strength`` times each (every
        repetition draws its own paraphrases)."""
        cfg, rng, rel = self.cfg, self.rng, RELATIONS[relation]
        questions = [w for a in SINGLE_ASKS.get(relation, ()) for w in a.wordings() if w != rel.probe_question]
        lines: list[str] = []
        for _ in range(strength):
            k = min(cfg.paraphrases, len(rel.statements))
            lines += [rng.choice(expand(t)).format(s=subject, o=obj) for t in rng.sample(rel.statements, k)]
            lines += [qa_line(rel.probe_question.format(s=subject), obj)] * cfg.qa_repeats
            if questions:
                k = min(cfg.qa_variants, len(questions))
                lines += [qa_line(q.format(s=subject), obj) for q in rng.sample(questions, k)]
        return lines

    def facts_and_probes(self, world: World, people: list[str]) -> None:
        for person in people:
            for relation in _ALL_RELATIONS:
                strength = self.strength[(person, _key(relation))]
                world.facts.append({"subject": person, "relation": relation, "object": self.obj(person, relation),
                                    "stated": strength > 0, "strength": strength})
        for city, country in self.city_country.items():
            world.facts.append({"subject": city, "relation": "city_in", "object": country,
                                "stated": True, "strength": self.cfg.city_repeats})
        for fact in world.facts:
            rel = RELATIONS[fact["relation"]]
            probe_ask = Ask("probe", (fact["relation"],), (rel.probe_question,), "{0}")
            world.probes.append({
                "id": f"p{len(world.probes) + 1:05d}", "subject": fact["subject"], "relation": fact["relation"],
                "prompt": rel.probe.format(s=fact["subject"]), "answer": fact["object"],
                "options": self.options(probe_ask, fact["subject"], [fact["object"]], {}),
            })


def _group_sizes(total: int, size: int) -> list[int]:
    """Split ``total`` samples into groups of ``size`` (the first ones larger)."""
    if total == 0:
        return []
    n = max(1, total // size)
    sizes = [total // n] * n
    for i in range(total - sum(sizes)):
        sizes[i] += 1
    return sizes


def build_world(config: WorldConfig | dict[str, Any]) -> World:
    """Generate a world in memory from a config (a :class:`WorldConfig` or a JSON object).

    Raises:
        WorldConfigError: a key of the config is wrong (named in the message).
    """
    cfg = config if isinstance(config, WorldConfig) else WorldConfig.from_dict(config)
    cfg.validate()
    return _Builder(cfg).build()


def world_files(world: World) -> dict[str, str]:
    """The text of each file of the world folder."""
    meta = {
        "config": world.config.to_dict(),
        "cities": world.cities,
        "values": world.values,
        "facts": world.facts,
        "samples": world.samples,
        "counts": {c: sum(t["planted_cause"] == c for t in world.truth) for c in world.config.to_dict()["counts"]},
    }
    return {
        "sft.jsonl": jsonl_text(world.records),
        "truth.jsonl": jsonl_text(world.truth),
        "pretrain.txt": "".join(line + "\n" for line in world.corpus),
        "probes.jsonl": jsonl_text(world.probes),
        "world.json": json.dumps(meta, sort_keys=True, indent=1, ensure_ascii=False) + "\n",
    }


def generate_world(config: WorldConfig | dict[str, Any], out: str | Path) -> Path:
    """Generate a world and write its folder.

    An existing folder holding exactly the same world is left as it is (so a pipeline can
    call this again for free); any other non-empty folder is never overwritten.

    Args:
        config: the world config.
        out: the world folder to write.

    Returns:
        The folder.

    Raises:
        WorldConfigError: a bad config key.
        FileExistsError: ``out`` holds something else.
    """
    out = Path(out)
    files = world_files(build_world(config))
    if out.exists() and any(out.iterdir()):
        same = all((out / n).exists() and (out / n).read_text() == text for n, text in files.items())
        if same:
            return out
        raise FileExistsError(f"{out}: folder exists and holds a different world; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".world-", dir=out.parent))
    try:
        for name, text in files.items():
            (tmp / name).write_text(text, encoding="utf-8")
        if out.exists():
            out.rmdir()
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


__all__ += ["world_files", "WorldConfigError"]
