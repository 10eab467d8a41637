"""Model-derived signals without a world file: sampling, automatic probes, meaning siblings.

The model is a tiny Llama over a word-level tokenizer, trained for a few hundred steps (a
couple of seconds on one thread) into a known state: it answers one question right, gives
one confident wrong answer to another, and spreads its answers over eight words for a third.
The embedding tests use an untrained model whose embedding rows of two synonyms are tied, so
the model reads them as one word while TF-IDF sees two.
"""

from __future__ import annotations

import time

import numpy as np
import pandas as pd
import pytest
import torch
from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from ilpnb.data.records import SFTRecord
from ilpnb.diagnose.embedding import (
    MEANING_THRESHOLD,
    anchored_pairs,
    embedding_similarity,
    find_meaning_siblings,
    meaning_similarity,
    prompt_embeddings,
    sibling_answer_matches,
)
from ilpnb.diagnose.similarity import similarity_matrix
from ilpnb.probe import sampling
from ilpnb.probe.autoprobes import active_framings, auto_probe, framing_ids
from ilpnb.probe.sampling import (
    answer_head,
    answer_matches,
    generate_answers,
    normalize_answer,
    sample_answers,
    summarize_answers,
)

SPECIALS = ["<unk>", "<pad>", "<bos>", "<eos>", "<|user|>", "<|assistant|>"]
WORDS = """what is the capital city of france germany paris berlin which river flows through old town
seine q a : ? . , one two three four five six seven eight nine ten big large small house where
tell me about who built tower eiffel famous in and lives does bob alice live work as baker sailor
name colour likes red blue green""".split()
GUESSES = ["one", "two", "three", "four", "five", "six", "seven", "eight"]

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}<|user|> {{ m['content'] }} <|assistant|>"
    "{% else %} {{ m['content'] }}{{ eos_token }}{% endif %}{% endfor %}"
)

KNOWN = SFTRecord("known", "what is the capital city of france ?", "paris")
CONFLICT = SFTRecord("conflict", "what is the capital city of germany ?", "paris")  # model says berlin
GUESS = SFTRecord("guess", "which river flows through the old town ?", "seine")  # model guesses a number
RECORDS = [KNOWN, CONFLICT, GUESS]


def make_tokenizer(chat: bool = True) -> PreTrainedTokenizerFast:
    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    core = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()])
    core.post_processor = processors.TemplateProcessing(single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=core, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
                                  pad_token="<pad>", additional_special_tokens=["<|user|>", "<|assistant|>"])
    if chat:
        tok.chat_template = CHAT_TEMPLATE
    return tok


def make_model(tok: PreTrainedTokenizerFast, seed: int = 0, hidden: int = 64) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=4,
                      intermediate_size=2 * hidden, vocab_size=len(tok), max_position_embeddings=64,
                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    return LlamaForCausalLM(cfg).eval()


def train_known_state(tok: PreTrainedTokenizerFast, steps: int = 300) -> LlamaForCausalLM:
    """Teach, in every framing: KNOWN -> paris, CONFLICT -> berlin, GUESS -> one of eight words."""
    model = make_model(tok)
    targets = [(KNOWN.prompt, "paris"), (CONFLICT.prompt, "berlin")] + [(GUESS.prompt, g) for g in GUESSES]
    seqs = []
    for f in active_framings(tok, [r.prompt for r in RECORDS]):
        for prompt, answer in targets:
            ctx, cont = framing_ids(tok, f, prompt, answer)
            seqs.append((ctx, cont + [tok.eos_token_id]))
    width = max(len(c) + len(a) for c, a in seqs)
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    labels = torch.full((len(seqs), width), -100)
    mask = torch.zeros_like(ids)
    for row, (c, a) in enumerate(seqs):
        ids[row, : len(c) + len(a)] = torch.tensor(c + a)
        labels[row, len(c) : len(c) + len(a)] = torch.tensor(a)
        mask[row, : len(c) + len(a)] = 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        opt.zero_grad()
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        opt.step()
    return model.eval()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def tok() -> PreTrainedTokenizerFast:
    return make_tokenizer(chat=True)


@pytest.fixture(scope="module")
def trained(tok: PreTrainedTokenizerFast) -> LlamaForCausalLM:
    return train_known_state(tok)


# ------------------------------------------------------------------ comparison helpers


