"""The vocabulary and the grammar of the controlled world.

Everything the world says is built here: invented names for people, cities and countries,
the relations between them, the statements of the pretraining corpus and the question
*structures* of the SFT set. A structure (:class:`Ask`) is one way of asking for one or more
facts and of writing the answer; its question is written as patterns with synonyms
(``[live|reside]``) and word-order variants, so paraphrases differ by structure, word order
and synonyms, never by added filler. Keeping the text in one place lets the generator stay
about sampling, and lets a reader see at a glance what the tiny model reads.
"""

from __future__ import annotations

import itertools
import random
import re
from dataclasses import dataclass

__all__ = [
    "Relation",
    "RELATIONS",
    "PERSON_RELATIONS",
    "JOBS",
    "COLOURS",
    "Ask",
    "SINGLE_ASKS",
    "COMPOSITE_ASKS",
    "RARE_WORDINGS",
    "flipped",
    "rare_asks",
    "rare_capacity",
    "expand",
    "invent_names",
    "qa_line",
]

#: Jobs and colours: many values per kind, so that a base model guessing a fact it was never
#: told is right by luck rarely (1 in 48), and chance is a low bar.
JOBS: tuple[str, ...] = (
    "baker", "pilot", "farmer", "painter", "doctor", "tailor", "sailor", "miner",
    "teacher", "singer", "judge", "potter", "weaver", "smith", "nurse", "hunter",
    "fisher", "cook", "guard", "clerk", "dancer", "poet", "mason", "carver",
    "brewer", "butcher", "cobbler", "dyer", "glazier", "herder", "jeweller", "lawyer",
    "merchant", "miller", "roofer", "saddler", "scribe", "shepherd", "tanner", "thatcher",
    "tinker", "trader", "vintner", "builder", "barber", "drover", "banker", "courier",
)
COLOURS: tuple[str, ...] = (
    "red", "blue", "green", "yellow", "purple", "orange", "black", "white",
    "grey", "brown", "pink", "silver", "gold", "beige", "violet", "cyan",
    "amber", "teal", "maroon", "navy", "olive", "lime", "coral", "ivory",
    "indigo", "crimson", "scarlet", "magenta", "lilac", "mauve", "ochre", "khaki",
    "tan", "cream", "peach", "plum", "rose", "ruby", "jade", "emerald",
    "azure", "cobalt", "bronze", "copper", "rust", "sand", "slate", "mint",
)

#: The relations of a person (``country`` is derived: the country of the home city).
PERSON_RELATIONS: tuple[str, ...] = ("lives_in", "works_as", "likes")

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kl", "st", "tr", "sh")
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ou", "ei")
_CODAS = ("", "", "n", "r", "l", "s", "th", "m")

_ALT = re.compile(r"\[([^\]]*)\]")


def expand(pattern: str) -> list[str]:
    """Every text a pattern with ``[a|b]`` alternatives stands for, in a fixed order."""
    parts = _ALT.split(pattern)
    choices = [p.split("|") if i % 2 else [p] for i, p in enumerate(parts)]
    return ["".join(c) for c in itertools.product(*choices)]


@dataclass(frozen=True)
class Relation:
    """A relation of the world and the ways the corpus states it.

    Attributes:
        name: relation id used in facts and probes.
        kind: the kind of object (``city``, ``country``, ``job``, ``colour``).
        statements: declarative patterns (``{s}`` subject, ``{o}`` object, ``[a|b]`` synonyms).
        probe_question: the canonical question, the knowledge probe (as a QA line).

    Every statement puts a word before the subject, so a name is always the same token
    (preceded by a space) wherever it appears.
    """

    name: str
    kind: str
    statements: tuple[str, ...]
    probe_question: str

    @property
    def probe(self) -> str:
        """The knowledge-probe prompt (``{s}`` for the subject): the canonical question as a QA line."""
        return qa_line(self.probe_question, "").rstrip()


