"""Players: the input words whose presence or absence defines an interaction game.

A *player* is one whitespace word of the user's prompt (or several consecutive words when a
user names a phrase), together with the positions of the tokens that encode it in the model
input. The model input may be the prompt wrapped in a chat template; players come only from
the user's text, so template text and special tokens (BOS, role markers, ...) are never
players and are never masked.

Token spans come from the fast tokenizer's offset mapping: a token belongs to the word whose
characters it overlaps (the first such word if it straddles two, which BPE tokenizers never
do for whitespace-separated words). Zero-width tokens (added by a post-processor) and tokens
outside the user's text are skipped.

Default choice (:func:`choose_players`) when the prompt has more than ``max_players`` words:
content words (not a stop-word, not punctuation-only) rank before the others; within each
group words rank by their single-word effect ``|v(N) - v(N \\ {i})|`` when scores are given
(``select="effect"``), else by position (``select="first"``); the top ``max_players`` are kept
and returned in prompt order. A prompt with at most ``max_players`` words uses all of them.
"""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_PLAYERS",
    "STOP_WORDS",
    "InteractionInputError",
    "Player",
    "PromptEncoding",
    "choose_players",
    "encode_prompt",
    "is_content_word",
    "name_players",
    "split_words",
    "word_players",
]

MAX_PLAYERS = 20
"""Hard limit on the number of players: the exact game has 2^n subsets."""

STOP_WORDS = frozenset(
    """a an the and or but nor so yet if then else of in on at by for with without to from
    into onto over under about above below between among through during before after since
    until up down out off is am are was were be been being do does did doing have has had
    having will would shall should can could may might must i me my mine we us our ours you
    your yours he him his she her hers it its they them their theirs this that these those
    there here who whom whose which what when where why how not no yes as than too very just
    also only own same such all any both each few more most other some""".split()
)
"""Small English stop-word list used to rank content words first."""

_PUNCT = string.punctuation + "“”‘’«»…–—"


class InteractionInputError(ValueError):
    """Bad input to the interaction computation (players, prompt, target or baseline)."""


@dataclass(frozen=True)
class PromptEncoding:
    """A prompt tokenized for the model, with character offsets.

    Attributes:
        prompt: The user's text.
        text: The full model input text (the prompt, or the prompt inside a chat template).
        prompt_offset: Character offset of ``prompt`` inside ``text``.
        input_ids: Token ids of ``text``.
        offsets: ``(start, end)`` character offsets of each token in ``text``.
        added: Whether each token was added by the tokenizer's post-processor.
        chat_template: Whether ``text`` came from the tokenizer's chat template.
    """

    prompt: str
    text: str
    prompt_offset: int
    input_ids: tuple[int, ...]
    offsets: tuple[tuple[int, int], ...]
    added: tuple[bool, ...]
    chat_template: bool

    @property
    def seq_len(self) -> int:
        """Number of tokens of the model input."""
        return len(self.input_ids)