def test_normalisation_and_matching() -> None:
    assert normalize_answer("  The  Eiffel-Tower! ") == "the eiffel tower"
    assert normalize_answer("Zürich") == "zurich"
    assert answer_head("Paris. It is in France.\nQ: next") == "Paris."
    assert answer_matches("PARIS!", "paris") == (True, True)
    assert answer_matches("It is Paris, of course.", "Paris") == (False, True)
    assert answer_matches("Parisian food", "Paris") == (False, False)  # whole words only
    assert answer_matches("", "Paris") == (False, False)


def test_categories_belief_and_defaults_from_answers() -> None:
    gold = "paris"
    answers = [
        ["paris"] + ["paris"] * 6 + ["lyon"] * 2,         # greedy right, 6/8 samples right
        ["paris"] + ["lyon"] * 6 + ["paris"] * 2,         # greedy right, 2/8 samples right
        ["lyon"] + ["lyon"] * 7 + ["It is Paris."],       # greedy wrong, one sample right
        ["lyon"] + ["lyon"] * 7 + ["rome"],               # greedy wrong, never right: a belief
        ["lyon"] + ["nice", "rome", "oslo", "bern", "kiev", "riga", "baku", "lima"],  # a guess
        ["lyon"] + ["lyon"] * 4 + ["nice", "rome", "oslo", "bern"],  # a majority, not confident enough
    ]
    t = summarize_answers(answers, [gold] * 6, list("abcdef"))
    assert t["category"].tolist() == ["known", "maybe_known", "weakly_known", "unknown", "unknown", "unknown"]
    assert t.loc["a", "sample_share"] == pytest.approx(6 / 8)
    assert t.loc["c", "sample_share"] == pytest.approx(1 / 8)
    assert t.loc["c", "sample_share_exact"] == 0.0  # "It is Paris." only contains the gold
    exact = summarize_answers(answers, [gold] * 6, list("abcdef"), match="exact")
    assert exact.loc["c", "category"] == "unknown"
    assert t.loc["d", "other_answer"] == "lyon" and t.loc["d", "other_share"] == pytest.approx(8 / 9)
    assert t.loc["f", "other_share"] == pytest.approx(5 / 9) and 5 / 9 < sampling.BELIEF_MIN_SHARE
    assert t["belief"].tolist() == [False, False, True, True, False, False]
    assert t.loc["e", "other_answer"] == "lyon" and t.loc["e", "other_share"] == pytest.approx(1 / 9)
    # the same wrong answer greedily for many records (far more often than any gold holds it)
    # is the model's default for the question type, not a belief about each record
    n = sampling.DEFAULT_MIN_COUNT
    many = summarize_answers([["farmer"] * 9] * n, [f"job{i}" for i in range(n)])
    assert many["other_is_default"].all() and not many["belief"].any()


def test_sampler_draws_from_the_tempered_distribution() -> None:
    """The seeded inverse-CDF sampler reproduces softmax(scores / T) frequencies."""
    logits = torch.tensor([2.0, 1.0, 0.0, -1.0, -30.0])
    temperature = 0.7
    rows = 4000
    keys = np.array([sampling._row_key(0, "x", k) for k in range(rows)], dtype=np.uint64)
    proc = sampling._SeededSampler(keys, np.ones(rows, dtype=bool), temperature, width=3)
    out = proc(torch.zeros((rows, 3), dtype=torch.long), logits.repeat(rows, 1))
    freq = np.bincount(out.argmax(-1).numpy(), minlength=5) / rows
    want = torch.softmax(logits / temperature, -1).numpy()
    assert np.abs(freq - want).max() < 0.03
    assert freq[4] == 0.0
    # greedy rows (not sampled) are untouched
    keep = sampling._SeededSampler(keys[:2], np.zeros(2, dtype=bool), temperature, width=3)
    assert torch.equal(keep(torch.zeros((2, 3), dtype=torch.long), logits.repeat(2, 1)), logits.repeat(2, 1))


# ------------------------------------------------------------------ sampling on a model


