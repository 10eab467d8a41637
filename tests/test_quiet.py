"""ilpnb.quiet: bars and the listed messages are silenced inside quiet(), everything restored after."""

from __future__ import annotations

import io
import logging
import warnings

import pytest
from huggingface_hub.utils import are_progress_bars_disabled, disable_progress_bars, enable_progress_bars
from transformers.utils import logging as hf_logging

from ilpnb.quiet import HARMLESS_LOGS, HARMLESS_WARNINGS, quiet

MTIME = "mtime may not be reliable on this filesystem, falling back to numerical ordering"


@pytest.fixture(autouse=True)
def _bars_on():
    """Each test starts with both libraries' bars on and leaves them as it found them."""
    was_hf, was_hub = hf_logging.is_progress_bar_enabled(), not are_progress_bars_disabled()
    hf_logging.enable_progress_bar()
    yield
    (hf_logging.enable_progress_bar if was_hf else hf_logging.disable_progress_bar)()
    (enable_progress_bars if was_hub else disable_progress_bars)()


def _bar_text(label: str) -> str:
    """What transformers' own tqdm (the one behind `Loading weights`) writes for one bar."""
    out = io.StringIO()
    for _ in hf_logging.tqdm(range(3), desc=label, file=out):
        pass
    return out.getvalue()


def test_transformers_and_hub_bars_are_off_inside_and_back_after() -> None:
    assert "Loading weights" in _bar_text("Loading weights")  # the bar shows normally
    with quiet():
        assert not hf_logging.is_progress_bar_enabled()
        assert are_progress_bars_disabled()
        assert _bar_text("Loading weights") == ""
    assert hf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    assert "Loading weights" in _bar_text("Loading weights")


def test_bars_already_off_stay_off_and_nesting_keeps_the_outer_state() -> None:
    hf_logging.disable_progress_bar()
    enable_progress_bars()  # the hub's on while transformers' is off: each is restored on its own
    with quiet():
        assert are_progress_bars_disabled()
    assert not hf_logging.is_progress_bar_enabled()
    assert not are_progress_bars_disabled()

    hf_logging.enable_progress_bar()
    with quiet():
        with quiet():
            pass
        assert not hf_logging.is_progress_bar_enabled()  # the inner block did not turn them back on
    assert hf_logging.is_progress_bar_enabled()


def test_bars_false_leaves_the_bars_alone() -> None:
    with quiet(bars=False):
        assert hf_logging.is_progress_bar_enabled()


def test_listed_warning_is_ignored_inside_and_other_warnings_still_show() -> None:
    listed = HARMLESS_WARNINGS[0]
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with quiet():
            warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", listed.category)
            warnings.warn("a real problem the user must see", FutureWarning)
            warnings.warn("`is_gradient_checkpointing` is deprecated", UserWarning)  # another category
        warnings.warn("`is_gradient_checkpointing` is deprecated and will be removed in v6.", listed.category)
    messages = [(str(w.message), w.category) for w in seen]
    assert messages == [
        ("a real problem the user must see", FutureWarning),
        ("`is_gradient_checkpointing` is deprecated", UserWarning),
        ("`is_gradient_checkpointing` is deprecated and will be removed in v6.", FutureWarning),  # after: back
    ]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_listed_log_record_is_dropped_inside_and_others_pass() -> None:
    logger = logging.getLogger(HARMLESS_LOGS[0].logger)
    before, handler = list(logger.filters), _Collect()
    logger.addHandler(handler)  # on the emitting logger itself: no propagation settings involved
    try:
        with quiet():
            logger.warning(MTIME)
            logger.warning("checkpoint folder is missing")
        logger.warning(MTIME)
    finally:
        logger.removeHandler(handler)
    assert handler.messages == ["checkpoint folder is missing", MTIME]
    assert logger.filters == before


def test_restored_after_an_error() -> None:
    with pytest.raises(RuntimeError, match="inside"):
        with quiet():
            raise RuntimeError("inside")
    assert hf_logging.is_progress_bar_enabled() and not are_progress_bars_disabled()
    assert logging.getLogger(HARMLESS_LOGS[0].logger).filters == []


def test_works_as_a_decorator() -> None:
    @quiet()
    def state() -> bool:
        return hf_logging.is_progress_bar_enabled()

    assert state() is False and state() is False  # reusable: a fresh context per call
    assert hf_logging.is_progress_bar_enabled()


def test_every_entry_says_why() -> None:
    for entry in (*HARMLESS_LOGS, *HARMLESS_WARNINGS):
        assert len(entry.why) > 20 and entry.message
