"""The controlled world: a seeded generator of facts, a pretraining corpus and an SFT set
in which every cause of incomplete learning is planted on purpose.

People have a home city (in a country), a job and a favourite colour. The pretraining corpus
states a chosen subset of these facts, several paraphrases each, as sentences and as
question-answer lines. The SFT set asks questions whose answers are planted to fail in a
known way:

* ``none`` — the fact is stated in the corpus and the answer agrees with it;
* ``missing_knowledge`` — the fact (or, for a two-hop question, the bridge fact) is never
  stated, so the base model cannot know it;
* ``pretrain_conflict`` — the answer contradicts a fact the corpus states many times;
* ``data_conflict`` — near-duplicate prompts about an unstated fact, with different answers;
* ``left_forgetting`` — first-stage samples whose question template the second stage answers
  in another style (``stage`` 0 vs 1);
* ``rare_pattern`` — a rare question template with a long composite answer.

:func:`generate_world` writes the world folder of DESIGN.md: ``sft.jsonl`` (no truth
inside), ``truth.jsonl``, ``pretrain.txt``, ``probes.jsonl`` and ``world.json``. The same
config gives a byte-identical folder.
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

from ilpnb.data.world_config import WorldConfig, WorldConfigError
from ilpnb.data.world_text import (
    COLOURS,
    FORGETTING_TEMPLATE,
    JOBS,
    PROFILE_TEMPLATES,
    RELATIONS,
    interferer_answer,
    invent_names,
    near_duplicate,
    profile_answer,
    qa_line,
)

__all__ = ["World", "build_world", "generate_world", "WORLD_FILES"]

WORLD_FILES = ("sft.jsonl", "truth.jsonl", "pretrain.txt", "probes.jsonl", "world.json")
_PERSON_RELATIONS = ("lives_in", "works_as", "likes")
_N_OPTIONS = 3


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
        samples: per record, what the generator did (subject, relation, template).
    """

    config: WorldConfig
    records: list[dict[str, Any]] = field(default_factory=list)
    truth: list[dict[str, str]] = field(default_factory=list)
    corpus: list[str] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    facts: list[dict[str, Any]] = field(default_factory=list)
    cities: dict[str, str] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)