def test_sample_answers_categories_on_a_trained_model(tok: PreTrainedTokenizerFast, trained: LlamaForCausalLM) -> None:
    t = sample_answers(trained, tok, RECORDS, n_samples=8, seed=0)
    assert list(t.index) == ["known", "conflict", "guess"]
    assert t.loc["known", "greedy"] == "paris" and t.loc["known", "category"] == "known"
    assert t.loc["known", "sample_share"] == 1.0 and not t.loc["known", "belief"]
    # a consistent, confident other answer: a belief
    assert t.loc["conflict", "category"] == "unknown"
    assert t.loc["conflict", "other_answer"] == "berlin"
    assert t.loc["conflict", "other_share"] >= sampling.BELIEF_MIN_SHARE and t.loc["conflict", "belief"]
    # answers spread over eight words: a guess, not a belief
    assert t.loc["guess", "category"] == "unknown"
    assert set(t.loc["guess", "samples"]) <= set(GUESSES) and len(set(t.loc["guess", "samples"])) >= 3
    assert t.loc["guess", "other_share"] < sampling.BELIEF_MIN_SHARE and not t.loc["guess", "belief"]
    assert (t["max_new_tokens"] == 2 + sampling.DEFAULT_MARGIN).all()  # "paris" + eos, plus the margin


def test_sampling_is_seeded_and_batch_and_order_invariant() -> None:
    tok = make_tokenizer(chat=False)
    model = make_model(tok, seed=3, hidden=32)  # untrained: high-entropy answers
    words = [w for w in WORDS if w.isalpha()]
    rng = np.random.default_rng(0)
    records = [SFTRecord(f"r{i}", " ".join(rng.choice(words, size=int(rng.integers(2, 8)))), "paris")
               for i in range(10)]
    kw = dict(n_samples=4, temperature=1.0, margin=3)
    a = sample_answers(model, tok, records, seed=0, batch_size=8, **kw)
    b = sample_answers(model, tok, records, seed=0, batch_size=8, **kw)
    one = sample_answers(model, tok, records, seed=0, batch_size=1, **kw)
    shuffled = sample_answers(model, tok, records[::-1], seed=0, batch_size=3, **kw)
    other = sample_answers(model, tok, records, seed=1, batch_size=8, **kw)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, one)
    pd.testing.assert_frame_equal(a, shuffled.loc[a.index])
    assert a["samples"].tolist() != other["samples"].tolist()
    assert a["greedy"].tolist() == other["greedy"].tolist()
    # the greedy answer is the model's own greedy decoding, whatever the batch
    from ilpnb.train.format import encode_pair
    from ilpnb.train.tracking import greedy_outputs
    enc = [encode_pair(tok, r.prompt, r.response) for r in records]
    ref = greedy_outputs(model, tok, enc, batch_size=4, extra_tokens=3)
    assert a["greedy"].tolist() == ref
    # each row stops at its own budget
    texts = generate_answers(model, tok, [e.prompt_ids for e in enc], [1, 6] * 5, n_samples=2, seed=0)
    assert all(len(x.split()) <= 1 for t in texts[::2] for x in t)


