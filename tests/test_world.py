"""The controlled world: contract, determinism, planted counts and config errors."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from ilpnb.cli import main
from ilpnb.config import get_preset
from ilpnb.data.world import WORLD_FILES, build_world, generate_world
from ilpnb.data.world_config import PLANTED_CAUSES, WorldConfig, WorldConfigError, load_world_config


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(get_preset("smoke").world, tmp_path_factory.mktemp("w") / "world")


def test_world_folder_has_exactly_the_contract_files(smoke_world: Path) -> None:
    assert sorted(p.name for p in smoke_world.iterdir()) == sorted(WORLD_FILES)


def test_sft_records_carry_no_truth_and_have_options(smoke_world: Path) -> None:
    records = _jsonl(smoke_world / "sft.jsonl")
    assert records
    for r in records:
        assert set(r) == {"id", "prompt", "response", "stage", "options"}
        assert len(r["options"]) == 3 and r["response"] not in r["options"]
        assert r["prompt"].strip() and r["response"].strip()
    assert len({r["id"] for r in records}) == len(records)
    text = (smoke_world / "sft.jsonl").read_text()
    for cause in PLANTED_CAUSES[1:]:
        assert cause not in text


def test_planted_counts_match_config(smoke_world: Path) -> None:
    truth = _jsonl(smoke_world / "truth.jsonl")
    assert Counter(t["planted_cause"] for t in truth) == {
        k: v for k, v in get_preset("smoke").world.to_dict()["counts"].items() if v
    }
    ids = [r["id"] for r in _jsonl(smoke_world / "sft.jsonl")]
    assert [t["id"] for t in truth] == ids


def test_planted_causes_are_what_they_claim(smoke_world: Path) -> None:
    meta = json.loads((smoke_world / "world.json").read_text())
    stated = {(f["subject"], f["relation"]): f for f in meta["facts"]}
    corpus = (smoke_world / "pretrain.txt").read_text()
    records = {r["id"]: r for r in _jsonl(smoke_world / "sft.jsonl")}
    truth = {t["id"]: t["planted_cause"] for t in _jsonl(smoke_world / "truth.jsonl")}
    stages = Counter()
    for s in meta["samples"]:
        cause, rec = truth[s["id"]], records[s["id"]]
        rel = "lives_in" if s["relation"] == "country" else s["relation"]
        if cause == "missing_knowledge":
            assert not stated[(s["subject"], rel)]["stated"]
        if cause == "pretrain_conflict":
            fact = stated[(s["subject"], rel)]
            assert fact["strength"] > 1 and rec["response"] != fact["object"]
            assert fact["object"] in corpus
        if cause == "data_conflict":
            assert not stated[(s["subject"], rel)]["stated"]
        if cause in ("none", "rare_pattern") and rel != "profile":
            assert stated[(s["subject"], rel)]["stated"]
        stages[(cause, rec["stage"])] += 1
    assert stages[("left_forgetting", 0)] == get_preset("smoke").world.counts["left_forgetting"]
    assert stages[("left_forgetting", 1)] == 0


def test_conflict_groups_are_near_duplicates_with_different_answers(smoke_world: Path) -> None:
    meta = json.loads((smoke_world / "world.json").read_text())
    records = {r["id"]: r for r in _jsonl(smoke_world / "sft.jsonl")}
    truth = {t["id"]: t["planted_cause"] for t in _jsonl(smoke_world / "truth.jsonl")}
    groups: dict[str, list[dict]] = {}
    for s in meta["samples"]:
        if truth[s["id"]] == "data_conflict":
            groups.setdefault(s["subject"], []).append(records[s["id"]])
    assert groups
    for recs in groups.values():
        assert len(recs) >= 2
        assert len({r["response"] for r in recs}) == len(recs)
        assert len({r["prompt"] for r in recs}) == len(recs)


def test_same_config_gives_byte_identical_folder(tmp_path: Path) -> None:
    cfg = get_preset("smoke").world
    a = generate_world(cfg, tmp_path / "a")
    b = generate_world(get_preset("smoke").world, tmp_path / "b")
    for name in WORLD_FILES:
        assert (a / name).read_bytes() == (b / name).read_bytes()
    other = generate_world(WorldConfig(**{**cfg.to_dict(), "seed": 1}), tmp_path / "c")
    assert (other / "sft.jsonl").read_bytes() != (a / "sft.jsonl").read_bytes()


def test_world_folder_is_never_overwritten(tmp_path: Path) -> None:
    cfg = get_preset("smoke").world
    generate_world(cfg, tmp_path / "w")
    generate_world(cfg, tmp_path / "w")  # same world: a no-op
    other = WorldConfig(**{**cfg.to_dict(), "seed": 7})
    with pytest.raises(FileExistsError, match="different world"):
        generate_world(other, tmp_path / "w")


@pytest.mark.parametrize(
    "raw, key",
    [
        ({"seed": 1, "colour": 3}, "colour"),
        ({"counts": {"none": -1}}, "counts.none"),
        ({"counts": {"typo_cause": 3}}, "counts.typo_cause"),
        ({"counts": {"none": "3"}}, "counts.none"),
        ({"counts": {"data_conflict": 1}}, "counts.data_conflict"),
        ({"counts": {"none": 2, "left_forgetting": 10}}, "counts.none"),
        ({"counts": {"none": 0}}, "counts"),
        ({"stated_share": 2.0}, "stated_share"),
        ({"seed": "x"}, "seed"),
    ],
)
def test_bad_configs_name_the_key(raw: dict, key: str) -> None:
    with pytest.raises(WorldConfigError, match=f"'{key}'"):
        build_world(raw)


def test_config_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"seed": 1,\n "counts": }')
    with pytest.raises(WorldConfigError, match="bad.json, line 2"):
        load_world_config(bad)


def test_cli_world_writes_folder_and_reports_bad_key(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"seed": 3, "counts": {"none": 10, "missing_knowledge": 4, "data_conflict": 4}}))
    assert main(["world", "--config", str(cfg), "--out", str(tmp_path / "w")]) == 0
    truth = _jsonl(tmp_path / "w" / "truth.jsonl")
    assert Counter(t["planted_cause"] for t in truth) == {"none": 10, "missing_knowledge": 4, "data_conflict": 4}
    cfg.write_text(json.dumps({"seed": 3, "counts": {"none": -2}}))
    assert main(["world", "--config", str(cfg), "--out", str(tmp_path / "w2")]) == 2
    assert "counts.none" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_other_mixes_and_sizes_are_satisfied(seed: int) -> None:
    counts = {"none": 40 + 7 * seed, "missing_knowledge": 5 + seed, "pretrain_conflict": 3,
              "data_conflict": 5 + seed, "left_forgetting": 4 * seed, "rare_pattern": 2}
    world = build_world({"seed": seed, "counts": counts})
    got = Counter(t["planted_cause"] for t in world.truth)
    assert got == {k: v for k, v in counts.items() if v}


@pytest.mark.parametrize("name", ["default.json", "skewed.json"])
def test_shipped_world_configs_load(name: str) -> None:
    cfg = load_world_config(Path(__file__).resolve().parents[1] / "data" / "worlds" / name)
    world = build_world(cfg)
    assert Counter(t["planted_cause"] for t in world.truth) == {k: v for k, v in cfg.counts.items() if v}


def test_default_config_file_matches_default_preset() -> None:
    cfg = load_world_config(Path(__file__).resolve().parents[1] / "data" / "worlds" / "default.json")
    assert cfg.to_dict() == get_preset("default").world.to_dict()
