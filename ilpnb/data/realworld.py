"""The planted real world: real facts a pretrained LLM demonstrably knows, with every cause planted.

A synthetic world plants its causes into a tiny model's corpus; this one plants them into
real knowledge of a real model, so the diagnosis can be scored on the model users care about.
The facts are countries and their capitals from the ``countryinfo`` package (MIT, offline).
*What the model knows is measured, not assumed*: :mod:`ilpnb.pipeline.realworld` samples the
base model's answers to each question and passes the result here as a :class:`Knowledge`
table; this module is model-free (it only writes the SFT set from facts and that table).

Causes, each planted by one rule (:func:`plant`):

* ``none`` — known facts (the model answers them right greedily and under sampling, in two
  phrasings), correct answers; some asked twice in different words with the same answer
  (consistent near-duplicates);
* ``pretrain_conflict`` — known facts answered with another country's capital;
* ``missing_knowledge`` — facts the model answers wrong greedily and in every sample, with
  their true answer;
* ``data_conflict`` — pairs of paraphrased questions about one unknown fact with different
  answers (the true capital and another country's);
* ``left_forgetting`` — stage-0 questions in one phrasing whose phrasing stage 1 retrains, on
  other countries, in another answer style (beside stage-0 clean samples of that phrasing
  already in stage 1's style, which stage 1 does not contradict);
* ``rare_pattern`` — a rare composite question (two capitals in one answer) about known facts.

Shortcut rules (the honest-diagnosis issue): every cause but left forgetting sits in both
stages; the answer style (bare value, "It is V.", a full sentence) is drawn per phrasing,
blind to the cause and the same in both stages (so stage 1 contradicts no earlier answer but
the retrained phrasing's), and the causes spread over the phrasings, so lengths overlap; options are three capitals drawn uniformly from all
capitals for every sample, whatever its cause; ids are shuffled; the planted cause is only
in ``truth.jsonl``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ilpnb.data.records import SFTRecord

__all__ = [
    "Fact",
    "Knowledge",
    "QUESTIONS",
    "RETRAINED",
    "PHRASINGS",
    "country_facts",
    "question_records",
    "PlantedWorld",
    "plant",
    "realworld_counts",
]

#: question phrasings of the capital relation (structure and word order differ, not filler words)
QUESTIONS = (
    "What is the capital of {c}?",
    "Which city is the capital of {c}?",
    "{c} has its seat of government in which city?",
    "Name the capital city of {c}.",
    "In which city is the government of {c} based?",
)
#: the phrasing stage 1 retrains in another answer style (the left-forgetting interference)
RETRAINED = "Tell me the capital of {c}."
#: the rare composite question and its answer styles
COMPOSITE = "What are the capitals of {c1} and {c2}?"
COMPOSITE_STYLES = ("{v1} and {v2}", "{v1} and {v2}, respectively.", "The capital of {c1} is {v1} and the capital of "
                    "{c2} is {v2}.")
#: answer styles drawn blind to the cause (bare, short, full sentence)
STYLES = ("{v}", "It is {v}.", "The capital of {c} is {v}.")
#: the styles of the retrained phrasing: stage 0 answers it one way, stage 1 the other
RETRAINED_STYLES = ("{v}", "{c}'s capital city is {v}.")


@dataclass(frozen=True)
class Fact:
    """One real fact: ``subject``'s ``relation`` is ``value``."""

    subject: str
    relation: str
    value: str


#: every phrasing a sample can be asked in (the index is a phrasing's number in :class:`Knowledge`)
PHRASINGS = (*QUESTIONS, RETRAINED)


@dataclass
class Knowledge:
    """What a base model knows, measured by sampling (:mod:`ilpnb.pipeline.realworld`).

    ``known`` maps a subject the model knows (right greedily and in most samples, in two
    phrasings) to the phrasings (indices of :data:`PHRASINGS`) it answers right greedily;
    ``unknown`` maps a subject it does not know (wrong greedily and in every sample) to the
    phrasings it answers wrong greedily. A sample is only asked in a phrasing that behaves as
    planted, so the planting holds on the sample's own prompt. Subjects in neither map are left
    out (half-known facts plant nothing cleanly).
    """

    known: dict[str, set[int]] = field(default_factory=dict)
    unknown: dict[str, set[int]] = field(default_factory=dict)


def country_facts() -> list[Fact]:
    """Country -> capital from ``countryinfo`` (countries with one capital whose name is not
    the country's own, e.g. not Singapore -> Singapore, so the answer is not in the question).

    Raises:
        ImportError: ``countryinfo`` is not installed (``pip install countryinfo``).
    """
    try:
        import countryinfo
    except ImportError as exc:  # pragma: no cover - a dependency of the package
        raise ImportError("the planted real world needs the countryinfo package: pip install countryinfo") from exc
    facts: dict[str, Fact] = {}
    for c in countryinfo.all_countries():
        try:
            name, capital = c.name(), c.capital()
        except (KeyError, AttributeError, TypeError):
            continue
        if not (isinstance(name, str) and isinstance(capital, str) and name and capital):
            continue
        name = name.title() if name.islower() else name
        if capital.casefold() in name.casefold() or name.casefold() in capital.casefold():
            continue
        facts.setdefault(name, Fact(name, "capital", capital))
    return sorted(facts.values(), key=lambda f: f.subject)


