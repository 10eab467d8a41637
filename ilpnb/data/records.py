"""SFT records: the one data contract every stage of ilpnb reads and writes.

An SFT file is JSONL, one object a line: ``id`` (unique string), ``prompt``, ``response``,
optional ``stage`` (int >= 0, default 0), optional ``options`` (multiple-choice distractors,
never including the gold response) and optional ``meta`` (object). Alpaca
(``instruction``/``input``/``output``) and ShareGPT/chat (``messages`` with ``role``/``content``
or ``conversations`` with ``from``/``value``) lines are read too, detected per line, and a
``.json`` file holding a list of such objects is accepted (its line number is the index + 1).

Every bad line raises :class:`RecordError` naming the file, the line and the reason; nothing
is silently dropped. Blank lines are skipped. Keys a reader does not know are kept in ``meta``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["RecordError", "SFTRecord", "jsonl_text", "read_records", "validate_records", "write_records"]

_NATIVE_KEYS = frozenset({"id", "prompt", "response", "stage", "options", "meta"})
_ALPACA_KEYS = frozenset({"id", "instruction", "input", "output", "stage", "options", "meta"})
_CHAT_KEYS = frozenset({"id", "messages", "conversations", "stage", "options", "meta"})
_USER_ROLES = frozenset({"user", "human"})
_ASSISTANT_ROLES = frozenset({"assistant", "gpt", "model", "bot", "chatgpt"})


class RecordError(ValueError):
    """A bad SFT record; the message reads ``"<file>, line <n>: <reason>"``.

    Attributes:
        source: The file (or other source) the record came from.
        line: 1-based line number (index + 1 for a JSON list or an in-memory list).
        reason: What is wrong, without the location.
    """

    def __init__(self, source: str, line: int, reason: str) -> None:
        self.source, self.line, self.reason = source, line, reason
        super().__init__(f"{source}, line {line}: {reason}")


@dataclass(frozen=True)
class SFTRecord:
    """One supervised fine-tuning sample.

    Attributes:
        id: Unique identifier within its set.
        prompt: The user turn the model is conditioned on.
        response: The gold answer the model is trained to reproduce.
        stage: Sequential fine-tuning stage (trained in increasing order).
        options: Multiple-choice distractors, NOT including the gold response.
        meta: Free-form JSON-serialisable metadata (not hashed).
    """

    id: str
    prompt: str
    response: str
    stage: int = 0
    options: tuple[str, ...] | None = None
    meta: dict = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if isinstance(self.options, list):
            object.__setattr__(self, "options", tuple(self.options))

    def to_json(self) -> dict:
        """Return the record as a JSON-ready dict (``options``/``meta`` only when set)."""
        out: dict[str, Any] = {
            "id": self.id, "prompt": self.prompt, "response": self.response, "stage": self.stage,
        }
        if self.options is not None:
            out["options"] = list(self.options)
        if self.meta:
            out["meta"] = self.meta
        return out


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _text(obj: dict, key: str, *, label: str | None = None, allow_empty: bool = False) -> str:
    """Fetch a required string field, raising ``ValueError(reason)`` when absent/wrong/empty."""
    label = label or key
    if key not in obj:
        raise ValueError(f"missing field '{label}'")
    value = obj[key]
    if not isinstance(value, str):
        raise ValueError(f"field '{label}' must be a string, got {_type_name(value)}")
    if not allow_empty and not value.strip():
        raise ValueError(f"field '{label}' is empty")
    return value


def _parse_chat(obj: dict) -> tuple[str, str, dict]:
    """Turn a ``messages``/``conversations`` object into (prompt, response, extra meta)."""
    key, role_key, text_key = (
        ("messages", "role", "content") if "messages" in obj else ("conversations", "from", "value")
    )
    turns = obj[key]
    if not isinstance(turns, list) or not turns:
        raise ValueError(f"field '{key}' must be a non-empty list of turns, got {_type_name(turns)}")
    norm: list[dict[str, str]] = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise ValueError(f"{key}[{i}] must be an object, got {_type_name(turn)}")
        role = _text(turn, role_key, label=f"{key}[{i}].{role_key}").strip().lower()
        text = _text(turn, text_key, label=f"{key}[{i}].{text_key}", allow_empty=True)
        role = "user" if role in _USER_ROLES else "assistant" if role in _ASSISTANT_ROLES else role
        norm.append({"role": role, "content": text})
    last = max((i for i, t in enumerate(norm) if t["role"] == "assistant"), default=None)
    if last is None:
        raise ValueError(f"field '{key}' has no assistant turn to use as the response")
    if last != len(norm) - 1:
        raise ValueError(f"field '{key}' has {len(norm) - 1 - last} turn(s) after the last "
                         "assistant turn; the response must be the final turn")
    before = norm[:last]
    users = [t for t in before if t["role"] == "user"]
    if not users:
        raise ValueError(f"field '{key}' has no user turn before the last assistant turn")
    if not users[-1]["content"].strip():
        raise ValueError(f"field '{key}': the last user turn (the prompt) is empty")
    if not norm[last]["content"].strip():
        raise ValueError(f"field '{key}': the last assistant turn (the response) is empty")
    extra = {} if len(before) == 1 else {"messages": before}
    return users[-1]["content"], norm[last]["content"], extra


def _parse_object(obj: Any, default_id: str) -> SFTRecord:
    """Build a record from one decoded JSON value; ``ValueError(reason)`` when it is bad."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {_type_name(obj)}")
    extra: dict[str, Any] = {}
    if "prompt" in obj or "response" in obj:
        known = _NATIVE_KEYS
        prompt, response = _text(obj, "prompt"), _text(obj, "response")
    elif "instruction" in obj or "output" in obj:
        known = _ALPACA_KEYS
        instruction = _text(obj, "instruction", allow_empty=True)
        extra_input = _text(obj, "input", allow_empty=True) if obj.get("input") is not None else ""
        prompt = instruction + "\n\n" + extra_input if extra_input.strip() else instruction
        if not prompt.strip():
            raise ValueError("field 'instruction' is empty")
        response = _text(obj, "output")
    elif "messages" in obj or "conversations" in obj:
        known = _CHAT_KEYS
        prompt, response, extra = _parse_chat(obj)
    else:
        keys = ", ".join(sorted(map(str, obj))) or "none"
        raise ValueError("missing fields: expected 'prompt'/'response', 'instruction'/'output' "
                         f"or 'messages'/'conversations' (found: {keys})")
    if "id" in obj:
        rid = obj["id"]
        if not isinstance(rid, str) or not rid.strip():
            raise ValueError(f"field 'id' must be a non-empty string, got {rid!r}")
    else:
        rid = default_id
    meta = obj.get("meta", {})
    if not isinstance(meta, dict):
        raise ValueError(f"field 'meta' must be an object, got {_type_name(meta)}")
    extra.update({k: v for k, v in obj.items() if k not in known})
    options = obj.get("options")
    return SFTRecord(
        id=rid, prompt=prompt, response=response, stage=obj.get("stage", 0),
        options=tuple(options) if isinstance(options, list) else options,
        meta={**extra, **meta},
    )


