"""Tests for ilpnb.data.records: the SFT record contract, its readers and its errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ilpnb.data.records import RecordError, SFTRecord, read_records, validate_records, write_records


def _write(tmp_path: Path, lines: list, name: str = "x.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("\n".join(l if isinstance(l, str) else json.dumps(l) for l in lines) + "\n", "utf-8")
    return path


GOOD = {"id": "a", "prompt": "p", "response": "r"}


def test_native_defaults_and_blank_lines(tmp_path):
    path = _write(tmp_path, [GOOD, "", "   ", {"prompt": "q", "response": "s", "stage": 2,
                                               "options": ["o1", "o2"], "meta": {"k": 1}, "extra": 5}])
    a, b = read_records(path)
    assert a == SFTRecord(id="a", prompt="p", response="r")
    assert b.id == "x-4" and b.stage == 2 and b.options == ("o1", "o2")
    assert b.meta == {"k": 1, "extra": 5}  # unknown keys are kept, not dropped
    hash(b)  # meta is excluded from the hash


BAD_LINES = [
    ("{not json", "not valid JSON"),
    ("[1, 2]", "expected a JSON object, got list"),
    ('"text"', "expected a JSON object, got str"),
    ({"id": "b", "prompt": "p"}, "missing field 'response'"),
    ({"id": "b", "response": "r"}, "missing field 'prompt'"),
    ({"id": "b", "question": "p"}, "missing fields"),
    ({"id": "b", "prompt": "  ", "response": "r"}, "field 'prompt' is empty"),
    ({"id": "b", "prompt": "p", "response": ""}, "field 'response' is empty"),
    ({"id": "b", "prompt": 3, "response": "r"}, "field 'prompt' must be a string, got int"),
    ({"id": 7, "prompt": "p", "response": "r"}, "field 'id' must be a non-empty string"),
    ({"id": "b", "prompt": "p", "response": "r", "stage": -1}, "field 'stage' must be an integer >= 0"),
    ({"id": "b", "prompt": "p", "response": "r", "stage": "1"}, "field 'stage' must be an integer >= 0"),
    ({"id": "b", "prompt": "p", "response": "r", "stage": True}, "field 'stage' must be an integer >= 0"),
    ({"id": "b", "prompt": "p", "response": "r", "options": "o"}, "field 'options' must be a list"),
    ({"id": "b", "prompt": "p", "response": "r", "options": ["o", ""]}, "non-empty strings; item 1"),
    ({"id": "b", "prompt": "p", "response": "r", "options": ["o", 3]}, "non-empty strings; item 1"),
    ({"id": "b", "prompt": "p", "response": "r", "options": []}, "field 'options' is an empty list"),
    ({"id": "b", "prompt": "p", "response": "r", "options": ["o", "o"]}, "same distractor twice"),
    ({"id": "b", "prompt": "p", "response": "r", "options": ["o", "r"]}, "contains the gold response"),
    ({"id": "b", "prompt": "p", "response": "r", "meta": []}, "field 'meta' must be an object"),
    ({"id": "b", "instruction": "", "input": "", "output": "r"}, "field 'instruction' is empty"),
    ({"id": "b", "instruction": "i", "output": ""}, "field 'output' is empty"),
    ({"id": "b", "messages": []}, "non-empty list of turns"),
    ({"id": "b", "messages": [{"role": "user", "content": "q"}]}, "no assistant turn"),
    ({"id": "b", "messages": [{"role": "assistant", "content": "a"}]}, "no user turn"),
    ({"id": "b", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"},
                              {"role": "user", "content": "more"}]}, "after the last assistant turn"),
    ({"id": "b", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]},
     "the last assistant turn (the response) is empty"),
    ({"id": "b", "messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
     "missing field 'messages[0].content'"),
    ({"id": "b", "conversations": ["hi"]}, "conversations[0] must be an object"),
]


@pytest.mark.parametrize("line,reason", BAD_LINES, ids=[r for _, r in BAD_LINES])
def test_bad_line_names_file_line_and_reason(tmp_path, line, reason):
    path = _write(tmp_path, [GOOD, "", line])
    with pytest.raises(RecordError) as info:
        read_records(path)
    assert str(info.value).startswith(f"{path}, line 3: ")
    assert reason in str(info.value)
    assert info.value.line == 3 and info.value.source == str(path)


def test_duplicate_ids_name_both_lines(tmp_path):
    path = _write(tmp_path, [GOOD, {"prompt": "q", "response": "s"}, {**GOOD, "prompt": "other"}])
    with pytest.raises(RecordError, match=r"line 3: duplicate id 'a' \(first used on line 1\)"):
        read_records(path)
    # a default id (stem-line) colliding with an explicit one is caught too
    path = _write(tmp_path, [{"id": "x-2", "prompt": "p", "response": "r"}, {"prompt": "q", "response": "s"}])
    with pytest.raises(RecordError, match="line 2: duplicate id 'x-2'"):
        read_records(path)


def test_invalid_utf8_names_line(tmp_path):
    path = tmp_path / "u.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n{\"prompt\": \"\xff\"}\n")
    with pytest.raises(RecordError, match="line 2: not valid UTF-8"):
        read_records(path)


def test_alpaca(tmp_path):
    path = _write(tmp_path, [{"instruction": "Translate.", "input": "hej", "output": "hello"},
                             {"instruction": "Say hi.", "input": "", "output": "hi", "system": "be nice"},
                             {"instruction": "Null input.", "input": None, "output": "ok"}],
                  name="alp.jsonl")
    a, b, c = read_records(path)
    assert (a.id, a.prompt, a.response) == ("alp-1", "Translate.\n\nhej", "hello")
    assert (c.prompt, c.meta) == ("Null input.", {})
    assert (b.prompt, b.meta) == ("Say hi.", {"system": "be nice"})


def test_sharegpt_and_chat(tmp_path):
    single = {"conversations": [{"from": "human", "value": "Q?"}, {"from": "gpt", "value": "A."}]}
    multi = {"id": "m", "messages": [
        {"role": "system", "content": "sys"}, {"role": "user", "content": "first"},
        {"role": "assistant", "content": "one"}, {"role": "user", "content": "second"},
        {"role": "assistant", "content": "two"}]}
    s, m = read_records(_write(tmp_path, [single, multi], name="chat.jsonl"))
    assert (s.id, s.prompt, s.response, s.meta) == ("chat-1", "Q?", "A.", {})
    assert (m.id, m.prompt, m.response) == ("m", "second", "two")
    assert [t["role"] for t in m.meta["messages"]] == ["system", "user", "assistant", "user"]


def test_json_list_file(tmp_path):
    path = tmp_path / "set.json"
    path.write_text(json.dumps([GOOD, {"instruction": "i", "output": "o"}]), "utf-8")
    assert [r.id for r in read_records(path)] == ["a", "set-2"]
    path.write_text(json.dumps([GOOD, {"prompt": "p"}]), "utf-8")
    with pytest.raises(RecordError, match=r"set\.json, line 2: missing field 'response'"):
        read_records(path)
    path.write_text(json.dumps({"records": []}), "utf-8")
    with pytest.raises(RecordError, match="line 1: a .json file must hold a list"):
        read_records(path)


def test_round_trip_byte_identical(tmp_path):
    records = [
        SFTRecord("b", "Fråga ✓", "Svar", stage=1, options=("x", "y"), meta={"z": 1, "a": [1, 2]}),
        SFTRecord("a", "p", "r"),
    ]
    first, second = tmp_path / "one.jsonl", tmp_path / "sub" / "two.jsonl"
    write_records(records, first)
    assert read_records(first) == records
    write_records(read_records(first), second)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text("utf-8")
    assert "Fråga ✓" in text and text.endswith("\n") and text.count("\n") == 2
    assert list(json.loads(text.splitlines()[0])) == sorted(json.loads(text.splitlines()[0]))


def test_write_refuses_bad_records_and_leaves_no_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    with pytest.raises(RecordError, match="line 2: field 'response' is empty"):
        write_records([SFTRecord("a", "p", "r"), SFTRecord("b", "p", "")], path)
    with pytest.raises(RecordError, match="line 1: not JSON-serialisable"):
        write_records([SFTRecord("a", "p", "r", meta={"x": {1, 2}})], path)
    assert list(tmp_path.iterdir()) == []


def test_validate_records_in_memory():
    validate_records([SFTRecord("a", "p", "r", options=["o"])], "mem")
    with pytest.raises(RecordError, match="^mem, line 2: duplicate id 'a' .*line 1"):
        validate_records([SFTRecord("a", "p", "r"), SFTRecord("a", "q", "s")], "mem")
    with pytest.raises(RecordError, match="^mem, line 1: .*gold response"):
        validate_records([SFTRecord("a", "p", "r", options=("r",))], "mem")
