"""compute_interactions end to end: result object, JSON, tables, bad input, warning."""

from __future__ import annotations

import json

import numpy as np
import pytest
from interactions_helpers import PROMPT, make_tokenizer

import ilpnb.interactions as ia
from ilpnb.interactions import (
    AndOrConfig,
    BaselineConfig,
    InteractionInputError,
    InteractionResult,
    ValueFunction,
    and_reconstruct,
    compute_interactions,
)

FAST = AndOrConfig(iterations=200)
COUNT = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen".split()


def test_public_api_is_complete() -> None:
    for name in ia.__all__:
        assert hasattr(ia, name), name
    assert len(set(ia.__all__)) == len(ia.__all__)


@pytest.mark.parametrize("arch", ["llama", "qwen2", "gpt2"])
def test_and_or_end_to_end(arch, request, chat_tokenizer, tmp_path) -> None:
    model = request.getfixturevalue(arch)
    res = compute_interactions(model, chat_tokenizer, PROMPT, and_or_config=FAST, batch_size=50)
    assert res.mode == "and-or" and res.n_players == 8 and res.words == PROMPT.split()
    assert res.meta["batch_size"] == 50 and res.meta["chat_template"]
    assert res.model_input.startswith("<bos><|user|>")
    np.testing.assert_allclose(res.reconstruct(), res.values + res.q, atol=1e-5)
    assert np.abs(res.q).max() <= res.q_bound + 1e-12
    back = InteractionResult.load(res.save(tmp_path / "r.json"))
    for key in ("values", "and_values", "or_values", "p", "q"):
        np.testing.assert_array_equal(getattr(back, key), getattr(res, key))
    assert back.players == res.players and back.target_ids == res.target_ids
    assert json.loads((tmp_path / "r.json").read_text())["format"] == 1


def test_and_mode_and_tables(llama, tokenizer) -> None:
    res = compute_interactions(llama, tokenizer, PROMPT, ["capital", "city", "france", "?"],
                               and_or=False, chat_template=False)
    assert res.mode == "and" and res.words == ["capital", "city", "france", "?"]
    np.testing.assert_allclose(and_reconstruct(res.and_values), res.values, atol=1e-9)
    np.testing.assert_allclose(res.reconstruct(), res.values, atol=1e-9)
    long = res.to_frame()
    assert len(long) == 2 * 16 and set(long["kind"]) == {"and", "or"}
    assert list(long.columns) == ["subset", "words", "order", "kind", "value", "salient", "v"]
    row = long[(long["kind"] == "and") & (long["subset"] == (0, 2))].iloc[0]
    assert row["order"] == 2 and row["words"] == "capital & france"
    assert row["value"] == res.and_values[0b101] and row["v"] == res.values[0b101]
    wide = res.to_frame(wide=True)
    assert len(wide) == 16 and {"and_value", "or_value", "and_salient"} <= set(wide.columns)
    assert not wide.loc[0, "and_salient"]  # the empty set is never salient


def test_learned_baseline_and_response_target(qwen2, chat_tokenizer) -> None:
    res = compute_interactions(qwen2, chat_tokenizer, PROMPT, ["capital", "city", "france"],
                               baseline="learned", target="paris", and_or=False,
                               baseline_config=BaselineConfig(steps=3, eval_triples=4))
    assert res.baseline == "learned" and res.target_kind == "response"
    assert res.target_text == "paris" and "baseline_fit" in res.meta


def test_default_choice_with_many_words(llama, tokenizer) -> None:
    prompt = "tell me about the famous old tower in paris , the eiffel tower , who built it ?"
    res = compute_interactions(llama, tokenizer, prompt, and_or=False, chat_template=False,
                               max_players=5)
    assert res.n_players == 5
    assert all(ia.is_content_word(w) for w in res.words)
    order = [p.words[0] for p in res.players]
    assert order == sorted(order)
    first = compute_interactions(llama, tokenizer, prompt, and_or=False, chat_template=False,
                                 max_players=5, select="first")
    assert first.words == ["tell", "famous", "old", "tower", "paris"]


@pytest.mark.parametrize("players, match", [
    (["france"], "at least 2 players"),
    (["london", "france"], "not a word of the prompt"),
    ([], "at least 2 players"),
])
def test_bad_players(llama, tokenizer, players, match) -> None:
    with pytest.raises(InteractionInputError, match=match):
        compute_interactions(llama, tokenizer, PROMPT, players)


def test_bad_input(llama, tokenizer) -> None:
    assert issubclass(InteractionInputError, ValueError)
    with pytest.raises(InteractionInputError, match="empty"):
        compute_interactions(llama, tokenizer, "  ")
    with pytest.raises(InteractionInputError, match="at least 2 players"):
        compute_interactions(llama, tokenizer, "paris")
    with pytest.raises(InteractionInputError, match="more than the limit of 20"):
        compute_interactions(llama, tokenizer, " ".join(COUNT * 2), max_players=21)
    with pytest.raises(InteractionInputError, match="unknown baseline"):
        compute_interactions(llama, tokenizer, PROMPT, baseline="ones")
    with pytest.raises(InteractionInputError, match="list of words"):
        compute_interactions(llama, tokenizer, PROMPT, "france")
    tok = make_tokenizer(strip_chars="@")
    with pytest.raises(InteractionInputError, match="maps to no token"):
        compute_interactions(llama, tok, "paris @ france", ["paris", "@"])


def test_warns_before_starting_above_16_players(llama, tokenizer, monkeypatch) -> None:
    class Stop(Exception):
        pass

    def refuse(self, progress=False):
        raise Stop

    monkeypatch.setattr(ValueFunction, "all_subsets", refuse)
    prompt = " ".join(COUNT + ["fifteen", "sixteen", "seventeen"])
    with pytest.warns(UserWarning, match=r"2\^17"), pytest.raises(Stop):
        compute_interactions(llama, tokenizer, prompt, max_players=17)
    with pytest.warns(UserWarning, match="17 players"):
        ia.check_players(17)


def test_players_of_an_earlier_result_are_reused(llama, qwen2, chat_tokenizer, tokenizer) -> None:
    prompt = "the city of paris , the city of france"
    first = compute_interactions(llama, chat_tokenizer, prompt, [5, "city", "of france"],
                                 and_or=False)
    again = compute_interactions(qwen2, tokenizer, prompt, first.players, and_or=False,
                                 chat_template=False)
    assert [p.words for p in again.players] == [(5,), (1,), (7, 8)]
    assert [p.tokens for p in again.players] != [p.tokens for p in first.players]  # new input