def _check(record: SFTRecord) -> None:
    """Raise ``ValueError(reason)`` when a record breaks the contract (ids checked elsewhere)."""
    if not isinstance(record.id, str) or not record.id.strip():
        raise ValueError(f"field 'id' must be a non-empty string, got {record.id!r}")
    for name in ("prompt", "response"):
        value = getattr(record, name)
        if not isinstance(value, str):
            raise ValueError(f"field '{name}' must be a string, got {_type_name(value)}")
        if not value.strip():
            raise ValueError(f"field '{name}' is empty")
    if isinstance(record.stage, bool) or not isinstance(record.stage, int) or record.stage < 0:
        raise ValueError(f"field 'stage' must be an integer >= 0, got {record.stage!r}")
    if record.options is not None:
        if not isinstance(record.options, tuple):
            raise ValueError(f"field 'options' must be a list of strings, got {_type_name(record.options)}")
        if not record.options:
            raise ValueError("field 'options' is an empty list (leave it out instead)")
        for i, opt in enumerate(record.options):
            if not isinstance(opt, str) or not opt.strip():
                raise ValueError(f"field 'options' must hold non-empty strings; item {i} is {opt!r}")
        if len(set(record.options)) != len(record.options):
            raise ValueError("field 'options' holds the same distractor twice")
        if record.response in record.options:
            raise ValueError("field 'options' contains the gold response (options are distractors only)")
    if not isinstance(record.meta, dict):
        raise ValueError(f"field 'meta' must be an object, got {_type_name(record.meta)}")


