"""The form of an answer, and whether a forgotten sample's final answer took a later one.

Left-side forgetting by interference has a visible trace: samples trained later that ask
similar questions with answers of another form (a bare value instead of a sentence, a new
phrasing) pull the earlier sample's answer into *their* form. Forgetting by plain drift
leaves the form alone and loses the content. The form of an answer is its skeleton: the
words that recur across the SFT set's answers (form words, found in the data, no fixed list)
kept, every run of other words collapsed into one slot ``_``. "Klufel lives in Subrazo." and
"Bokin lives in Deber." share the form ``_ lives in _ .``; "Subrazo" has the form ``_``.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping

import pandas as pd

from ilpnb.diagnose.thresholds import FORM_WORD_MIN, FORM_WORD_SHARE

__all__ = ["form_words", "answer_form", "takes_later_form", "later_restyled", "form_rarity"]

_TOKEN = re.compile(r"\w+|[^\w\s]")


def _tokens(text: object) -> list[str]:
    return _TOKEN.findall(str(text).lower()) if isinstance(text, str) else []


def form_words(responses: Iterable[object]) -> frozenset[str]:
    """Words (and punctuation) that recur across answers: used by at least ``FORM_WORD_SHARE``
    of them and by at least ``FORM_WORD_MIN``."""
    answers = [set(_tokens(r)) for r in responses]
    counts = Counter(t for a in answers for t in a)
    need = max(FORM_WORD_MIN, FORM_WORD_SHARE * len(answers))
    return frozenset(t for t, c in counts.items() if c >= need)


def answer_form(text: object, words: frozenset[str]) -> str:
    """The skeleton of an answer: form words kept, each run of other words one ``_``."""
    out: list[str] = []
    for t in _tokens(text):
        t = t if t in words else "_"
        if not (t == "_" and out and out[-1] == "_"):
            out.append(t)
    return " ".join(out)


def takes_later_form(ids: Iterable[str], outputs: Mapping[str, object], responses: pd.Series,
                     later: Mapping[str, list[str]]) -> pd.Series:
    """Per sample: its final output has another form than its own answer, and the form of the
    answer of one of the samples trained after it (``later``: id -> the ids of its likely
    interferers). False for a sample with no later samples or no output."""
    words = form_words(responses.tolist())
    out = {}
    for i in ids:
        o = outputs.get(i)
        if not isinstance(o, str) or not o.strip() or not later.get(i):
            out[i] = False
            continue
        f = answer_form(o, words)
        out[i] = f != answer_form(responses.get(i), words) and any(
            f == answer_form(responses.get(j), words) for j in later[i])
    return pd.Series(out, dtype=bool)


def later_restyled(records: pd.DataFrame, last_trained: pd.Series) -> pd.DataFrame:
    """Per sample, the data-side precondition of interference: of the samples trained after its
    last training step that ask in the same prompt form, how many answer in another answer form
    (the same kind of question retrained with another kind of answer, as a later stage in a new
    style does). Read from the records and the schedule alone.

    Args:
        records: ``prompt`` and ``response``, indexed by id.
        last_trained: id -> the last optimizer step that trained the sample.

    Returns:
        Indexed like ``records``: ``later_same_prompt`` and ``later_restyled`` (counts).
    """
    prompt_words = form_words(records["prompt"].tolist())
    prompt_forms = records["prompt"].map(lambda x: answer_form(x, prompt_words))
    words = form_words(records["response"].tolist())
    answer_forms = records["response"].map(lambda x: answer_form(x, words))
    steps = last_trained.reindex(records.index).fillna(0).astype(int)
    same, restyled = pd.Series(0, index=records.index), pd.Series(0, index=records.index)
    for _, ids in prompt_forms.groupby(prompt_forms).groups.items():
        st, af = steps[ids].to_numpy(), answer_forms[ids].to_numpy()
        later = st[None, :] > st[:, None]  # row i: the group's samples trained after i's last step
        same[ids] = later.sum(axis=1)
        restyled[ids] = (later & (af[None, :] != af[:, None])).sum(axis=1)
    return pd.DataFrame({"later_same_prompt": same, "later_restyled": restyled})


def form_rarity(records: pd.DataFrame, max_count: float) -> pd.DataFrame:
    """How many samples share each sample's answer form and prompt form, and whether either
    is rare: held by at most ``max_count`` samples. A side counts only where most samples
    share their form with more than ``max_count`` others — in a set where nearly every
    prompt is phrased its own way, a rare prompt form is the rule and says nothing.

    Returns: indexed like ``records``: ``answer_form_count``, ``prompt_form_count``,
    ``form_count`` (the smaller count of the sides that count; the answer's where none does)
    and ``rare_form`` (``form_count`` at most ``max_count``, on a side that counts).
    """
    out = pd.DataFrame(index=records.index)
    counted = []
    for side, name in (("response", "answer_form_count"), ("prompt", "prompt_form_count")):
        words = form_words(records[side].tolist())
        forms = records[side].map(lambda x: answer_form(x, words))
        out[name] = forms.map(forms.value_counts()).astype(int)
        if (out[name] <= max_count).mean() < 0.5:
            counted.append(name)
    out["form_count"] = out[counted].min(axis=1) if counted else out["answer_form_count"]
    out["rare_form"] = (out["form_count"] <= max_count) & bool(counted)
    return out
