"""The controlled world: contract, determinism, planted causes, no shortcuts, config errors."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest

from ilpnb.cli import main
from ilpnb.config import get_preset
from ilpnb.data.world import WORLD_FILES, build_world, generate_world
from ilpnb.data.world_config import PLANTED_CAUSES, WorldConfig, WorldConfigError, load_world_config

_WORD = re.compile(r"\w+")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def smoke_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(get_preset("smoke").world, tmp_path_factory.mktemp("w") / "world")


@pytest.fixture(scope="module")
def default_world(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_world(get_preset("default").world, tmp_path_factory.mktemp("w") / "world")


def _load(world: Path) -> tuple[list[dict], dict[str, str], dict, list[str]]:
    """Records (each with its cause and world.json entry), causes, facts by key, corpus."""
    records = _jsonl(world / "sft.jsonl")
    truth = {t["id"]: t["planted_cause"] for t in _jsonl(world / "truth.jsonl")}
    meta = json.loads((world / "world.json").read_text())
    samples = {s["id"]: s for s in meta["samples"]}
    for r in records:
        r["cause"], r["sample"] = truth[r["id"]], samples[r["id"]]
    facts = {(f["subject"], f["relation"]): f for f in meta["facts"]}
    return records, truth, facts, (world / "pretrain.txt").read_text().splitlines()


def test_world_folder_has_exactly_the_contract_files(smoke_world: Path) -> None:
    assert sorted(p.name for p in smoke_world.iterdir()) == sorted(WORLD_FILES)


def test_sft_records_carry_no_truth_and_have_options(smoke_world: Path) -> None:
    records = _jsonl(smoke_world / "sft.jsonl")
    assert records
    for r in records:
        assert set(r) == {"id", "prompt", "response", "stage", "options"}
        assert len(r["options"]) == 3 and len(set(r["options"])) == 3 and r["response"] not in r["options"]
        assert r["prompt"].strip() and r["response"].strip()
    assert len({r["id"] for r in records}) == len(records)
    text = (smoke_world / "sft.jsonl").read_text()
    for cause in PLANTED_CAUSES[1:]:
        assert cause not in text


def test_world_json_keeps_no_cause_per_sample(smoke_world: Path) -> None:
    meta = json.loads((smoke_world / "world.json").read_text())
    for s in meta["samples"]:
        assert set(s) == {"id", "subject", "relation", "relations", "structure", "stage", "answer_objects"}
        assert not set(map(str, s.values())) & set(PLANTED_CAUSES[1:])


def test_planted_counts_match_config(smoke_world: Path) -> None:
    truth = _jsonl(smoke_world / "truth.jsonl")
    assert Counter(t["planted_cause"] for t in truth) == {
        k: v for k, v in get_preset("smoke").world.to_dict()["counts"].items() if v
    }
    ids = [r["id"] for r in _jsonl(smoke_world / "sft.jsonl")]
    assert [t["id"] for t in truth] == ids


@pytest.mark.parametrize("which", ["smoke_world", "default_world"])
def test_planted_causes_are_what_they_claim(which: str, request: pytest.FixtureRequest) -> None:
    world = request.getfixturevalue(which)
    records, _, facts, corpus = _load(world)
    strong = json.loads((world / "world.json").read_text())["config"]["conflict_strength"]
    corpus_text = "\n".join(corpus)

    def behind(s: dict, rel: str) -> dict:
        return facts[(s["subject"], "lives_in" if rel == "country" else rel)]

    for r in records:
        s, cause = r["sample"], r["cause"]
        pairs = list(zip(s["relations"], s["answer_objects"]))
        wrong = [rel for rel, obj in pairs if obj != facts[(s["subject"], rel)]["object"]]
        if cause in ("none", "left_forgetting", "rare_pattern"):
            assert not wrong and all(behind(s, rel)["stated"] for rel, _ in pairs), r
        elif cause == "missing_knowledge":
            assert not wrong and any(not behind(s, rel)["stated"] for rel, _ in pairs), r
        elif cause == "pretrain_conflict":
            assert len(wrong) == 1, r
            fact = facts[(s["subject"], wrong[0])]
            assert behind(s, wrong[0])["strength"] == strong > 1
            assert f"{s['subject']}" in corpus_text and fact["object"] in corpus_text
        elif cause == "data_conflict":
            assert all(not behind(s, rel)["stated"] for rel, _ in pairs), r
        assert s["stage"] == r["stage"]


def _groups(records: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """Samples asking the same one fact of the same person."""
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for r in records:
        s = r["sample"]
        if len(s["relations"]) == 1:
            out[(s["subject"], s["relation"])].append(r)
    return {k: v for k, v in out.items() if len(v) > 1}


def _words(text: str) -> str:
    return " ".join(_WORD.findall(text.lower()))


@pytest.mark.parametrize("which", ["smoke_world", "default_world"])
def test_conflicts_and_consistent_paraphrases_are_both_there(which: str, request: pytest.FixtureRequest) -> None:
    records, _, _, _ = _load(request.getfixturevalue(which))
    conflicting, consistent = 0, Counter()
    for recs in _groups(records).values():
        causes = {r["cause"] for r in recs}
        assert len(causes) == 1  # a group is one unit of one planted cause
        objects = [tuple(r["sample"]["answer_objects"]) for r in recs]
        prompts = [_words(r["prompt"]) for r in recs]
        assert len(set(prompts)) == len(prompts)
        # paraphrases by structure, word order and synonyms: no prompt contains another
        assert not any(a != b and (a in b or b in a) for a in prompts for b in prompts)
        if causes == {"data_conflict"}:
            assert len(set(objects)) == len(objects)
            conflicting += 1
        else:
            assert len(set(objects)) == 1
            consistent[causes.pop()] += 1
    assert conflicting and consistent["none"]
    if which == "default_world":
        assert {"none", "missing_knowledge", "pretrain_conflict", "left_forgetting"} <= set(consistent)


def test_every_cause_in_every_stage_in_similar_proportions(default_world: Path) -> None:
    records, _, _, _ = _load(default_world)
    cfg = get_preset("default").world
    by = Counter((r["cause"], r["stage"]) for r in records)
    for cause in PLANTED_CAUSES:
        n = cfg.counts[cause]
        if cause == "left_forgetting":
            assert by[(cause, 0)] == n and by[(cause, 1)] == 0
        else:
            assert abs(by[(cause, 0)] / n - cfg.stage0_share) <= 0.1, cause
            assert by[(cause, 1)] > 0


def test_forgetting_structures_are_restyled_by_the_second_stage(default_world: Path) -> None:
    records, _, _, _ = _load(default_world)
    second = defaultdict(set)
    for r in records:
        if r["stage"] == 1:
            second[r["sample"]["structure"]].add(r["cause"])
    for r in records:
        if r["cause"] == "left_forgetting":
            usual = r["sample"]["structure"].removesuffix("/flipped")
            assert r["sample"]["structure"].endswith("/flipped") and second[usual] == {"none"}


def test_surface_features_are_spread_over_the_causes(default_world: Path) -> None:
    records, _, _, _ = _load(default_world)
    words = defaultdict(list)
    for r in records:
        words[r["cause"]].append(len(_WORD.findall(r["response"])))
    # long multi-part answers are not only rare patterns, short answers not only clean ones
    longest_rare = max(words["rare_pattern"])
    assert min(words["rare_pattern"]) <= 2 and max(words["none"]) >= longest_rare - 2
    for cause in ("none", "missing_knowledge", "pretrain_conflict"):
        assert max(words[cause]) >= 6, cause
    # answers of one fact (bare or in a sentence) in every cause
    for cause in PLANTED_CAUSES:
        assert min(words[cause]) == 1 or cause == "rare_pattern", cause


def test_options_are_drawn_blind_to_the_cause(default_world: Path) -> None:
    records, _, facts, _ = _load(default_world)
    hits, n = 0, 0
    for r in records:
        if r["cause"] != "pretrain_conflict":
            continue
        s = r["sample"]
        for rel, obj in zip(s["relations"], s["answer_objects"]):
            true = facts[(s["subject"], rel)]["object"]
            if obj != true:
                n += 1
                hits += any(re.search(rf"\b{re.escape(true)}\b", o) for o in r["options"])
    assert n and hits / n <= 0.5  # the corpus fact is among the distractors only by chance
    given = defaultdict(set)  # no distractor is an answer another sample gives for that fact
    for r in records:
        s = r["sample"]
        if len(s["relations"]) == 1:
            given[(s["subject"], s["relation"])].add(r["response"])
    for r in records:
        s = r["sample"]
        if len(s["relations"]) == 1:
            assert not set(r["options"]) & given[(s["subject"], s["relation"])]


def test_people_are_asked_about_in_samples_of_several_causes(default_world: Path) -> None:
    records, _, _, _ = _load(default_world)
    causes = defaultdict(set)
    for r in records:
        causes[r["sample"]["subject"]].add(r["cause"])
    assert sum(len(c) > 1 for c in causes.values()) >= 20


def test_model_free_baselines_find_no_shortcut(default_world: Path) -> None:
    baselines = pytest.importorskip("ilpnb.diagnose.baselines")
    table = baselines.score_baselines(default_world)
    sft_only = table[table["reads"] == baselines.SFT_ONLY].set_index("name")["macro_f1"]
    assert (sft_only <= 0.45).all(), sft_only.to_dict()


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
        ({"paraphrase_share": -0.1}, "paraphrase_share"),
        ({"reuse_share": True}, "reuse_share"),
        ({"conflict_group_size": 9}, "conflict_group_size"),
        ({"qa_variants": "3"}, "qa_variants"),
        ({"counts": {"none": 10, "rare_pattern": 1000}, "rare_group_size": 1}, "counts.rare_pattern"),
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
    bad.write_text('{"seed": 1, "paraphrases": 0}')
    with pytest.raises(WorldConfigError, match="bad.json: key 'paraphrases'"):
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
    world = build_world({"seed": seed, "counts": counts, "conflict_group_size": 2 + seed})
    got = Counter(t["planted_cause"] for t in world.truth)
    assert got == {k: v for k, v in counts.items() if v}
    assert len({r["stage"] for r in world.records}) == (2 if counts["left_forgetting"] else 1)


@pytest.mark.parametrize("name", ["default.json", "skewed.json"])
def test_shipped_world_configs_load(name: str) -> None:
    cfg = load_world_config(Path(__file__).resolve().parents[1] / "data" / "worlds" / name)
    world = build_world(cfg)
    assert Counter(t["planted_cause"] for t in world.truth) == {k: v for k, v in cfg.counts.items() if v}


def test_default_config_file_matches_default_preset() -> None:
    cfg = load_world_config(Path(__file__).resolve().parents[1] / "data" / "worlds" / "default.json")
    assert cfg.to_dict() == get_preset("default").world.to_dict()
