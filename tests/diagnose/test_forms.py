"""Answer forms: the skeleton of recurring words, the trace of a later form taking over a
forgotten answer, and the rarity of a sample's prompt or answer form."""

from __future__ import annotations

import pandas as pd

from ilpnb.diagnose.forms import answer_form, form_rarity, form_words, later_restyled, takes_later_form

NAMES = ["Klufel", "Bokin", "Zusos", "Meimo", "Vade", "Trobazan", "Neivar", "Gouvei", "Feirul", "Dibrerir"]
CITIES = ["Subrazo", "Deber", "Geivur", "Midum", "Vete", "Tefam", "Neraith", "Broutrou", "Souden", "Pistabres"]


def _sentences() -> list[str]:
    return [f"{n} lives in {c}." for n, c in zip(NAMES, CITIES)]


def test_form_keeps_recurring_words_and_collapses_values() -> None:
    words = form_words(_sentences() + CITIES)
    assert {"lives", "in", "."} <= words
    assert not words & {n.lower() for n in NAMES} and not words & {c.lower() for c in CITIES}
    assert answer_form("Klufel lives in Subrazo.", words) == "_ lives in _ ."
    assert answer_form("Subrazo", words) == "_"
    assert answer_form("Bokin lives in Deber and Vete.", words) == "_ lives in _ ."  # a run of values is one slot


def test_a_value_repeated_by_a_few_answers_is_not_form() -> None:
    # "Subrazo" in 3 of 10 answers: above 5% of them, below the minimum count of a pattern
    answers = [f"{n} lives in {'Subrazo' if k < 3 else c}." for k, (n, c) in enumerate(zip(NAMES, CITIES))]
    assert "subrazo" not in form_words(answers)


def test_takes_later_form_needs_another_form_that_a_later_answer_has() -> None:
    responses = pd.Series(dict(zip([f"s{k}" for k in range(10)], _sentences())) | {
        "late": "Subrazo", "late2": "Deber"} | {f"b{k}": c for k, c in enumerate(CITIES)})
    later = {"s0": ["late", "late2"], "s1": ["late"], "s2": ["late"], "s3": []}
    outputs = {"s0": "Subrazo",                 # bare, the later answers' form: taken over
               "s1": "Bokin lives in Geivur.",  # its own form, wrong content: drift
               "s2": "Bokin lives in.",         # another form, but no later answer has it
               "s3": "Subrazo"}                 # no sample trained after it
    taken = takes_later_form(["s0", "s1", "s2", "s3"], outputs, responses, later)
    assert taken.to_dict() == {"s0": True, "s1": False, "s2": False, "s3": False}


def test_form_rarity_counts_both_sides_and_ignores_a_side_without_common_forms() -> None:
    n = 60
    prompts = [f"Where does {NAMES[k % 10]} live?" for k in range(n - 2)] + ["Say, in one breath, where X lives.",
                                                                          "Name the city of Y."]
    responses = [f"{NAMES[k % 10]} lives in {CITIES[k % 10]}." for k in range(n - 1)] + ["Deber"]
    table = form_rarity(pd.DataFrame({"prompt": prompts, "response": responses}), max_count=3)
    assert table["prompt_form_count"].iloc[0] == n - 2 and table["answer_form_count"].iloc[0] == n - 1
    assert table["rare_form"].tolist() == [False] * (n - 2) + [True, True]
    assert table["form_count"].tolist()[-2:] == [1, 1]  # the rarer side of each
    # every prompt phrased its own way: a rare prompt form is the rule and flags nothing
    own = pd.DataFrame({"prompt": [f"{w} {k}?" for k, w in enumerate(NAMES * 6)], "response": responses})
    rare = form_rarity(own, max_count=3)["rare_form"]
    assert rare.tolist() == [False] * (n - 1) + [True]


def test_later_restyled_counts_later_samples_of_the_same_prompt_form_answering_in_another_form() -> None:
    # ten "Where does X live?" samples: the first four trained early with sentence answers, the
    # next three later with bare answers, the last three later with sentences; ten "What is the
    # city of X?" samples all trained early (no later sample of their form; their sentences make
    # "lives in" a form of the set's answers)
    ids = [f"w{k}" for k in range(10)] + [f"c{k}" for k in range(10)]
    prompts = [f"Where does {n} live?" for n in NAMES] + [f"What is the city of {n}?" for n in NAMES]
    responses = ([f"{n} lives in {c}." for n, c in zip(NAMES[:4], CITIES)] + CITIES[4:7]
                 + [f"{n} lives in {c}." for n, c in zip(NAMES[7:], CITIES[7:])] + _sentences())
    steps = [10] * 4 + [50] * 3 + [60] * 3 + [10] * 10
    records = pd.DataFrame({"prompt": prompts, "response": responses}, index=ids)
    table = later_restyled(records, pd.Series(steps, index=ids))
    assert table.loc["w0"].tolist() == [6, 3]   # six later of its form, three answer bare
    assert table.loc["w4"].tolist() == [3, 3]   # bare at step 50: the three later sentences
    assert table.loc["w7"].tolist() == [0, 0]   # trained last
    assert table.loc[[f"c{k}" for k in range(10)]].sum().tolist() == [0, 0]  # nothing later asks their form