RELATIONS: dict[str, Relation] = {
    r.name: r
    for r in (
        Relation(
            "lives_in", "city",
            ("Everyone knows that {s} [lives|resides] in {o}.", "The home [town|city] of {s} is {o}.",
             "It is said that {s} has made a home in {o}.", "These days {s} [lives|resides] in {o}.",
             "Long ago {s} moved to {o}.", "In {o} [lives|resides] {s}."),
            "Where does {s} live?",
        ),
        Relation(
            "works_as", "job",
            ("By trade, {s} is a {o}.", "The [job|trade] of {s} is {o}.", "People say {s} is a fine {o}.",
             "Today {s} works as a {o}.", "For years {s} has earned a living as a {o}.",
             "As a {o}, {s} works hard."),
            "What does {s} do for a living?",
        ),
        Relation(
            "likes", "colour",
            ("The favourite colour of {s} is {o}.", "Of all colours, {s} [loves|prefers] {o}.",
             "It is known that {s} likes the colour {o}.", "Every day {s} wears {o}.",
             "Once {s} painted the door {o}.", "The colour {o} is loved by {s}."),
            "Which colour does {s} like?",
        ),
        Relation(
            "country", "country",
            ("As a citizen, {s} lives in the country of {o}.", "By law {s} is a citizen of {o}."),
            "In which country does {s} live?",
        ),
        Relation(
            "city_in", "country",
            ("The city of {s} lies in {o}.", "On the map, {s} is a city in {o}.", "The town of {s} belongs to {o}."),
            "In which country is {s}?",
        ),
    )
}

#: What a relation is called inside a question ("the {attr} of {s}").
_ATTR = {"lives_in": "[home city|home town]", "works_as": "[job|trade]", "likes": "favourite colour",
         "country": "home country"}
#: The one-sentence answer of a relation ("sentence" answer style).
_SENTENCE = {"lives_in": "{s} lives in {0}.", "works_as": "{s} works as a {0}.", "likes": "{s} likes {0}.",
             "country": "{s} lives in the country of {0}."}


@dataclass(frozen=True)
class Ask:
    """A question structure: which facts it asks for, how it is worded, how it is answered.

    Attributes:
        key: a stable id (``relation/name``), kept in ``world.json``.
        relations: the facts the answer writes, in order (``country`` is the home city's).
        patterns: question patterns (``{s}`` the subject, ``[a|b]`` synonyms); each pattern
            is one word order, :meth:`wordings` lists every text they stand for.
        answer: answer pattern: ``{s}`` the subject, ``{0}``, ``{1}`` … the slot values.
        transform: how a slot value is written: ``""`` as is, ``plural`` (a job in the plural).
    """

    key: str
    relations: tuple[str, ...]
    patterns: tuple[str, ...]
    answer: str
    transform: str = ""

    def wordings(self) -> list[str]:
        """Every question text of this structure (``{s}`` left in)."""
        return [w for p in self.patterns for w in expand(p)]

    def slot_kind(self, i: int) -> str:
        """The kind of values slot ``i`` takes (what its distractors are drawn from)."""
        return RELATIONS[self.relations[i]].kind

    def render(self, subject: str, values: list[str]) -> str:
        """The answer text for slot ``values``."""
        shown = [v + "s" if self.transform == "plural" else v for v in values]
        return self.answer.format(*shown, s=subject)

    @property
    def style(self) -> str:
        """``bare`` (just the value) or ``sentence``/``composite`` (words around the values)."""
        if self.answer == "{0}":
            return "bare"
        return "sentence" if len(self.relations) == 1 else "composite"


def _single(rel: str, name: str, patterns: tuple[str, ...], sentence: bool) -> Ask:
    return Ask(f"{rel}/{name}", (rel,), patterns, _SENTENCE[rel] if sentence else "{0}")