def question_records(facts: Sequence[Fact], phrasing: int = 0) -> list[SFTRecord]:
    """Questions that measure the model's knowledge of each fact (id = subject), in one phrasing."""
    return [SFTRecord(id=f.subject, prompt=QUESTIONS[phrasing].format(c=f.subject), response=f.value) for f in facts]


@dataclass
class PlantedWorld:
    """The SFT records, the planted cause per id, and how each was planted (for ``world.json``)."""

    records: list[SFTRecord]
    truth: dict[str, str]
    planting: dict[str, dict]


def realworld_counts(none: int, each: int) -> dict[str, int]:
    """Sample counts per cause: ``none`` clean samples, ``each`` of every cause (``data_conflict``
    rounded up to whole pairs)."""
    return {"none": none, "pretrain_conflict": each, "missing_knowledge": each, "data_conflict": each + each % 2,
            "left_forgetting": each, "rare_pattern": each}


class _Pool:
    """Subjects drawn without replacement; a clear error when a measured set runs out."""

    def __init__(self, subjects: Sequence[str], what: str, rng: random.Random) -> None:
        self.items, self.what, self.measured = list(subjects), what, len(subjects)
        rng.shuffle(self.items)

    def take(self, n: int, where: Callable[[str], bool] = lambda s: True) -> list[str]:
        fit = [s for s in self.items if where(s)]
        if n > len(fit):
            raise ValueError(f"the planted real world needs {n} more {self.what} facts but the model's measured "
                             f"knowledge ({self.measured} {self.what} facts in all) has only {len(fit)} left that fit:"
                             " lower the counts (real.world.none / real.world.each) or measure more countries "
                             "(real.world.countries)")
        out = fit[:n]
        self.items = [s for s in self.items if s not in out]
        return out


