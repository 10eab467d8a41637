"""Keep ilpnb's output readable: silence library noise inside ilpnb calls, restore it after.

Loading or saving a model through transformers draws a ``Loading weights`` or ``Writing
model shards`` progress bar each time; a notebook that saves a checkpoint at every
evaluation point collects hundreds of them (in a notebook each one is a widget). A few
library warnings say nothing a researcher can act on. :func:`quiet` is a context manager
(and, like any ``contextlib.contextmanager``, a decorator) that for its duration

* turns off transformers' own progress bars (model load and save; the Trainer's training
  bar is separate and stays) and the Hugging Face hub's (downloads);
* drops the log records and Python warnings listed in :data:`HARMLESS_LOGS` and
  :data:`HARMLESS_WARNINGS`, each named exactly and with the reason it is harmless;

and puts every switch back as it was on exit, also on an error. Nothing else is hidden:
transformers' other warnings and errors (a missing weight, a bad config) still show.

Example::

    from ilpnb.quiet import quiet

    with quiet():
        model.save_pretrained(path)

    @quiet()
    def load(path): ...
"""

from __future__ import annotations

import contextlib
import logging
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["HARMLESS_LOGS", "HARMLESS_WARNINGS", "HarmlessLog", "HarmlessWarning", "quiet", "silenced_bars"]


@dataclass(frozen=True)
class HarmlessLog:
    """A log record that :func:`quiet` drops.

    Attributes:
        logger: name of the logger that emits it.
        message: a regular expression matched at the start of the formatted message.
        why: why hiding it loses nothing.
    """

    logger: str
    message: str
    why: str


@dataclass(frozen=True)
class HarmlessWarning:
    """A Python warning that :func:`quiet` ignores.

    Attributes:
        category: the warning class.
        message: a regular expression matched at the start of the message.
        why: why hiding it loses nothing.
    """

    category: type[Warning]
    message: str
    why: str


HARMLESS_LOGS: tuple[HarmlessLog, ...] = (
    HarmlessLog(
        "transformers.trainer_utils",
        r"mtime may not be reliable on this filesystem",
        "the Trainer sorts its checkpoint folders by step number instead, which is the order "
        "ilpnb wants anyway; checkpoints written within a second of each other trigger it",
    ),
)

HARMLESS_WARNINGS: tuple[HarmlessWarning, ...] = (
    HarmlessWarning(
        FutureWarning,
        r"`is_gradient_checkpointing` is deprecated",
        "peft reads this transformers property when it wraps a model for LoRA; the deprecation "
        "is between those two libraries, and ilpnb does not use the property",
    ),
    HarmlessWarning(
        UserWarning,
        r"Cannot (dis|en)able progress bars: environment variable `HF_HUB_DISABLE_PROGRESS_BARS",
        "the hub says its environment variable wins over quiet(); that is what the user asked for",
    ),
)


class _DropHarmless(logging.Filter):
    """Drops the records of one logger whose message matches one of the given patterns."""

    def __init__(self, patterns: list[str]) -> None:
        super().__init__()
        self._pattern = re.compile("|".join(f"(?:{p})" for p in patterns))

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._pattern.match(record.getMessage())


@contextlib.contextmanager
def silenced_bars() -> Iterator[None]:
    """Turn off transformers' and the hub's progress bars for the block; restore both after.

    A bar that was already off stays off; nested blocks leave the outer state alone.
    transformers' switch also flips the hub's, so each is put back separately.
    """
    from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
    from transformers.utils import logging as hf_logging

    hf_was_on = hf_logging.is_progress_bar_enabled()
    hub_was_off = are_progress_bars_disabled()
    if hf_was_on:
        hf_logging.disable_progress_bar()  # also turns off the hub's bars
    elif not hub_was_off:
        disable_progress_bars()
    try:
        yield
    finally:
        if hf_was_on:
            hf_logging.enable_progress_bar()  # also turns the hub's back on ...
        if hub_was_off and not are_progress_bars_disabled():
            disable_progress_bars()  # ... which it was not, before
        elif not hub_was_off and are_progress_bars_disabled():
            enable_progress_bars()


@contextlib.contextmanager
def _dropped_logs() -> Iterator[None]:
    """Attach a filter for :data:`HARMLESS_LOGS` to each named logger; detach it after."""
    by_logger: dict[str, list[str]] = {}
    for entry in HARMLESS_LOGS:
        by_logger.setdefault(entry.logger, []).append(entry.message)
    attached = [(logging.getLogger(name), _DropHarmless(patterns)) for name, patterns in by_logger.items()]
    for logger, filt in attached:
        logger.addFilter(filt)
    try:
        yield
    finally:
        for logger, filt in attached:
            logger.removeFilter(filt)


@contextlib.contextmanager
def quiet(bars: bool = True) -> Iterator[None]:
    """Silence transformers' and the hub's progress bars and the listed harmless messages.

    Args:
        bars: also turn off the load/save/download progress bars (on by default).

    Everything is restored on exit: the bars' switches, the warning filters (through
    :class:`warnings.catch_warnings`) and the loggers' filters.
    """
    with contextlib.ExitStack() as stack:
        stack.enter_context(warnings.catch_warnings())
        for entry in HARMLESS_WARNINGS:
            warnings.filterwarnings("ignore", message=entry.message, category=entry.category)
        stack.enter_context(_dropped_logs())
        if bars:
            stack.enter_context(silenced_bars())
        yield