_NAME_THE_LONG = {"lives_in": "[Name|Give|State] the [city|town] in which {s} lives.",
                  "works_as": "[Name|Give|State] the [job|trade] by which {s} earns a living.",
                  "likes": "[Name|Give|State] the colour that {s} likes best.",
                  "country": "[Name|Give|State] the country in which {s} lives."}


def _name_the(rel: str) -> Ask:
    return _single(rel, "name_the", (f"[Name|Give|State] the {_ATTR[rel]} of {{s}}.",
                                     f"[Name|Give|State] {{s}}'s {_ATTR[rel]}.", _NAME_THE_LONG[rel]), True)


#: Structures asking for one fact, answered bare ("baker") or in a sentence ("X works as a
#: baker."). The corpus asks every one of them (answered bare, like every corpus question).
SINGLE_ASKS: dict[str, tuple[Ask, ...]] = {
    "lives_in": (
        _single("lives_in", "where", ("Where does {s} [live|reside]?", "Where is the home of {s}?",
                                      "Where in the world does {s} have a home?"), False),
        _single("lives_in", "which_city", ("In which [city|town] does {s} [live|reside]?",
                                           "Which [city|town] does {s} [live|reside] in?",
                                           "Of all the [cities|towns], which one does {s} live in?"), False),
        _single("lives_in", "home_city", ("What is the home [city|town] of {s}?",
                                          "What is {s}'s home [city|town]?",
                                          "Which is the [city|town] that {s} calls home?"), True),
        _name_the("lives_in"),
    ),
    "works_as": (
        _single("works_as", "living", ("What does {s} do for [a living|work]?",
                                       "For a living, what does {s} do?",
                                       "What is it that {s} does for a living?"), False),
        _single("works_as", "job_of", ("What is the [job|trade] of {s}?", "What is {s}'s [job|trade]?",
                                       "What is the [job|trade] that {s} has?"), False),
        _single("works_as", "which_job", ("Which [job|trade] does {s} have?",
                                          "What kind of work does {s} do?",
                                          "Which [job|trade] does {s} do to earn a living?"), True),
        _name_the("works_as"),
    ),
    "likes": (
        _single("likes", "which_colour", ("[Which|What] colour does {s} [like|love|prefer]?",
                                          "{s} [likes|loves] which colour?",
                                          "Of all the colours, which one does {s} like best?"), False),
        _single("likes", "favourite", ("What is the favourite colour of {s}?",
                                       "What is {s}'s favourite colour?",
                                       "What is the colour that {s} likes best?"), False),
        _single("likes", "colour_is", ("Which colour is the favourite of {s}?",
                                       "Which colour is {s}'s favourite?",
                                       "Which one of the colours is the favourite of {s}?"), True),
        _name_the("likes"),
    ),
    "country": (
        _single("country", "which_country", ("In which country does {s} [live|reside]?",
                                             "Which country does {s} [live|reside] in?",
                                             "Of all the countries, which one does {s} live in?"), False),
        _single("country", "home_country", ("What is the home country of {s}?",
                                            "What is {s}'s home country?",
                                            "What is the country that {s} calls home?"), True),
        _name_the("country"),
    ),
}


def flipped(ask: Ask) -> Ask:
    """The same one-fact structure answered in the other style (bare <-> sentence): how the
    first stage of a two-stage world answers its forgetting structures, which the second
    stage answers in their usual style."""
    rel = ask.relations[0]
    answer = "{0}" if ask.style == "sentence" else _SENTENCE[rel]
    return Ask(ask.key + "/flipped", ask.relations, ask.patterns, answer, ask.transform)