def _check_all(items: Iterable[tuple[int, SFTRecord]], source: str) -> None:
    seen: dict[str, int] = {}
    for line, record in items:
        try:
            _check(record)
        except ValueError as exc:
            raise RecordError(source, line, str(exc)) from None
        if record.id in seen:
            raise RecordError(source, line, f"duplicate id '{record.id}' (first used on line {seen[record.id]})")
        seen[record.id] = line


def validate_records(records: Iterable[SFTRecord], source: str) -> None:
    """Check records against the contract; the n-th record is reported as line n.

    Args:
        records: The records, in file order.
        source: Name used in error messages (a file path, or a dataset name).

    Raises:
        RecordError: On the first duplicate id, empty prompt/response, bad ``stage``, bad
            ``options`` (not a list of distinct non-empty strings, or containing the gold
            response) or non-object ``meta``; duplicate ids name both lines.
    """
    _check_all(enumerate(records, start=1), source)


def _iter_values(path: Path, source: str) -> Iterator[tuple[int, Any]]:
    """Yield (line number, decoded JSON value) from a JSONL file or a JSON list file."""
    data = path.read_bytes()
    if path.suffix.lower() == ".json":
        try:
            values = json.loads(data.decode("utf-8-sig"))
        except UnicodeDecodeError as exc:
            raise RecordError(source, data[: exc.start].count(b"\n") + 1, "not valid UTF-8") from None
        except json.JSONDecodeError as exc:
            if not exc.msg.startswith("Extra data"):  # anything else: broken JSON, not JSONL
                raise RecordError(source, exc.lineno, f"not valid JSON ({exc.msg}, column {exc.colno})") from None
        else:
            if not isinstance(values, list):
                raise RecordError(source, 1, f"a .json file must hold a list of records, got {_type_name(values)}")
            yield from enumerate(values, start=1)
            return
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise RecordError(source, number, "not valid UTF-8") from None
        if not text.strip():
            continue
        try:
            yield number, json.loads(text)
        except json.JSONDecodeError as exc:
            raise RecordError(source, number, f"not valid JSON ({exc.msg}, column {exc.colno})") from None


def read_records(path: str | Path) -> list[SFTRecord]:
    """Read an SFT file (native, Alpaca or ShareGPT/chat lines; JSONL or a JSON list).

    Args:
        path: A ``.jsonl`` file (one object a line, blank lines skipped) or a ``.json`` file
            holding a list of objects.

    Returns:
        The records in file order. Ids default to ``f"{file stem}-{line number}"``.

    Raises:
        RecordError: On the first bad line, naming the file, the line and the reason.
        FileNotFoundError: When the file does not exist.
    """
    path = Path(path)
    source = str(path)
    records: list[tuple[int, SFTRecord]] = []
    for number, value in _iter_values(path, source):
        try:
            record = _parse_object(value, f"{path.stem}-{number}")
        except ValueError as exc:
            raise RecordError(source, number, str(exc)) from None
        records.append((number, record))
    _check_all(records, source)
    return [record for _, record in records]


def jsonl_text(rows: Iterable[dict]) -> str:
    """JSON Lines of ``rows``, one object a line, keys sorted, non-ASCII kept (the world files)."""
    return "".join(json.dumps(r, sort_keys=True, ensure_ascii=False) + "\n" for r in rows)


def write_records(records: Iterable[SFTRecord], path: str | Path) -> None:
    """Write records as JSONL: one object a line, keys sorted, UTF-8, deterministic bytes.

    The records are validated first and the file is replaced atomically, so a bad record
    never leaves a half-written file.

    Args:
        records: The records to write.
        path: Destination file; parent folders are created.

    Raises:
        RecordError: When a record breaks the contract or its ``meta`` is not JSON-serialisable.
    """
    path = Path(path)
    records = list(records)
    validate_records(records, str(path))
    lines = []
    for number, record in enumerate(records, start=1):
        try:
            lines.append(json.dumps(record.to_json(), sort_keys=True, ensure_ascii=False))
        except (TypeError, ValueError) as exc:
            raise RecordError(str(path), number, f"not JSON-serialisable ({exc})") from None
    payload = "".join(line + "\n" for line in lines).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(payload)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