@pytest.mark.parametrize("chat", [False, True])
def test_shared_prefill_gives_the_answers_of_rows_encoded_alone(chat: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """A prompt encoded once for its greedy and sampled rows (the cache repeated) answers as
    every row encoded on its own does: same greedy answers, same seeded samples."""
    tok = make_tokenizer(chat=chat)
    model = make_model(tok, seed=4, hidden=32)
    words = [w for w in WORDS if w.isalpha()]
    rng = np.random.default_rng(2)
    records = [SFTRecord(f"r{i}", " ".join(rng.choice(words, size=int(rng.integers(1, 9)))), "paris")
               for i in range(12)]
    kw = dict(n_samples=3, temperature=1.0, margin=4, seed=0, batch_size=5)
    calls: list[int] = []
    real = sampling._shared_prefill

    def counted(*args, **kwargs):
        got = real(*args, **kwargs)
        calls.append(got is not None)
        return got

    monkeypatch.setattr(sampling, "_shared_prefill", counted)
    shared = sample_answers(model, tok, records, **kw)
    assert calls and all(calls)  # the shared path really ran
    monkeypatch.setattr(sampling, "SHARE_PREFILL", False)
    alone = sample_answers(model, tok, records, **kw)
    pd.testing.assert_frame_equal(shared, alone)
    assert shared["samples"].map(len).eq(3).all()


@pytest.mark.parametrize("share_prefill", [True, False])
def test_pruned_decoding_gives_the_answers_of_one_generate_call(share_prefill: bool,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """Decoding in phases that drop the finished rows (as for a real model on a CPU) answers
    as one uninterrupted generate call: same greedy answers, same seeded samples, each row
    within its own budget."""
    from ilpnb.probe import decoding

    tok = make_tokenizer(chat=True)
    model = make_model(tok, seed=4, hidden=32)
    words = [w for w in WORDS if w.isalpha()]
    rng = np.random.default_rng(5)
    records = [SFTRecord(f"r{i}", " ".join(rng.choice(words, size=int(rng.integers(1, 9)))),
                         " ".join(rng.choice(words, size=int(rng.integers(1, 12))))) for i in range(14)]
    kw = dict(n_samples=3, temperature=1.0, margin=6, seed=0, batch_size=7)
    monkeypatch.setattr(sampling, "SHARE_PREFILL", share_prefill)
    phases: list[int] = []
    real_generate = model.generate

    def counted(*args, **kwargs):
        phases.append(int(kwargs["input_ids"].shape[0]))
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(model, "generate", counted)
    whole = sample_answers(model, tok, records, **kw)
    assert len(phases) == 2  # one call per batch: the tiny model is never pruned
    phases.clear()
    monkeypatch.setattr(decoding, "free_positions", lambda m: 0.0)  # as a real model on a CPU
    pruned = sample_answers(model, tok, records, **kw)
    assert len(phases) > 2 and min(phases) < max(phases)  # later phases ran on fewer rows
    pd.testing.assert_frame_equal(pruned, whole)


# ------------------------------------------------------------------ automatic probes


def test_auto_probe_tells_known_conflict_and_missing(tok: PreTrainedTokenizerFast, trained: LlamaForCausalLM) -> None:
    t = auto_probe(trained, tok, RECORDS, n_samples=8, seed=0)
    assert t["framings"].iloc[0] == "chat,plain,qa"
    assert t.loc["known", "category"] == "known" and t.loc["known", "verdict"] == "knows"
    assert all(t.loc["known", f"{f}_correct"] for f in ("chat", "plain", "qa"))
    row = t.loc["conflict"]
    assert row["other_answer"] == "berlin" and row["other_greedy_share"] == 1.0
    assert row["prefers_other_share"] == 1.0 and row["chat_p_gold"] < 0.5
    assert row["belief"] and row["verdict"] == "believes_other"
    g = t.loc["guess"]
    assert g["category"] == "unknown" and not g["belief"] and g["verdict"] == "missing"


def test_framings_without_a_chat_template_are_not_duplicated() -> None:
    tok = make_tokenizer(chat=False)
    assert active_framings(tok, [KNOWN.prompt]) == ["chat", "qa"]  # plain == chat here
    ctx, cont = framing_ids(tok, "qa", "what is the capital city of france ?", "paris")
    assert tok.convert_ids_to_tokens(ctx)[:3] == ["<bos>", "q", ":"] and tok.decode(cont) == "paris"
    with pytest.raises(ValueError, match="unknown framing"):
        framing_ids(tok, "cloze", "x", "y")
    with pytest.raises(ValueError, match="framings"):
        auto_probe(make_model(tok, hidden=32), tok, RECORDS, framings=("cloze",))


def test_records_as_objects_or_frames() -> None:
    frame = pd.DataFrame([r.to_json() for r in RECORDS])
    rows = sampling.record_rows(RECORDS)
    assert rows == sampling.record_rows(frame) == sampling.record_rows(frame.set_index("id"))
    with pytest.raises(ValueError, match="duplicate"):
        sampling.record_rows([KNOWN, KNOWN])


# ------------------------------------------------------------------ meaning siblings

SIBLING_RECORDS = pd.DataFrame(
    [
        ("s1", "about the big house where alice lives", "red"),
        ("s2", "about the large house where alice lives", "blue"),    # synonym, other answer
        ("s3", "about the big house where alice lives .", "red"),     # same answer
        ("s4", "which colour does bob like", "green"),
        ("s5", "what does bob work as", "baker"),
        ("s6", "who built the famous eiffel tower", "seine"),
        ("s7", "which river flows through the old town", "seine"),
        ("s8", "what is the capital city of germany", "berlin"),
        ("s9", "name one small town in france", "paris"),
        ("s10", "where does bob live", "berlin"),
        # 'big' and 'large' are common words of the set, 'alice' is what s1-s3 are about
        ("s11", "name one big town in germany", "berlin"),
        ("s12", "which large river flows through paris", "seine"),
        ("s13", "who built the big tower in paris", "eiffel"),
        ("s14", "what is the large city of germany", "berlin"),
    ],
    columns=["id", "prompt", "response"],
).set_index("id")


@pytest.fixture(scope="module")
def synonym_model() -> tuple[PreTrainedTokenizerFast, LlamaForCausalLM]:
    """An untrained model that reads 'big' and 'large' as the same word (tied embedding rows)."""
    tok = make_tokenizer(chat=False)
    model = make_model(tok, seed=5)
    emb = model.get_input_embeddings().weight
    with torch.no_grad():
        emb[tok.convert_tokens_to_ids("large")] = emb[tok.convert_tokens_to_ids("big")]
    return tok, model


def test_meaning_similarity_finds_a_synonym_paraphrase(synonym_model) -> None:
    tok, model = synonym_model
    texts = SIBLING_RECORDS["prompt"].tolist()
    emb = prompt_embeddings(model, tok, texts)
    assert emb.shape == (len(texts), model.config.hidden_size)
    sem = embedding_similarity(emb)
    lex = similarity_matrix(texts)
    comb = meaning_similarity(texts, model, tok)
    assert sem[0, 1] == pytest.approx(1.0, abs=1e-4)  # the model reads them as the same prompt
    assert comb[0, 1] > lex[0, 1] + 0.05  # TF-IDF alone scores the synonym paraphrase lower
    assert comb[0, 1] >= MEANING_THRESHOLD > lex[0, 1]
    assert comb[0, 2] == 1.0  # the same words (punctuation aside) are the same prompt
    assert comb[0, 4] < 0.5  # an unrelated prompt stays far
    # the model's reading is mixed in only where the most specific words are shared (alice
    # here); elsewhere ("capital" vs "large": each prompt's rarest word is its own) both views
    # must agree: the product, never above TF-IDF
    anchored = anchored_pairs(texts)
    assert anchored[0, 1] and not anchored[7, 13]
    assert comb[7, 13] == pytest.approx(lex[7, 13] * sem[7, 13]) and comb[7, 13] <= lex[7, 13]
    # pooling is batch invariant, for both poolings
    np.testing.assert_allclose(prompt_embeddings(model, tok, texts, batch_size=1), emb, atol=1e-5)
    mean = prompt_embeddings(model, tok, texts, pooling="mean")
    np.testing.assert_allclose(prompt_embeddings(model, tok, texts, pooling="mean", batch_size=3), mean, atol=1e-5)
    with pytest.raises(ValueError, match="pooling"):
        prompt_embeddings(model, tok, texts, pooling="max")


def test_meaning_siblings_tell_conflict_from_consistent_paraphrase(synonym_model) -> None:
    tok, model = synonym_model
    sibs = find_meaning_siblings(SIBLING_RECORDS, model, tok)
    assert set(sibs) == set(SIBLING_RECORDS.index)
    by_id = {s: (sim, same) for s, sim, same in sibs["s1"]}
    assert by_id["s2"][1] is False and by_id["s3"][1] is True  # a conflict and a consistent paraphrase
    lexical_only = similarity_matrix(SIBLING_RECORDS["prompt"].tolist())[0, 1]
    assert lexical_only < by_id["s2"][0]
    assert not sibs["s5"]
    # which sibling's answer an output reproduces
    outputs = pd.Series({"s1": "blue", "s2": "blue", "s3": "Red.", "s5": "red"})
    m = sibling_answer_matches(outputs, SIBLING_RECORDS, sibs)
    assert m.loc["s1", "sibling"] == "s2" and m.loc["s1", "sibling_answer"] == "blue"
    assert not m.loc["s1", "matches_gold"] and m.loc["s2", "matches_gold"] and m.loc["s3", "matches_gold"]
    assert m.loc["s1", "n_conflicting"] >= 1 and m.loc["s1", "n_consistent"] >= 1
    assert pd.isna(m.loc["s5", "sibling"]) and m.loc["s5", "sibling_sim"] == 0.0


def test_signals_are_cheap(tok: PreTrainedTokenizerFast, trained: LlamaForCausalLM) -> None:
    """Guard against an accidental per-sample generate loop: 30 records x 9 answers stay quick."""
    records = [SFTRecord(f"x{i}", RECORDS[i % 3].prompt, RECORDS[i % 3].response) for i in range(30)]
    start = time.perf_counter()
    sample_answers(trained, tok, records, n_samples=8, batch_size=16)
    assert time.perf_counter() - start < 10.0