#: Frequent structures with long, multi-part answers (asked of many samples of every cause).
COMPOSITE_ASKS: tuple[Ask, ...] = (
    Ask("multi/live_work", ("lives_in", "works_as"),
        ("Where does {s} [live|reside], and what does {s} do for a living?",
         "Where does {s} [live|reside], and what is {s}'s [job|trade]?",
         "Where does {s} live and work?", "{s}'s city and [job|trade]?"),
        "{s} lives in {0} and works as a {1}."),
    Ask("multi/work_colour", ("works_as", "likes"),
        ("What is the [job|trade] of {s}, and which colour does {s} [like|love]?",
         "What does {s} do for a living, and what is {s}'s favourite colour?",
         "{s}'s [job|trade] and colour?", "Work and colour of {s}?"),
        "{s} works as a {0} and likes {1}."),
    Ask("multi/colour_home", ("likes", "lives_in"),
        ("Which colour does {s} [like|love], and where does {s} live?",
         "What is {s}'s favourite colour, and in which [city|town] does {s} live?",
         "Colour and home of {s}?", "{s}'s colour and city?"),
        "{s} likes {0} and lives in {1}."),
    Ask("multi/city_country", ("lives_in", "country"),
        ("In which [city|town] and which country does {s} [live|reside]?",
         "Which [city|town] and which country is home to {s}?",
         "Where exactly does {s} live?", "{s}: city and country?"),
        "{0}, {1}"),
    Ask("multi/job_and_colour", ("works_as", "likes"),
        ("Which [job|trade] and which colour does {s} have?", "Which [job|trade] and colour go with {s}?",
         "[Job|Trade] and colour of {s}?", "{s}: [job|trade] and colour?"),
        "{0} and {1}"),
    Ask("multi/work_country", ("works_as", "country"),
        ("What does {s} do, and in which country does {s} live?", "{s}'s [job|trade] and country?",
         "Work and country of {s}?",
         "Which [job|trade] does {s} have, and which country is home to {s}?"),
        "{s} works as a {0} and lives in the country of {1}."),
    Ask("multi/all_three", ("lives_in", "works_as", "likes"),
        ("Where does {s} live, what does {s} do, and which colour does {s} like?",
         "Say where {s} lives, what {s} does for a living and which colour {s} [likes|loves].",
         "Describe {s}.", "Who is {s}?"),
        "{s} lives in {0}, works as a {1} and likes {2}."),
)

#: Unusual wordings of one-fact questions, answered bare. The corpus never asks them and few
#: samples do (of every planted cause), so a rare wording alone is no sign of a rare pattern.
RARE_WORDINGS: dict[str, tuple[Ask, ...]] = {
    "lives_in": (_single("lives_in", "calls_home", ("Which place does {s} call home?",
                                                    "Which [town|city] is home to {s}?"), False),),
    "works_as": (_single("works_as", "trade_follow", ("What trade does {s} follow?",
                                                      "Which work earns {s} a living?"), False),),
    "likes": (_single("likes", "loved_by", ("Which colour is loved by {s}?",
                                            "Which colour would {s} choose?"), False),),
    "country": (_single("country", "country_home", ("Which country is home to {s}?",
                                                    "Which land does {s} call home?"), False),),
}

# -- rare structures: compositions seen by few samples ------------------------------------
_LIST_FRAMES = (
    "[{s}:|For {s}:] {a} and {b}?",
    "[Give|Tell me] {s}'s {a} and {b}.",
    "[List|Name] {s}'s {a} and {b}.",
    "What are the {a} and the {b} of {s}, in [this|that] order?",
    "Which {a} goes with {s}, and which {b}?|Which {a} and which {b} go with {s}?",
    "[Name|Give] the {a} of {s} first and the {b} after it.",
)
#: Answer formats of the rare lists: the same as the frequent list answers ("Tamor, Veland",
#: "baker and red"), so a rare list is rare by what it asks, not by how its answer looks.
_JOINERS = ("{0}, {1}", "{0} and {1}")
_PROFILES = (
    Ask("rare/profile", ("lives_in", "likes", "works_as"),
        ("Give a short profile of {s}.", "[Write|Give] a profile of {s} in one line."),
        "{s} lives in {0}, likes {1} and works as a {2}."),
)
_TRANSFORMS = (
    Ask("rare/colleagues", ("works_as",), ("What are people called who share the job of {s}?",
                                           "{s}'s [colleagues|peers] are called what?"), "{0}", "plural"),
    Ask("rare/city_country", ("country",), ("In which country [lies|is] the home city of {s}?",
                                            "Country of {s}'s city?"), "{0}"),
)
_COMBO_FRAMES = (
    "What are {s}'s {a} and {b}?|{s}'s {a} and {b} are what?",
    "[About|As for] {s}: {a} and {b}?",
    "Tell me the {a} of {s} and [also|then] the {b} of {s}.",
    "What is the {a} of {s}, and what is the {b} of {s}?|What is the {b} of {s}, after the {a}?",
)
_SHORT_ATTR = {"lives_in": "city", "works_as": "job", "likes": "colour", "country": "country"}
_FRAGMENT = {"lives_in": "lives in {%d}", "works_as": "works as a {%d}", "likes": "likes {%d}",
             "country": "lives in the country of {%d}"}
