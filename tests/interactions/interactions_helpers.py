"""Tiny stand-ins for the interaction tests: a word-level tokenizer and its vocabulary.

Kept outside conftest.py (with a name unique across the test tree) so test modules can
import the helpers without clashing with another directory's ``conftest`` module.
"""

from __future__ import annotations

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

SPECIALS = ["<unk>", "<pad>", "<bos>", "<eos>", "<|user|>", "<|assistant|>", "<|end|>"]
WORDS = """what is the capital city of france paris berlin germany answer briefly please
a an and or in on to tell me about river seine flows through which country large old
famous tower eiffel who built it ? . , ! yes no one two three four five six seven eight nine
ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty""".split()

CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<|user|> {{ m['content'] }} <|end|> {% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

PROMPT = "what is the capital city of france ?"  # 8 words, one token each


def make_tokenizer(chat: bool = False, strip_chars: str = "") -> PreTrainedTokenizerFast:
    """A word-level fast tokenizer over WORDS (lower-cased), adding <bos>."""
    vocab = {w: i for i, w in enumerate(SPECIALS + WORDS)}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    norms = [normalizers.Lowercase()] + [normalizers.Replace(c, "") for c in strip_chars]
    tok.normalizer = normalizers.Sequence(norms)
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", vocab["<bos>"])])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", unk_token="<unk>",
        pad_token="<pad>", additional_special_tokens=["<|user|>", "<|assistant|>", "<|end|>"])
    if chat:
        fast.chat_template = CHAT_TEMPLATE
    return fast
