"""A real tokenizer for the world: byte-level BPE trained on the corpus with `tokenizers`.

The tokenizer is wrapped in :class:`transformers.PreTrainedTokenizerFast`, has ``<s>``,
``</s>``, ``<pad>`` and ``<unk>``, adds ``<s>`` in front of plain text, decodes back to the
exact input text, and carries a small chat template (``Q: … A: …``) so SFT code treats it like
any chat model.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

__all__ = ["CHAT_TEMPLATE", "SPECIAL_TOKENS", "train_tokenizer"]

SPECIAL_TOKENS = ("<pad>", "<s>", "</s>", "<unk>")

#: User turns become ``Q: … A:``; the assistant's reply follows after a space and ends
#: with ``</s>``, the same shape as the question-answer lines of the world's corpus.
CHAT_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'user' %}Q: {{ message['content'] }} A:"
    "{% elif message['role'] == 'assistant' %} {{ message['content'] }}{{ eos_token }}"
    "{% else %}{{ message['content'] }} {% endif %}"
    "{% endfor %}"
)


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer on ``texts``.

    Args:
        texts: training text, e.g. the lines of ``pretrain.txt``.
        vocab_size: largest vocabulary, including the 256 byte symbols and specials; on a
            world corpus training stops earlier, when every word is a single token.

    Returns:
        A fast tokenizer ready for ``save_pretrained`` / ``AutoTokenizer.from_pretrained``.
    """
    core = Tokenizer(models.BPE(unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer=trainer)
    bos = core.token_to_id("<s>")
    core.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        unk_token="<unk>",
        clean_up_tokenization_spaces=False,
    )
    tok.chat_template = CHAT_TEMPLATE
    tok.padding_side = "right"
    return tok