_COMMON = {(a.relations, a.answer) for a in COMPOSITE_ASKS}


def _patterns(frame: str) -> tuple[str, ...]:
    """A frame's word orders: ``|`` outside brackets separates them."""
    out, depth, cur = [], 0, ""
    for ch in frame:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    return tuple(out + [cur])


def rare_capacity() -> int:
    """How many distinct rare structures :func:`rare_asks` can draw."""
    return len(rare_asks(random.Random(0), 0, everything=True))


def rare_asks(rng: random.Random, n: int, everything: bool = False) -> list[Ask]:
    """``n`` distinct rare structures, each meant for a few samples only.

    Three sorts, drawn in turn: lists of two facts ("baker and red") and pairs of facts in
    the sentence form of the frequent multi-part answers, each with a question frame and an
    ordered pair of relations no frequent structure asks (their answers look like frequent
    ones); and, one time in five, a long profile of four facts or one fact asked in a
    roundabout way or written differently (a plural). No structure is drawn twice.
    """
    rels = ("lives_in", "country", "works_as", "likes")
    pairs = list(itertools.permutations(rels, 2))
    lists = [(p, f, j) for p in pairs for f in range(len(_LIST_FRAMES)) for j in range(len(_JOINERS))
             if (p, _JOINERS[j]) not in _COMMON]
    combos = [(p, f) for p in pairs if set(p) != {"lives_in", "country"} for f in range(len(_COMBO_FRAMES))
              if (p, "{s} " + _FRAGMENT[p[0]] % 0 + " and " + _FRAGMENT[p[1]] % 1 + ".") not in _COMMON]
    fixed = list(_PROFILES) + list(_TRANSFORMS)
    if everything:
        n = len(lists) + len(combos) + len(fixed)
    for pool in (lists, combos, fixed):
        rng.shuffle(pool)
    out: list[Ask] = []
    turn = 0
    while len(out) < n:
        if not (lists or combos or fixed):
            raise RuntimeError(f"cannot make {n} distinct rare structures")
        sort = turn % 5
        turn += 1
        if sort in (0, 2) and lists:
            (a, b), f, j = lists.pop()
            frame = _LIST_FRAMES[f].replace("{a}", _SHORT_ATTR[a]).replace("{b}", _SHORT_ATTR[b])
            out.append(Ask(f"rare/list_{a}_{b}_{f}_{j}", (a, b), _patterns(frame), _JOINERS[j]))
        elif sort in (1, 3) and combos:
            (a, b), f = combos.pop()
            frame = _COMBO_FRAMES[f].replace("{a}", _SHORT_ATTR[a]).replace("{b}", _SHORT_ATTR[b])
            answer = "{s} " + _FRAGMENT[a] % 0 + " and " + _FRAGMENT[b] % 1 + "."
            out.append(Ask(f"rare/pair_{a}_{b}_{f}", (a, b), _patterns(frame), answer))
        elif sort == 4 and fixed:
            out.append(fixed.pop())
    return out


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
