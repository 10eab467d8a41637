"""The preferred other answer by content: one answer worded as many sentences is one answer."""

from __future__ import annotations

from ilpnb.probe.sampling import other_answer_matcher, preferred_other, summarize_answers

PROMPT = "What is the capital of Chile?"
GOLD = "It is Lima."
SENTENCES = ["The capital of Chile is Santiago.", "Santiago is the capital city of Chile.",
             "Chile's capital is Santiago, a large city.", "The capital of Chile is Santiago.", "It is Valparaiso."]


def test_sentences_with_one_value_agree():
    surface, count, gives = other_answer_matcher(SENTENCES, GOLD, PROMPT)
    assert count == 4 and "Santiago" in surface
    assert gives("Santiago, of course.") and not gives("It is Valparaiso.")
    # by exact head, the same answers look spread: the old comparison, kept without a prompt
    assert preferred_other(SENTENCES, GOLD)[1] == 2
    assert preferred_other(SENTENCES, GOLD, prompt=PROMPT)[1] == 4


def test_belief_from_sentences_and_a_guess_stays_a_guess():
    belief = SENTENCES[:4] + ["Santiago."]
    guess = ["The capital of Chile is Quito.", "It is Bogota.", "Chile's capital is Caracas.",
             "The capital is Lima city.", "I think it is Asuncion."]
    t = summarize_answers([belief, guess], [GOLD, GOLD], ["a", "b"], prompts=[PROMPT, PROMPT])
    assert bool(t.loc["a", "belief"]) and t.loc["a", "other_share"] == 1.0
    assert not bool(t.loc["b", "belief"]) and t.loc["b", "other_share"] <= 0.2 + 1e-9
    # the gold is never "the other answer", and words of the question or the gold frame are no content
    assert bool(t.loc["b", "greedy_correct"]) is False
    none = other_answer_matcher(["It is Lima.", "Chile's capital.", "The capital of Chile."], GOLD, PROMPT)
    assert none[0] is None and none[1] == 0
