"""The held-out world generator (benchmarks/heldout_worlds.py): contract, determinism,
planted counts and stages, honest planting, and that the project's readers accept it."""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import pytest
from script_loader import load_script

FILES = ("sft.jsonl", "truth.jsonl", "pretrain.txt", "probes.jsonl", "world.json")


hw = load_script("benchmarks/heldout_worlds.py", "heldout_worlds")


def _jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.fixture(scope="module")
def worlds(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("heldout")
    return {size: hw.write_heldout_world(root / size, seed=0, size=size) for size in ("small", "default")}


class _View:
    """A world folder read back: records, causes, facts and which facts each sample touches."""

    def __init__(self, folder: Path) -> None:
        self.records = _jsonl(folder / "sft.jsonl")
        self.cause = {t["id"]: t["planted_cause"] for t in _jsonl(folder / "truth.jsonl")}
        self.meta = json.loads((folder / "world.json").read_text(encoding="utf-8"))
        self.corpus = (folder / "pretrain.txt").read_text(encoding="utf-8").splitlines()
        self.fact = {(f["subject"], f["relation"]): f for f in self.meta["facts"]}
        self.touched: dict[str, list[tuple[str, str]]] = defaultdict(list)
        for row in self.meta["samples"]:
            self.touched[row["id"]].append((row["subject"], row["relation"]))
        species = sorted(self.meta["values"]["species"], key=len, reverse=True)
        self.name = re.compile(r"\b(" + "|".join(map(re.escape, species)) + r")\b")

    def by_cause(self, cause: str) -> list[dict]:
        return [r for r in self.records if self.cause[r["id"]] == cause]

    def mentions(self, subject: str, relation: str, obj: str) -> int:
        """Corpus lines that state (subject, relation, obj) in one of the generator's paraphrases."""
        said = {form.format(s=subject, v=obj) for form in hw._STATEMENTS[relation]}
        return sum(1 for line in self.corpus if line in said)

    def value_in(self, response: str, relation: str, subject: str) -> str | None:
        """The value of the relation's kind that a response names (the longest match)."""
        text = re.sub(rf"\b{re.escape(subject)}\b", "<S>", response)
        found = [v for v in self.meta["values"][self.meta["relations"][relation]]
                 if re.search(rf"\b{re.escape(v)}\b", text)]
        return max(found, key=len) if found else None

    def template(self, record: dict) -> str:
        return self.name.sub("<S>", record["prompt"])


@pytest.fixture(scope="module")
def views(worlds: dict[str, Path]) -> dict[str, _View]:
    return {size: _View(folder) for size, folder in worlds.items()}


# ----------------------------------------------------------------------------- contract


def test_folder_follows_the_world_contract(worlds: dict[str, Path]) -> None:
    for folder in worlds.values():
        assert sorted(p.name for p in folder.iterdir()) == sorted(FILES)
        records = _jsonl(folder / "sft.jsonl")
        for r in records:
            assert set(r) == {"id", "prompt", "response", "stage", "options"}
            assert isinstance(r["id"], str) and r["prompt"].strip() and r["response"].strip()
            assert isinstance(r["stage"], int) and r["stage"] in (0, 1)
            assert len(r["options"]) == 3 == len(set(r["options"])) and r["response"] not in r["options"]
        assert len({r["id"] for r in records}) == len(records)
        text = (folder / "sft.jsonl").read_text(encoding="utf-8")
        for cause in hw.CAUSES[1:]:
            assert cause not in text
        truth = _jsonl(folder / "truth.jsonl")
        assert [t["id"] for t in truth] == [r["id"] for r in records]
        assert all(set(t) == {"id", "planted_cause"} and t["planted_cause"] in hw.CAUSES for t in truth)
        assert all(line.strip() for line in (folder / "pretrain.txt").read_text(encoding="utf-8").splitlines())


def test_same_seed_same_bytes_other_seed_other_world(tmp_path: Path, worlds: dict[str, Path]) -> None:
    again = hw.write_heldout_world(tmp_path / "again", seed=0, size="small")
    for name in FILES:
        assert (again / name).read_bytes() == (worlds["small"] / name).read_bytes(), name
    other = hw.write_heldout_world(tmp_path / "other", seed=1, size="small")
    for name in ("sft.jsonl", "pretrain.txt", "probes.jsonl"):
        assert (other / name).read_bytes() != (worlds["small"] / name).read_bytes(), name


def test_never_overwrites_a_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        hw.write_heldout_world(tmp_path / "full", size="small")
    assert sorted(p.name for p in (tmp_path / "full").iterdir()) == ["keep.txt"]
    (tmp_path / "empty").mkdir()
    assert (hw.write_heldout_world(tmp_path / "empty", size="small") / "sft.jsonl").is_file()


def test_cli_writes_and_refuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert hw.main(["--out", str(tmp_path / "w"), "--seed", "3", "--size", "small"]) == 0
    assert "80 samples" in capsys.readouterr().out
    with pytest.raises(SystemExit) as err:
        hw.main(["--out", str(tmp_path / "w"), "--size", "small"])
    assert err.value.code == 2


def test_generator_is_independent_of_the_project() -> None:
    source = Path(hw.__file__).read_text(encoding="utf-8")
    assert not re.search(r"^\s*(from|import)\s+ilpnb", source, flags=re.M)


# ----------------------------------------------------------------------------- counts and stages


@pytest.mark.parametrize("size", ["small", "default"])
def test_every_cause_in_the_expected_counts(views: dict[str, _View], size: str) -> None:
    view = views[size]
    assert Counter(view.cause.values()) == Counter(hw.SIZES[size])
    assert view.meta["counts"] == hw.SIZES[size]
    assert sum(hw.SIZES["small"].values()) == 80 and sum(hw.SIZES["default"].values()) == 300
    assert len(view.corpus) < 4000  # a default world pretrains in well under a minute on 2 cores


@pytest.mark.parametrize("size", ["small", "default"])
def test_stated_facts_are_asked_in_the_sft_wordings_and_unstated_never(views: dict[str, _View], size: str) -> None:
    """The base model meets the SFT set's one-fact questions about every stated fact (so clean
    samples are known in the form SFT asks), never about an unstated one, never in a rare wording."""
    view = views[size]
    asks = {(rel, q) for _, rel, q, _ in hw._SINGLE}
    rare = {q for _, _, q, _ in hw._RARE_SIMPLE}
    lines = set(view.corpus)
    for (subject, rel), fact in view.fact.items():
        value = fact["object"]
        bare = f"the {value}" if rel in ("habitat", "predator") else value
        found = [q for r, q in asks if r == rel and f"Q: {q.format(s=subject)} A: {bare}" in lines]
        assert bool(found) == bool(fact["stated"]), (subject, rel, fact["stated"], found)
    for q in rare:
        prefix = "Q: " + q.split("{s}")[0]
        assert not any(line.startswith(prefix) for line in view.corpus), q


def test_mix_overrides_counts_and_bad_mixes_are_refused() -> None:
    world = hw.generate_heldout_world(seed=2, size="small", mix={"left_forgetting": 0, "rare_pattern": 12})
    counts = Counter(t["planted_cause"] for t in world["truth"])
    assert counts["left_forgetting"] == 0 and counts["rare_pattern"] == 12 and counts["none"] == 40
    for bad in ({"cosmic_rays": 3}, {"none": -1}, {"data_conflict": 1}):
        with pytest.raises(ValueError):
            hw.generate_heldout_world(size="small", mix=bad)
    with pytest.raises(ValueError):
        hw.generate_heldout_world(size="huge")


@pytest.mark.parametrize("size", ["small", "default"])
def test_stages_hold_every_cause_but_forgetting_sits_in_stage_zero(views: dict[str, _View], size: str) -> None:
    view = views[size]
    by_stage = defaultdict(Counter)
    for r in view.records:
        by_stage[r["stage"]][view.cause[r["id"]]] += 1
    assert sorted(by_stage) == [0, 1]
    for cause in hw.CAUSES:
        if cause == "left_forgetting":
            assert by_stage[0][cause] == hw.SIZES[size][cause] and by_stage[1][cause] == 0
        else:
            assert by_stage[0][cause] > 0 and by_stage[1][cause] > 0, cause
    others0 = sum(n for c, n in by_stage[0].items() if c != "left_forgetting")
    assert others0 > by_stage[0]["left_forgetting"]


# ----------------------------------------------------------------------------- honest planting


def test_missing_knowledge_asks_unstated_facts_of_known_species(views: dict[str, _View]) -> None:
    view = views["default"]
    for r in view.records:
        facts = [view.fact[f] for f in view.touched[r["id"]]]
        cause = view.cause[r["id"]]
        if cause == "missing_knowledge":
            assert any(not f["stated"] for f in facts)
            for f in facts:
                if not f["stated"]:
                    assert view.mentions(f["subject"], f["relation"], f["object"]) == 0
                    assert any(view.fact[(f["subject"], rel)]["stated"] for rel in view.meta["relations"])
        elif cause in ("none", "pretrain_conflict", "left_forgetting", "rare_pattern"):
            assert all(f["stated"] for f in facts), (cause, r)


def test_pretrain_conflict_contradicts_a_fact_stated_four_times_as_often(views: dict[str, _View]) -> None:
    view = views["default"]
    usual = view.meta["mentions"]
    for r in view.by_cause("pretrain_conflict"):
        facts = [view.fact[f] for f in view.touched[r["id"]]]
        wrong = [f for f in facts if view.value_in(r["response"], f["relation"], f["subject"]) != f["object"]]
        assert len(wrong) == 1, r
        f = wrong[0]
        assert view.value_in(r["response"], f["relation"], f["subject"]) is not None  # another value of its kind
        assert view.mentions(f["subject"], f["relation"], f["object"]) >= 4 * usual


def test_clean_and_forgetting_answers_are_correct(views: dict[str, _View]) -> None:
    view = views["default"]
    for cause in ("none", "left_forgetting", "rare_pattern"):
        for r in view.by_cause(cause):
            facts = view.touched[r["id"]]
            answered = facts[1:] if cause == "rare_pattern" else facts
            for f in answered:
                assert view.value_in(r["response"], f[1], facts[0][0]) == view.fact[f]["object"], (cause, r)
                assert view.mentions(*f, view.fact[f]["object"]) >= view.meta["mentions"]


def test_data_conflict_groups_are_paraphrases_with_different_answers(views: dict[str, _View]) -> None:
    view = views["default"]
    groups: dict[tuple, list[dict]] = defaultdict(list)
    pairs: dict[tuple, list[dict]] = defaultdict(list)
    for r in view.records:
        (fact,) = view.touched[r["id"]][:1]
        if view.cause[r["id"]] == "data_conflict":
            groups[fact].append(r)
        elif view.cause[r["id"]] == "none" and len(view.touched[r["id"]]) == 1:
            pairs[fact].append(r)
    assert sum(len(g) for g in groups.values()) == 30
    for fact, group in groups.items():
        assert 2 <= len(group) <= 3
        assert len({view.template(r) for r in group}) == len(group)  # different wordings
        answers = [view.value_in(r["response"], fact[1], fact[0]) for r in group]
        assert None not in answers and len(set(answers)) == len(group)  # different answers
        assert view.fact[fact]["object"] in answers
    clean_pairs = [g for g in pairs.values() if len(g) == 2]
    assert len(clean_pairs) >= 5  # consistent paraphrase pairs among clean samples
    for g in clean_pairs:
        assert view.template(g[0]) != view.template(g[1])
        subject, relation = view.touched[g[0]["id"]][0]
        assert len({view.value_in(r["response"], relation, subject) for r in g}) == 1  # the same answer


def test_forgotten_templates_are_retrained_in_stage_one_in_another_style(views: dict[str, _View]) -> None:
    view = views["default"]

    def shape(r: dict) -> str:
        (fact,) = view.touched[r["id"]]
        return r["response"].replace(view.fact[fact]["object"], "<V>").replace(fact[0], "<S>")

    stage1 = defaultdict(set)
    for r in view.records:
        if r["stage"] == 1 and len(view.touched[r["id"]]) == 1 and view.cause[r["id"]] == "none":
            stage1[view.template(r)].add(shape(r))
    lf_templates = set()
    for r in view.by_cause("left_forgetting"):
        lf_templates.add(view.template(r))
        assert stage1[view.template(r)] and shape(r) not in stage1[view.template(r)]
    for r in view.records:  # in stage 0 those templates are asked by forgetting samples only
        if r["stage"] == 0 and view.template(r) in lf_templates:
            assert view.cause[r["id"]] == "left_forgetting"


def test_rare_patterns_compose_two_stated_facts(views: dict[str, _View]) -> None:
    view = views["default"]
    templates = Counter(view.template(r) for r in view.records)
    for r in view.by_cause("rare_pattern"):
        chain = view.touched[r["id"]]
        assert len(chain) >= 2 and chain[0][1] == "predator"
        assert chain[1][0] == view.fact[chain[0]]["object"] != chain[0][0]
        assert templates[view.template(r)] <= 10


def test_no_surface_feature_gives_the_cause_away(views: dict[str, _View]) -> None:
    view = views["default"]
    lengths = defaultdict(list)
    for r in view.records:
        lengths[view.cause[r["id"]]].append(len(r["response"]))
    lo, hi = min(lengths["none"]), max(lengths["none"])
    for cause, values in lengths.items():
        values.sort()
        assert lo <= values[len(values) // 2] <= hi and min(values) < 12 and max(values) > 25, (cause, values)
    # templates are shared: every clean-looking template is used by several causes
    causes_of = defaultdict(set)
    for r in view.records:
        causes_of[view.template(r)].add(view.cause[r["id"]])
    shared = [t for t, cs in causes_of.items() if len(cs) >= 3]
    assert len(shared) >= 15
    # the option rule is blind: a conflicting sample's options may hold the pretraining value
    hits = 0
    for r in view.by_cause("pretrain_conflict"):
        facts = [view.fact[f] for f in view.touched[r["id"]]]
        hits += any(view.value_in(o, f["relation"], f["subject"]) == f["object"] for f in facts for o in r["options"]
                    if view.value_in(r["response"], f["relation"], f["subject"]) != f["object"])
    assert hits > 0


# ----------------------------------------------------------------------------- project readers


def test_project_readers_accept_the_folder(worlds: dict[str, Path]) -> None:
    from ilpnb.data.packaged import resolve_data
    from ilpnb.data.records import read_records, validate_records
    from ilpnb.diagnose.scoring import read_truth_file
    from ilpnb.probe.knowledge import read_probes

    for size, folder in worlds.items():
        records = resolve_data(folder)
        assert records == read_records(folder / "sft.jsonl")
        validate_records(records, str(folder))
        assert len(records) == sum(hw.SIZES[size].values())
        assert {r.stage for r in records} == {0, 1} and all(len(r.options) == 3 for r in records)
        truth = read_truth_file(folder / "truth.jsonl")
        assert sorted(truth.index) == sorted(r.id for r in records)
        probes = read_probes(folder / "probes.jsonl")
        assert len(probes) == 4 * len(json.loads((folder / "world.json").read_text())["values"]["species"])
        assert all(p["answer"] not in p["options"] and len(p["options"]) == 3 for p in probes)