def plant(facts: Sequence[Fact], knowledge: Knowledge, counts: dict[str, int], seed: int = 0) -> PlantedWorld:
    """Write the SFT set of a planted real world (see the module docstring).

    Args:
        facts: the facts (:func:`country_facts`).
        knowledge: what the base model knows (measured by :mod:`ilpnb.pipeline.realworld`).
        counts: samples per cause (:func:`realworld_counts`); ``none`` includes the stage-1
            samples of the retrained phrasing.
        seed: seed of every draw.

    Raises:
        ValueError: the measured knowledge has too few known or unknown facts for the counts.
    """
    rng = random.Random(seed)
    value = {f.subject: f.value for f in facts}
    capitals = sorted(set(value.values()))
    good, bad = knowledge.known, knowledge.unknown
    known = _Pool(sorted(s for s in good if s in value), "known", rng)
    unknown = _Pool(sorted(s for s in bad if s in value), "unknown", rng)
    retrained = len(PHRASINGS) - 1

    def asked(subject: str, ok: dict[str, set[int]], n: int = 1) -> list[str]:
        """n phrasings of the questions (not the retrained one) in which the subject behaves as planted."""
        return [PHRASINGS[i] for i in rng.sample(sorted(ok[subject] - {retrained}), n)]

    def fits(ok: dict[str, set[int]], n: int = 1) -> Callable[[str], bool]:
        return lambda s: len(ok[s] - {retrained}) >= n
    # one answer style per phrasing, the same in both stages (drawn blind to the cause): a later
    # stage then contradicts no earlier answer but the retrained phrasing's
    style_of = {q: STYLES[k % len(STYLES)] for k, q in enumerate(rng.sample(QUESTIONS, len(QUESTIONS)))}
    composite_style = rng.choice(COMPOSITE_STYLES)
    rows: list[dict] = []

    def add(cause: str, stage: int, prompt: str, response: str, how: dict) -> None:
        gold = how.get("answer")
        pool = [v for v in capitals if v != gold]  # one rule for every sample, blind to the cause
        options = None
        if "style" in how:
            options = tuple(how["style"].format(c=how["subject"], v=v) for v in rng.sample(pool, 3))
        rows.append({"cause": cause, "stage": stage, "prompt": prompt, "response": response, "options": options,
                     "how": how})

    def single(cause: str, stage: int, subject: str, answer: str, phrasing: str, style: str | None = None) -> None:
        style = style or style_of[phrasing]
        add(cause, stage, phrasing.format(c=subject), style.format(c=subject, v=answer),
            {"subject": subject, "true": value[subject], "answer": answer, "phrasing": phrasing, "style": style})

    def split(n: int) -> list[int]:
        """Stages of n samples: half in each, the odd one drawn."""
        stages = [0] * (n // 2) + [1] * (n // 2) + ([rng.randint(0, 1)] if n % 2 else [])
        rng.shuffle(stages)
        return stages

    n_lf = counts.get("left_forgetting", 0)
    retrain = n_lf  # stage-1 samples of the retrained phrasing (clean, part of `none`)
    consistent = n_lf // 2  # stage-0 clean samples of the retrained phrasing already in stage 1's style
    n_none = counts.get("none", 0) - retrain - consistent
    if n_none < 0:
        raise ValueError(f"counts: none ({counts.get('none', 0)}) must be at least 1.5 x left_forgetting ({n_lf}): "
                         "the stage-1 retraining samples, and stage-0 ones in the same style, are clean samples")
    # none: known facts, correct answers; a quarter asked twice, in another phrasing, same answer
    n_pairs = n_none // 4
    for subject in known.take(retrain, lambda s: retrained in good[s]):
        single("none", 1, subject, value[subject], RETRAINED, RETRAINED_STYLES[1])
    # left forgetting: the retrained phrasing in stage 0, in the other style; beside them, stage-0
    # clean samples of that phrasing in stage 1's style (the same phrasing, no interference)
    for subject in known.take(n_lf, lambda s: retrained in good[s]):
        single("left_forgetting", 0, subject, value[subject], RETRAINED, RETRAINED_STYLES[0])
    for subject in known.take(consistent, lambda s: retrained in good[s]):
        single("none", 0, subject, value[subject], RETRAINED, RETRAINED_STYLES[1])
    subjects = known.take(n_pairs, fits(good, 2)) + known.take(n_none - 2 * n_pairs, fits(good))
    for i, (subject, stage) in enumerate(zip(subjects, split(len(subjects)), strict=True)):
        phrasings = asked(subject, good, 2 if i < n_pairs else 1)
        for phrasing in phrasings:
            single("none", stage, subject, value[subject], phrasing)
    # pretrain conflict: a known fact with another country's capital
    n_pc = counts.get("pretrain_conflict", 0)
    for subject, stage in zip(known.take(n_pc, fits(good)), split(n_pc), strict=True):
        wrong = rng.choice([v for v in capitals if v != value[subject]])
        single("pretrain_conflict", stage, subject, wrong, asked(subject, good)[0])
    # missing knowledge: an unknown fact with its true answer
    n_mk = counts.get("missing_knowledge", 0)
    for subject, stage in zip(unknown.take(n_mk, fits(bad)), split(n_mk), strict=True):
        single("missing_knowledge", stage, subject, value[subject], asked(subject, bad)[0])
    # data conflict: one unknown fact asked in two phrasings, two different answers
    n_dc = counts.get("data_conflict", 0) // 2
    for subject, stage in zip(unknown.take(n_dc, fits(bad, 2)), split(n_dc), strict=True):
        phrasings = asked(subject, bad, 2)
        other = rng.choice([v for v in capitals if v != value[subject]])
        answers = [value[subject], other]
        rng.shuffle(answers)
        for phrasing, answer in zip(phrasings, answers, strict=True):
            single("data_conflict", stage, subject, answer, phrasing)
    # rare pattern: two known capitals in one answer
    # (from the known facts left, then from the clean samples' facts: a composite of facts
    # the model knows and SFT also trains one by one, as in real data)
    n_rare = counts.get("rare_pattern", 0)
    spare = _Pool(known.items + subjects, "known", rng)
    for stage in split(n_rare):
        c1, c2 = spare.take(2)
        style = composite_style
        fill = {"c1": c1, "c2": c2, "v1": value[c1], "v2": value[c2]}
        wrong = rng.sample([v for v in capitals if v not in (value[c1], value[c2])], 3)
        options = tuple(style.format(**{**fill, ("v1", "v2")[k % 2]: w}) for k, w in enumerate(wrong))
        rows.append({"cause": "rare_pattern", "stage": stage, "prompt": COMPOSITE.format(c1=c1, c2=c2),
                     "response": style.format(**fill), "options": options,
                     "how": {"subject": f"{c1} & {c2}", "subjects": [c1, c2], "true": f"{value[c1]} & {value[c2]}",
                             "answer": f"{value[c1]} & {value[c2]}", "phrasing": COMPOSITE, "style": style}})
    order = list(range(len(rows)))
    rng.shuffle(order)
    rows = [rows[i] for i in order]
    rows.sort(key=lambda r: r["stage"])
    records, truth, planting = [], {}, {}
    for k, r in enumerate(rows, 1):
        rid = f"r{k:04d}"
        records.append(SFTRecord(id=rid, prompt=r["prompt"], response=r["response"], stage=r["stage"],
                                 options=r["options"]))
        truth[rid] = r["cause"]
        planting[rid] = {k: v for k, v in r["how"].items() if k != "style"}
    return PlantedWorld(records=records, truth=truth, planting=planting)