class _Builder:
    """Samples one world; kept private so :func:`build_world` is the only entry point."""

    def __init__(self, cfg: WorldConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.taken: set[str] = set()
        self.values: dict[str, tuple[str, ...]] = {"job": JOBS, "colour": COLOURS}
        # (person, relation) -> strength of statement in the corpus (0 = never stated)
        self.strength: dict[tuple[str, str], int] = {}
        self.person_facts: dict[str, dict[str, str]] = {}
        self.pending: list[dict[str, Any]] = []

    # -- entities -----------------------------------------------------------------
    def make_places(self) -> dict[str, str]:
        cfg, rng = self.cfg, self.rng
        countries = invent_names(rng, cfg.n_countries, (2, 3), self.taken)
        cities = invent_names(rng, cfg.n_cities, (2, 3), self.taken)
        homes = [countries[i % len(countries)] for i in range(len(cities))]
        rng.shuffle(homes)
        self.values["city"] = tuple(cities)
        self.values["country"] = tuple(countries)
        self.city_country = dict(zip(cities, homes))
        return self.city_country

    def make_people(self, n: int) -> list[str]:
        people = invent_names(self.rng, n, (2, 3), self.taken)
        for person in people:
            self.person_facts[person] = {
                "lives_in": self.rng.choice(self.values["city"]),
                "works_as": self.rng.choice(self.values["job"]),
                "likes": self.rng.choice(self.values["colour"]),
            }
        return people

    def obj(self, person: str, relation: str) -> str:
        if relation == "country":
            return self.city_country[self.person_facts[person]["lives_in"]]
        return self.person_facts[person][relation]

    def require(self, person: str, relation: str, strength: int) -> None:
        """Fix whether a fact is stated (strength > 0) or absent (0)."""
        key = (person, "lives_in" if relation == "country" else relation)
        self.strength[key] = strength

    def distractors(self, kind: str, exclude: set[str], first: list[str] | None = None) -> list[str]:
        out = [v for v in (first or []) if v not in exclude]
        pool = [v for v in self.values[kind] if v not in exclude and v not in out]
        self.rng.shuffle(pool)
        return (out + pool)[:_N_OPTIONS]

    def add(self, cause: str, prompt: str, response: str, options: list[str], stage: int, **info: Any) -> None:
        self.pending.append(
            {"cause": cause, "prompt": prompt, "response": response, "options": options, "stage": stage, **info}
        )

    # -- samples per cause -------------------------------------------------------------
    def questions(self, relation: str) -> list[str]:
        qs = list(RELATIONS[relation].questions)
        if self.cfg.counts["left_forgetting"]:
            qs = [q for q in qs if q != FORGETTING_TEMPLATE]
        return qs

    def simple(self, cause: str, person: str, relation: str, strength: int, stage: int = 0) -> None:
        self.require(person, relation, strength)
        template = self.rng.choice(self.questions(relation))
        gold = self.obj(person, relation)
        kind = RELATIONS[relation].kind
        if cause == "pretrain_conflict":
            answer = self.rng.choice([v for v in self.values[kind] if v != gold])
            options = self.distractors(kind, {answer}, first=[gold])
        else:
            answer = gold
            options = self.distractors(kind, {answer})
        self.add(cause, template.format(s=person), answer, options, stage,
                 subject=person, relation=relation, template=template, fact_object=gold)

    def conflict_group(self, person: str, size: int) -> None:
        relation = self.rng.choice(_PERSON_RELATIONS)
        self.require(person, relation, 0)
        kind = RELATIONS[relation].kind
        template = self.rng.choice(self.questions(relation))
        gold = self.obj(person, relation)
        answers = [gold] + self.rng.sample([v for v in self.values[kind] if v != gold], size - 1)
        for k, answer in enumerate(answers):
            siblings = [a for a in answers if a != answer]
            self.add("data_conflict", near_duplicate(template.format(s=person), k), answer,
                     self.distractors(kind, {answer}, first=siblings), 1 if self.two_stages else 0,
                     subject=person, relation=relation, template=template, fact_object=gold)

    def profile(self, person: str) -> None:
        for relation in _PERSON_RELATIONS:
            self.require(person, relation, 1)
        f = self.person_facts[person]
        parts = (person, f["lives_in"], self.city_country[f["lives_in"]], f["works_as"], f["likes"])
        answer = profile_answer(*parts)
        options: list[str] = []
        swaps = [("city", 1), ("job", 3), ("colour", 4)]
        for kind, slot in swaps:
            alt = list(parts)
            alt[slot] = self.rng.choice([v for v in self.values[kind] if v != parts[slot]])
            if kind == "city":
                alt[2] = self.city_country[alt[1]]
            options.append(profile_answer(*alt))
        template = self.rng.choice(PROFILE_TEMPLATES)
        self.add("rare_pattern", template.format(s=person), answer, options, 1 if self.two_stages else 0,
                 subject=person, relation="profile", template=template, fact_object=answer)

    def forgetting(self, person: str, interferer: bool) -> None:
        self.require(person, "likes", 1)
        colour = self.obj(person, "likes")
        prompt = FORGETTING_TEMPLATE.format(s=person)
        if interferer:
            answer = interferer_answer(person, colour)
            opts = [interferer_answer(person, c) for c in self.distractors("colour", {colour})]
            self.add("none", prompt, answer, opts, 1, subject=person, relation="likes",
                     template=FORGETTING_TEMPLATE, fact_object=colour, role="interferer")
        else:
            self.add("left_forgetting", prompt, colour, self.distractors("colour", {colour}), 0,
                     subject=person, relation="likes", template=FORGETTING_TEMPLATE, fact_object=colour)

    # -- the whole world ---------------------------------------------------------------
    def build(self) -> World:
        cfg, rng, counts = self.cfg, self.rng, self.cfg.counts
        self.two_stages = counts["left_forgetting"] > 0
        self.make_places()
        groups = _group_sizes(counts["data_conflict"], cfg.conflict_group_size)
        n_int = cfg.n_interferers()
        roles = (["none"] * (counts["none"] - n_int) + ["interferer"] * n_int
                 + ["missing_knowledge"] * counts["missing_knowledge"]
                 + ["pretrain_conflict"] * counts["pretrain_conflict"]
                 + ["left_forgetting"] * counts["left_forgetting"]
                 + ["rare_pattern"] * counts["rare_pattern"] + ["data_conflict"] * len(groups))
        people = self.make_people(len(roles) + cfg.extra_people)
        rng.shuffle(roles)
        n_clean = counts["none"] - n_int
        stage0_clean = round(cfg.stage0_none_share * n_clean) if self.two_stages else 0
        clean_seen = 0
        group_iter = iter(groups)
        for person, role in zip(people, roles):
            if role == "none":
                relation = rng.choice(_PERSON_RELATIONS + ("country",))
                stage = 0 if clean_seen < stage0_clean or not self.two_stages else 1
                clean_seen += 1
                self.simple("none", person, relation, 1, stage)
            elif role == "interferer":
                self.forgetting(person, interferer=True)
            elif role == "missing_knowledge":
                relation = "country" if rng.random() < cfg.two_hop_share else rng.choice(_PERSON_RELATIONS)
                self.simple(role, person, relation, 0, 1 if self.two_stages else 0)
            elif role == "pretrain_conflict":
                relation = rng.choice(_PERSON_RELATIONS)
                self.simple(role, person, relation, cfg.conflict_strength, 1 if self.two_stages else 0)
            elif role == "left_forgetting":
                self.forgetting(person, interferer=False)
            elif role == "rare_pattern":
                self.profile(person)
            else:
                self.conflict_group(person, next(group_iter))
        for person in people:  # facts no sample depends on: stated by chance
            for relation in _PERSON_RELATIONS:
                if (person, relation) not in self.strength:
                    self.strength[(person, relation)] = int(rng.random() < cfg.stated_share)
        return self.assemble(people)

    def assemble(self, people: list[str]) -> World:
        cfg, rng = self.cfg, self.rng
        world = World(config=cfg, cities=dict(self.city_country))
        corpus: list[str] = []
        for city, country in self.city_country.items():
            corpus += self.statements("city_in", city, country, 1)
        for person in people:
            for relation in _PERSON_RELATIONS:
                strength = self.strength[(person, relation)]
                obj = self.obj(person, relation)
                world.facts.append({"subject": person, "relation": relation, "object": obj,
                                    "stated": strength > 0, "strength": strength})
                if strength:
                    corpus += self.statements(relation, person, obj, strength)
                    if relation == "lives_in":
                        corpus += self.statements("country", person, self.obj(person, "country"), strength)
        for city, country in self.city_country.items():
            world.facts.append({"subject": city, "relation": "city_in", "object": country,
                                "stated": True, "strength": 1})
        for person in people:  # derived: the country a person lives in is stated with the city
            strength = self.strength[(person, "lives_in")]
            world.facts.append({"subject": person, "relation": "country", "object": self.obj(person, "country"),
                                "stated": strength > 0, "strength": strength})
        rng.shuffle(corpus)
        world.corpus = corpus
        for fact in world.facts:
            rel = RELATIONS[fact["relation"]]
            world.probes.append({
                "id": f"p{len(world.probes) + 1:05d}", "subject": fact["subject"], "relation": fact["relation"],
                "prompt": rel.probe.format(s=fact["subject"]), "answer": fact["object"],
                "options": self.distractors(rel.kind, {fact["object"]}),
            })
        order = sorted(range(len(self.pending)), key=lambda i: self.pending[i]["stage"])
        by_stage: dict[int, list[int]] = {}
        for i in order:
            by_stage.setdefault(self.pending[i]["stage"], []).append(i)
        for stage in sorted(by_stage):
            idx = by_stage[stage]
            rng.shuffle(idx)
            for i in idx:
                s = self.pending[i]
                sid = f"w{len(world.records) + 1:05d}"
                world.records.append({"id": sid, "prompt": s["prompt"], "response": s["response"],
                                      "stage": s["stage"], "options": s["options"]})
                world.truth.append({"id": sid, "planted_cause": s["cause"]})
                info = {k: v for k, v in s.items() if k not in ("prompt", "response", "options")}
                world.samples.append({"id": sid, **info})
        return world

    def statements(self, relation: str, subject: str, obj: str, strength: int) -> list[str]:
        rel = RELATIONS[relation]
        k = min(self.cfg.paraphrases, len(rel.statements))
        lines = [t.format(s=subject, o=obj) for t in self.rng.sample(rel.statements, k)]
        lines += [qa_line(q.format(s=subject), obj) for q in rel.questions for _ in range(self.cfg.qa_repeats)]
        return lines * strength


def _group_sizes(total: int, size: int) -> list[int]:
    """Split ``total`` conflicting samples into groups of ``size`` (the last ones larger)."""
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


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)


def world_files(world: World) -> dict[str, str]:
    """The text of each file of the world folder."""
    meta = {
        "config": world.config.to_dict(),
        "cities": world.cities,
        "facts": world.facts,
        "samples": world.samples,
        "counts": {c: sum(t["planted_cause"] == c for t in world.truth) for c in world.config.to_dict()["counts"]},
    }
    return {
        "sft.jsonl": _jsonl(world.records),
        "truth.jsonl": _jsonl(world.truth),
        "pretrain.txt": "".join(line + "\n" for line in world.corpus),
        "probes.jsonl": _jsonl(world.probes),
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
