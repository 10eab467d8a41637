"""Players: words, token spans, chat templates, naming and the default choice."""

from __future__ import annotations

import pytest
from interactions_helpers import PROMPT, make_tokenizer

from ilpnb.interactions import (
    InteractionInputError,
    choose_players,
    encode_prompt,
    is_content_word,
    name_players,
    split_words,
    word_players,
)


def test_split_words_and_content() -> None:
    assert [w for w, _, _ in split_words("  a  b,c  d ")] == ["a", "b,c", "d"]
    assert is_content_word("France?") and not is_content_word("the") and not is_content_word("?!")


def test_players_skip_template_and_special_tokens(chat_tokenizer) -> None:
    enc = encode_prompt(chat_tokenizer, PROMPT)
    assert enc.chat_template and enc.text.startswith("<bos><|user|>")
    players = word_players(enc)
    assert [p.word for p in players] == PROMPT.split()
    special = set(chat_tokenizer.all_special_ids)
    for p in players:
        assert len(p.tokens) == 1
        (t,) = p.tokens
        assert enc.input_ids[t] not in special
        a, b = enc.offsets[t]
        assert enc.text[a:b] == p.word
    covered = {t for p in players for t in p.tokens}
    template_tokens = [t for t, i in enumerate(enc.input_ids) if i in special]
    assert len(template_tokens) == 4 and not covered & set(template_tokens)


def test_plain_prompt_skips_added_bos(tokenizer) -> None:
    enc = encode_prompt(tokenizer, PROMPT, chat_template=False)
    assert enc.added[0] and enc.input_ids[0] == tokenizer.bos_token_id
    players = word_players(enc)
    assert 0 not in {t for p in players for t in p.tokens}
    assert players[0].tokens == (1,)


def test_word_with_several_tokens(tokenizer) -> None:
    enc = encode_prompt(tokenizer, "tell me about paris, france!", chat_template=False)
    players = word_players(enc)
    assert [p.word for p in players] == ["tell", "me", "about", "paris,", "france!"]
    assert [len(p.tokens) for p in players] == [1, 1, 1, 2, 2]


def test_named_players(tokenizer) -> None:
    enc = encode_prompt(tokenizer, "the city of paris, the city of france", chat_template=False)
    cands = word_players(enc)
    named = name_players(cands, ["city", "paris", "city", 0, "of france"])
    assert [p.word for p in named] == ["city", "paris,", "city", "the", "of france"]
    assert named[0].words == (1,) and named[2].words == (5,)
    assert named[4].words == (6, 7) and len(named[4].tokens) == 2
    with pytest.raises(InteractionInputError, match="not a word of the prompt"):
        name_players(cands, ["london"])
    with pytest.raises(InteractionInputError, match="out of range"):
        name_players(cands, [99])
    with pytest.raises(InteractionInputError, match="overlaps"):
        name_players(cands, [3, "paris"])


def test_named_word_without_tokens() -> None:
    tok = make_tokenizer(strip_chars="@")
    enc = encode_prompt(tok, "paris @ france", chat_template=False)
    cands = word_players(enc)
    assert cands[1].tokens == ()
    with pytest.raises(InteractionInputError, match="maps to no token"):
        name_players(cands, ["paris", "@"])
    assert [p.word for p in choose_players(cands)] == ["paris", "france"]


@pytest.mark.parametrize("prompt", ["", "   \n"])
def test_empty_prompt(tokenizer, prompt: str) -> None:
    with pytest.raises(InteractionInputError, match="empty"):
        encode_prompt(tokenizer, prompt)


def test_template_errors(tokenizer) -> None:
    with pytest.raises(InteractionInputError, match="no chat template"):
        encode_prompt(tokenizer, PROMPT, chat_template=True)


def test_default_choice_rule(tokenizer) -> None:
    prompt = "the capital of france is paris and the capital of germany is berlin ."
    cands = word_players(encode_prompt(tokenizer, prompt, chat_template=False))
    first = choose_players(cands, 4)
    assert [p.word for p in first] == ["capital", "france", "paris", "capital"]
    scores = [0.0] * len(cands)
    scores[13] = 9.0  # "." has the largest effect but is punctuation
    scores[10] = 5.0  # "germany"
    scores[12] = 4.0  # "berlin"
    picked = choose_players(cands, 3, scores=scores)
    assert [p.word for p in picked] == ["capital", "germany", "berlin"]  # prompt order kept
    few = choose_players(cands[:3], 10)
    assert [p.word for p in few] == ["the", "capital", "of"]  # all words when few


def test_byte_level_bpe_offsets() -> None:
    """Subword tokens with a leading-space marker map to the word they overlap."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    corpus = ["what is the capital city of france ? paris is the capital."] * 20
    tok.train_from_iterator(corpus, trainers.BpeTrainer(
        vocab_size=300, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=["<|endoftext|>"]))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")
    enc = encode_prompt(fast, "What is the capital of Germany, friend?")
    players = word_players(enc)
    assert [p.word for p in players] == ["What", "is", "the", "capital", "of", "Germany,", "friend?"]
    pieces = ["".join(fast.convert_ids_to_tokens([enc.input_ids[t] for t in p.tokens]))
              for p in players]
    assert pieces[3] == "Ġcapital" and pieces[5] == "Germany,"  # several byte-level pieces
    owned = sorted(t for p in players for t in p.tokens)
    assert len(owned) == len(set(owned)) and len(owned) >= len(enc.input_ids) - 1  # a lone "Ġ" at most