@dataclass(frozen=True)
class Player:
    """One input variable of the game.

    Attributes:
        word: The player's text as it appears in the prompt.
        words: Indices of the whitespace words it covers (one, or several for a phrase).
        char_span: ``(start, end)`` character span in the prompt.
        tokens: Positions (in ``PromptEncoding.input_ids``) of the tokens encoding it.
    """

    word: str
    words: tuple[int, ...]
    char_span: tuple[int, int]
    tokens: tuple[int, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"word": self.word, "words": list(self.words), "char_span": list(self.char_span),
                "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Player:
        """Inverse of :meth:`to_dict`."""
        return cls(d["word"], tuple(d["words"]), tuple(d["char_span"]), tuple(d["tokens"]))


def split_words(prompt: str) -> list[tuple[str, int, int]]:
    """Split a prompt into whitespace words.

    Args:
        prompt: The user's text.

    Returns:
        ``(word, start, end)`` for each maximal run of non-whitespace characters.
    """
    return [(m.group(), m.start(), m.end()) for m in re.finditer(r"\S+", prompt)]


def is_content_word(word: str) -> bool:
    """Whether a word is a content word: not punctuation-only and not a stop-word."""
    core = word.strip(_PUNCT).lower()
    return bool(core) and any(c.isalnum() for c in core) and core not in STOP_WORDS


def encode_prompt(tokenizer: Any, prompt: str, chat_template: bool | None = None) -> PromptEncoding:
    """Tokenize a prompt (optionally inside the chat template) keeping character offsets.

    Args:
        tokenizer: A Hugging Face *fast* tokenizer (offset mapping is needed).
        prompt: The user's text.
        chat_template: Wrap the prompt as a user turn with the tokenizer's chat template and
            a generation prompt; ``None`` wraps it when the tokenizer has a template.

    Returns:
        The encoding of the model input.

    Raises:
        InteractionInputError: Empty prompt, a slow tokenizer, a missing chat template, or a
            template that does not contain the prompt verbatim.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise InteractionInputError("the prompt is empty: interactions need at least 2 words")
    if not getattr(tokenizer, "is_fast", False):
        raise InteractionInputError(
            "a fast tokenizer (PreTrainedTokenizerFast) is needed: players are mapped to "
            "tokens through its offset mapping")
    has_template = bool(getattr(tokenizer, "chat_template", None))
    use_template = has_template if chat_template is None else bool(chat_template)
    if use_template and not has_template:
        raise InteractionInputError("chat_template=True but the tokenizer has no chat template")
    if use_template:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True)
        offset = text.find(prompt)
        if offset < 0:
            raise InteractionInputError(
                "the chat template changes the prompt text (it is not found verbatim in the "
                "templated input); pass chat_template=False or a stripped prompt")
    else:
        text, offset = prompt, 0
    enc = tokenizer(text, add_special_tokens=not use_template, return_offsets_mapping=True,
                    return_special_tokens_mask=True)
    ids = tuple(int(i) for i in enc["input_ids"])
    if not ids:
        raise InteractionInputError("the prompt encodes to no tokens")
    offsets = tuple((int(a), int(b)) for a, b in enc["offset_mapping"])
    added = tuple(bool(s) and a == b for s, (a, b) in zip(enc["special_tokens_mask"], offsets))
    return PromptEncoding(prompt, text, offset, ids, offsets, added, use_template)


def word_players(encoding: PromptEncoding) -> list[Player]:
    """One candidate player per whitespace word, with its token positions.

    Args:
        encoding: The tokenized prompt.

    Returns:
        A player for every word of the prompt, in order; a word that maps to no token gets
        an empty ``tokens`` tuple (it cannot be a player).
    """
    words = split_words(encoding.prompt)
    owner = [-1] * len(encoding.prompt)  # char -> word index
    for w, (_, a, b) in enumerate(words):
        owner[a:b] = [w] * (b - a)
    toks: list[list[int]] = [[] for _ in words]
    lo, hi = encoding.prompt_offset, encoding.prompt_offset + len(encoding.prompt)
    for t, (a, b) in enumerate(encoding.offsets):
        if b <= a or encoding.added[t]:
            continue
        a, b = max(a, lo) - lo, min(b, hi) - lo
        hit = next((owner[c] for c in range(a, b) if owner[c] >= 0), -1) if a < b else -1
        if hit >= 0:
            toks[hit].append(t)
    return [Player(w, (i,), (a, b), tuple(toks[i])) for i, (w, a, b) in enumerate(words)]


def _merge(cands: Sequence[Player], first: int, last: int) -> Player:
    span = cands[first: last + 1]
    a, b = span[0].char_span[0], span[-1].char_span[1]
    return Player(" ".join(p.word for p in span), tuple(range(first, last + 1)), (a, b),
                  tuple(t for p in span for t in p.tokens))


def name_players(candidates: Sequence[Player],
                 names: Sequence[str | int | Player]) -> list[Player]:
    """Players named by the user.

    Args:
        candidates: Output of :func:`word_players`.
        names: Each a word index (int), a word / phrase (str), or a :class:`Player` of an
            earlier result (its words are matched again, so tokens follow this tokenizer).
            A string matches the next unused occurrence of the word, exactly or with
            surrounding punctuation stripped; a phrase (several words separated by spaces)
            matches consecutive words.

    Returns:
        The named players, in the order given.

    Raises:
        InteractionInputError: A name that is not in the prompt, a repeated word, or a word
            that maps to no token.
    """
    words = [p.word for p in candidates]
    used: set[int] = set()
    out: list[Player] = []
    for name in names:
        if isinstance(name, Player):  # e.g. from an earlier result: same words, new tokens
            a, b = (name.words[0], name.words[-1]) if name.words else (-1, -1)
            same = 0 <= a <= b < len(words) and " ".join(words[a:b + 1]) == name.word
            name = (a if a == b else " ".join(words[a:b + 1])) if same else name.word
        if isinstance(name, bool) or not isinstance(name, (int, str)):
            raise InteractionInputError(
                f"a player must be a word (str) or a word index (int), got {name!r}")
        if isinstance(name, int):
            if not 0 <= name < len(words):
                raise InteractionInputError(
                    f"word index {name} is out of range: the prompt has {len(words)} words")
            first = last = name
        else:
            parts = name.split()
            if not parts:
                raise InteractionInputError("an empty string was named as a player")
            first = _find(words, parts, used)
            if first < 0:
                if _find(words, parts, set()) >= 0:
                    raise InteractionInputError(f"player {name!r} overlaps another named player")
                raise InteractionInputError(
                    f"player {name!r} is not a word of the prompt; the words are {words}")
            last = first + len(parts) - 1
        idx = set(range(first, last + 1))
        if idx & used:
            raise InteractionInputError(f"player {name!r} overlaps another named player")
        used |= idx
        player = _merge(candidates, first, last)
        if not player.tokens:
            raise InteractionInputError(
                f"player {name!r} maps to no token: the tokenizer drops it or it lies outside "
                "the model input")
        out.append(player)
    return out


def _find(words: Sequence[str], parts: Sequence[str], used: set[int]) -> int:
    k = len(parts)
    for strip in (False, True):
        for i in range(len(words) - k + 1):
            if used & set(range(i, i + k)):
                continue
            window = words[i:i + k]
            if strip:
                window = [w.strip(_PUNCT) for w in window]
                target = [p.strip(_PUNCT) for p in parts]
            else:
                target = list(parts)
            if window == target:
                return i
    return -1


def choose_players(candidates: Sequence[Player], max_players: int = 10,
                   scores: Sequence[float] | None = None) -> list[Player]:
    """Default players: all words, or the most salient ``max_players`` of them.

    Args:
        candidates: Output of :func:`word_players`; words without tokens are skipped.
        max_players: How many players to keep at most.
        scores: Optional single-word effects, one per candidate (larger = more salient).

    Returns:
        The chosen players in prompt order (see the module docstring for the rule).
    """
    usable = [i for i, p in enumerate(candidates) if p.tokens]
    if len(usable) <= max_players:
        return [candidates[i] for i in usable]

    def rank(i: int) -> tuple[int, float, int]:
        s = -abs(float(scores[i])) if scores is not None else 0.0
        return (0 if is_content_word(candidates[i].word) else 1, s, i)

    keep = sorted(sorted(usable, key=rank)[:max_players])
    return [candidates[i] for i in keep]
