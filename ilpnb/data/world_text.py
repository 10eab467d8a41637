"""The vocabulary and sentence templates of the controlled world.

Everything the world says is built here: invented names for people, cities and countries,
the relations between them, and the paraphrases the pretraining corpus and the SFT set use
to state or ask about a fact. Keeping the text in one place lets the generator stay about
sampling, and lets a reader see at a glance what the tiny model reads.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = [
    "Relation",
    "RELATIONS",
    "JOBS",
    "COLOURS",
    "FORGETTING_TEMPLATE",
    "PROFILE_TEMPLATES",
    "invent_names",
    "qa_line",
    "profile_answer",
    "interferer_answer",
    "near_duplicate",
]

JOBS: tuple[str, ...] = (
    "baker", "pilot", "farmer", "painter", "doctor", "tailor",
    "sailor", "miner", "teacher", "singer", "judge", "potter",
)
COLOURS: tuple[str, ...] = (
    "red", "blue", "green", "yellow", "purple", "orange",
    "black", "white", "grey", "brown", "pink", "silver",
)

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kl", "st", "tr", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ei")
_CODAS = ("", "", "n", "r", "l", "s", "th", "m")


@dataclass(frozen=True)
class Relation:
    """A relation of the world and the ways the text states or asks it.

    Attributes:
        name: relation id used in facts and probes.
        kind: the kind of object (``city``, ``country``, ``job``, ``colour``).
        statements: declarative paraphrases, ``{s}`` subject and ``{o}`` object.
        questions: question templates with ``{s}``; the answer is the object. The first
            one, in the corpus's question-answer form, is the knowledge probe.

    Every statement puts a word before the subject, so a name is always the same token
    (preceded by a space) wherever it appears.
    """

    name: str
    kind: str
    statements: tuple[str, ...]
    questions: tuple[str, ...]

    @property
    def probe(self) -> str:
        """The knowledge-probe prompt (``{s}`` for the subject): the first question as a QA line."""
        return qa_line(self.questions[0], "").rstrip()


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation(
            "lives_in", "city",
            ("Everyone knows that {s} lives in {o}.", "The home town of {s} is {o}.",
             "It is said that {s} has made a home in {o}.", "These days {s} lives in {o}.",
             "Long ago {s} moved to {o}."),
            ("Where does {s} live?", "In which city does {s} live?"),
        ),
        Relation(
            "works_as", "job",
            ("By trade, {s} is a {o}.", "The job of {s} is {o}.", "People say {s} is a fine {o}.",
             "Today {s} works as a {o}.", "For years {s} has earned a living as a {o}."),
            ("What does {s} do for a living?", "What is the job of {s}?"),
        ),
        Relation(
            "likes", "colour",
            ("The favourite colour of {s} is {o}.", "Of all colours, {s} loves {o}.",
             "It is known that {s} likes the colour {o}.", "Every day {s} wears {o}.",
             "Once {s} painted the door {o}."),
            ("Which colour does {s} like?", "What is the favourite colour of {s}?"),
        ),
        Relation(
            "country", "country",
            ("As a citizen, {s} lives in the country of {o}.", "By law {s} is a citizen of {o}."),
            ("In which country does {s} live?",),
        ),
        Relation(
            "city_in", "country",
            ("The city of {s} lies in {o}.", "On the map, {s} is a city in {o}.", "The town of {s} belongs to {o}."),
            ("In which country is {s}?",),
        ),
    )
}

#: The question template of the first stage, which a later stage answers in another style.
#: The corpus never uses it, so both answer styles are learned in fine-tuning alone and the
#: later stage's style overwrites the earlier one's.
FORGETTING_TEMPLATE = "Name the favourite colour of {s}."
#: Rare question templates whose answers are long composite sentences.
PROFILE_TEMPLATES: tuple[str, ...] = (
    "Give a short profile of {s}.",
    "Describe {s} in one sentence.",
)


def _word(rng: random.Random, syllables: int) -> str:
    parts = [rng.choice(_ONSETS) + rng.choice(_VOWELS) for _ in range(syllables)]
    return ("".join(parts) + rng.choice(_CODAS)).capitalize()


def invent_names(rng: random.Random, n: int, syllables: tuple[int, ...], taken: set[str]) -> list[str]:
    """Invent ``n`` distinct capitalised pseudo-words not in ``taken`` (which is updated).

    Args:
        rng: the world's random generator.
        n: how many names.
        syllables: allowed syllable counts, one chosen per name.
        taken: names already used anywhere in the world.
    """
    out: list[str] = []
    tries = 0
    while len(out) < n:
        tries += 1
        if tries > 100 * (n + 10):
            raise RuntimeError(f"could not invent {n} distinct names")
        name = _word(rng, rng.choice(syllables))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def qa_line(question: str, answer: str) -> str:
    """A question-answer document of the corpus, in the tiny model's chat format."""
    return f"Q: {question} A: {answer}"


def profile_answer(name: str, city: str, country: str, job: str, colour: str) -> str:
    """The long composite answer of a profile question."""
    return f"{name} lives in {city} in {country}, works as a {job} and likes {colour}."


def interferer_answer(name: str, colour: str) -> str:
    """The second stage's answer style for the first stage's question template: the same
    colour, said another way (``name`` is accepted for other styles that mention it)."""
    return f"{colour}!"


_VARIANTS = (
    lambda q: "Please tell me: " + q[0].lower() + q[1:],
    lambda q: q[:-1] + " ?",
    lambda q: "Quick question. " + q,
    lambda q: q.lower(),
    lambda q: "I wonder: " + q[0].lower() + q[1:],
)


def near_duplicate(question: str, k: int) -> str:
    """The ``k``-th near-duplicate wording of a question (``k = 0`` is the question itself)."""
    return question if k == 0 else _VARIANTS[(k - 1) % len(_VARIANTS)](question)
