"""Turning an SFT record into token ids: prompt part, response part, truncation counted.

The tokenizer's chat template is used when it has one (the user turn renders the prompt,
the assistant turn the response); otherwise the plain format ``prompt + "\\n" + response +
eos``. The loss of SFT is taken on the response tokens only, and every measurement of the
workbench (loss, token accuracy, exact reproduction, option probabilities) uses the same
split, so a number at step 0 and a number after training mean the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from transformers import PreTrainedTokenizerBase

__all__ = ["Encoded", "encode_pair", "uses_chat_template", "prompt_text"]

PLAIN_SEPARATOR = "\n"


@dataclass(frozen=True)
class Encoded:
    """Token ids of one example.

    Attributes:
        prompt_ids: context tokens (chat-template prefix or plain prompt).
        response_ids: target tokens, ending with the end-of-sequence token.
        truncated: tokens dropped to fit ``max_length`` (0 when none).
    """

    prompt_ids: list[int]
    response_ids: list[int]
    truncated: int = 0

    @property
    def input_ids(self) -> list[int]:
        """Prompt then response."""
        return self.prompt_ids + self.response_ids

    @property
    def labels(self) -> list[int]:
        """Training labels: -100 on the prompt, the response tokens after it."""
        return [-100] * len(self.prompt_ids) + self.response_ids


def uses_chat_template(tokenizer: PreTrainedTokenizerBase) -> bool:
    """Whether the tokenizer carries a chat template."""
    return bool(getattr(tokenizer, "chat_template", None))


def prompt_text(tokenizer: PreTrainedTokenizerBase, prompt: str) -> str:
    """The text the model is conditioned on for ``prompt`` (template applied)."""
    if uses_chat_template(tokenizer):
        return tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
    return prompt + PLAIN_SEPARATOR


def _response_text(tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, head: str) -> tuple[str, bool]:
    """The response text as the template renders it, and whether it already ends with eos."""
    if uses_chat_template(tokenizer):
        full = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], tokenize=False
        )
        if full.startswith(head):
            tail = full[len(head):]
            eos = tokenizer.eos_token or ""
            return tail, bool(eos) and tail.rstrip().endswith(eos)
    return response, False


def encode_pair(
    tokenizer: PreTrainedTokenizerBase, prompt: str, response: str, max_length: int | None = None
) -> Encoded:
    """Token ids of a (prompt, response) pair in the model's format.

    Args:
        tokenizer: the model's tokenizer.
        prompt: the user's text.
        response: the target text.
        max_length: longest sequence; longer examples lose prompt tokens from the left
            first (keeping at least one), then response tokens from the end; the number
            dropped is returned in ``truncated`` so callers can report it.
    """
    chat = uses_chat_template(tokenizer)
    head = prompt_text(tokenizer, prompt)
    tail, has_eos = _response_text(tokenizer, prompt, response, head)
    p_ids = tokenizer(head, add_special_tokens=not chat)["input_ids"]
    r_ids = tokenizer(tail, add_special_tokens=False)["input_ids"]
    if chat and has_eos:
        # drop whatever the template puts after the end-of-sequence token (e.g. a newline)
        eos_id = tokenizer.eos_token_id
        if eos_id in r_ids:
            r_ids = r_ids[: len(r_ids) - r_ids[::-1].index(eos_id)]
    elif tokenizer.eos_token_id is not None:
        r_ids = r_ids + [tokenizer.eos_token_id]
    dropped = 0
    if max_length is not None and len(p_ids) + len(r_ids) > max_length:
        excess = len(p_ids) + len(r_ids) - max_length
        cut = min(excess, len(p_ids) - 1)
        p_ids = p_ids[cut:]
        dropped += cut
        if excess > cut:
            r_ids = r_ids[: len(r_ids) - (excess - cut)]
            dropped += excess - cut
    return Encoded(prompt_ids=p_ids, response_ids=r_ids, truncated=dropped)
