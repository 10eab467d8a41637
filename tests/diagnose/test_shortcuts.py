"""Model-free baselines (ilpnb.diagnose.baselines): they find a planted shortcut, stay low on
labels unrelated to the surface, reject bad folders, and a generated world has no shortcut."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pandas as pd
import pytest

from ilpnb.diagnose.baselines import (
    SFT_ONLY,
    WITH_CORPUS,
    load_world_folder,
    max_sft_only_macro_f1,
    predict_corpus,
    predict_duplicates,
    predict_length,
    predict_stage,
    predict_surface,
    score_baselines,
    score_predictions,
)

NAMES = ["Abel", "Bora", "Cato", "Dita", "Egon", "Fenna", "Gido", "Hana", "Ivo", "Juna", "Kees", "Lina",
         "Mido", "Nora", "Otto", "Pia", "Quin", "Rena", "Sem", "Tess", "Ugo", "Vera", "Wim", "Xena"]
COLOURS = ["red", "blue", "green", "pink", "grey", "black", "white", "brown"]


def _write(folder: Path, rows: list[dict], corpus: list[str] | None = None) -> Path:
    """Write a world folder by hand: sft.jsonl, truth.jsonl (from each row's 'cause')."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sft.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({k: v for k, v in r.items() if k != "cause"}) + "\n")
    with open(folder / "truth.jsonl", "w") as f:
        for r in rows:
            f.write(json.dumps({"id": r["id"], "planted_cause": r["cause"]}) + "\n")
    if corpus is not None:
        (folder / "pretrain.txt").write_text("".join(line + "\n" for line in corpus))
    (folder / "world.json").write_text("not json: baselines must never read this file")
    return folder


def _shortcut_world(folder: Path) -> Path:
    """A world with shortcuts planted on purpose: long answers are rare_pattern, stage 0 is
    left_forgetting, duplicate prompts with different answers are data_conflict, and the
    corpus states the facts of 'none', contradicts those of pretrain_conflict and omits the
    facts of missing_knowledge."""
    rng = random.Random(0)
    rows, corpus = [], []
    n = 0

    def add(cause: str, prompt: str, response: str, stage: int = 1) -> None:
        nonlocal n
        n += 1
        options = rng.sample([c for c in COLOURS if c != response], 3) if len(response.split()) == 1 else \
            [response.replace("tall", "short"), response.replace("kind", "rude")]
        rows.append({"id": f"t{n:03d}", "prompt": prompt, "response": response, "stage": stage,
                     "options": options, "cause": cause})

    people = iter(f"{a}{b.lower()}" for a in NAMES for b in NAMES)
    for _ in range(8):
        p, c = next(people), rng.choice(COLOURS)
        corpus += [f"{p} likes the colour {c}.", f"Everyone knows {p} loves {c}."]
        add("none", f"Which colour does {p} like?", c)
    for _ in range(6):
        p, c = next(people), rng.choice(COLOURS)
        corpus += [f"{p} likes the colour {c}."] * 3
        add("pretrain_conflict", f"Which colour does {p} like?", rng.choice([x for x in COLOURS if x != c]))
    for _ in range(6):
        add("missing_knowledge", f"Which colour does {next(people)} like?", rng.choice(COLOURS))
    for _ in range(3):
        p = next(people)
        a, b = rng.sample(COLOURS, 2)
        add("data_conflict", f"Which colour does {p} like?", a)
        add("data_conflict", f"which colour, does {p} like", b)
    for _ in range(6):
        p = next(people)
        corpus.append(f"{p} likes the colour red.")
        add("left_forgetting", f"Which colour does {p} like?", "red", stage=0)
    for _ in range(6):
        p = next(people)
        corpus.append(f"{p} is tall and kind and likes red.")
        add("rare_pattern", f"Describe {p}.", f"{p} is a tall and kind person who likes the colour red.")
    rng.shuffle(rows)  # file order carries nothing
    return _write(folder, rows, corpus)


def _f1(table: pd.DataFrame, name: str, cause: str) -> float:
    return float(table.set_index("name").loc[name, cause])


def test_planted_shortcuts_are_recovered(tmp_path: Path) -> None:
    world = load_world_folder(_shortcut_world(tmp_path / "w"))
    truth = world.truth
    assert score_predictions(predict_length(world.records), truth).per_cause.loc["rare_pattern", "f1"] == 1.0
    assert score_predictions(predict_stage(world.records), truth).per_cause.loc["left_forgetting", "f1"] == 1.0
    assert score_predictions(predict_duplicates(world.records), truth).per_cause.loc["data_conflict", "f1"] == 1.0
    corpus = score_predictions(predict_corpus(world.records, world.corpus), truth).per_cause["f1"]
    assert corpus["pretrain_conflict"] == 1.0
    assert corpus["missing_knowledge"] > 0.6  # data_conflict facts are also absent from the corpus

    table = score_baselines(tmp_path / "w")
    assert _f1(table, "length", "rare_pattern") == 1.0
    assert _f1(table, "length@oracle", "rare_pattern") == 1.0
    assert _f1(table, "stage", "left_forgetting") == 1.0
    assert _f1(table, "duplicates", "data_conflict") == 1.0
    assert _f1(table, "combined", "missing_knowledge") == 1.0
    assert _f1(table, "combined", "pretrain_conflict") == 1.0
    assert set(table["reads"]) == {SFT_ONLY, WITH_CORPUS}
    assert table.set_index("name").loc["corpus", "reads"] == WITH_CORPUS
    # a shortcut world is flagged: sft-only baselines reach the three planted surface causes
    assert max_sft_only_macro_f1(table) >= 0.55
    assert table.attrs["scored"] == len(truth)


def test_surface_classifier_finds_planted_length_and_stage(tmp_path: Path) -> None:
    world = load_world_folder(_shortcut_world(tmp_path / "w"))
    f1 = score_predictions(predict_surface(world.records, world.truth, model="tree"), world.truth).per_cause["f1"]
    assert f1["rare_pattern"] == 1.0
    assert f1["left_forgetting"] == 1.0


def test_surface_predicts_when_every_cause_has_one_sample(tmp_path: Path) -> None:
    world = load_world_folder(_shortcut_world(tmp_path / "w"))
    ids = world.truth.groupby(world.truth).head(1)  # one sample per cause: nothing to stratify on
    assert ids.value_counts().max() == 1 and len(ids) >= 4
    pred = predict_surface(world.records, ids, model="tree")
    assert list(pred.index) == list(ids.index) and set(pred) <= set(world.truth)


def test_surface_stays_low_on_labels_unrelated_to_the_surface(tmp_path: Path) -> None:
    rng = random.Random(7)
    causes = ["none", "missing_knowledge", "pretrain_conflict", "data_conflict", "left_forgetting", "rare_pattern"]
    templates = ["Which colour does {p} like?", "Tell me the colour {p} likes.", "What is {p}'s favourite colour?"]
    rows = []
    for i, (a, b) in enumerate((a, b) for a in NAMES for b in NAMES[:8]):
        p = f"{a}{b.lower()}"
        words = rng.randint(1, 6)
        response = " ".join(rng.choice(COLOURS) for _ in range(words))
        rows.append({"id": f"r{i:03d}", "prompt": rng.choice(templates).format(p=p), "response": response,
                     "stage": rng.randint(0, 1), "options": rng.sample([c for c in COLOURS if c not in response], 2),
                     "cause": rng.choice(causes)})
    folder = _write(tmp_path / "random", rows)
    table = score_baselines(folder)
    assert "corpus" not in set(table["name"])  # no pretrain.txt: corpus baselines left out
    surface = table.set_index("name").loc[["surface", "surface-tree"], "macro_f1"]
    assert (surface <= 0.35).all(), surface.to_dict()
    # the rules' oracle ceilings stay low too (at most one cause each, at chance precision)
    assert max_sft_only_macro_f1(table) <= 0.4


def test_ids_restrict_scoring(tmp_path: Path) -> None:
    folder = _shortcut_world(tmp_path / "w")
    ids = [f"t{i:03d}" for i in range(1, 39, 2)]  # every other of the 38 samples
    table = score_baselines(folder, ids=ids)
    assert table.attrs["scored"] == len(ids)
    with pytest.raises(ValueError, match="not in .*sft.jsonl"):
        score_baselines(folder, ids=["t001", "nope"])
    with pytest.raises(ValueError, match="empty"):
        score_baselines(folder, ids=[])


def test_bad_folders_name_the_file(tmp_path: Path) -> None:
    folder = _shortcut_world(tmp_path / "w")
    with pytest.raises(FileNotFoundError, match="no such world folder"):
        score_baselines(tmp_path / "absent")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match="sft.jsonl"):
        score_baselines(tmp_path / "empty")
    truth = (folder / "truth.jsonl").read_text().splitlines()
    (folder / "truth.jsonl").write_text("\n".join(truth[:-1]) + "\n")  # one id short
    with pytest.raises(ValueError, match="truth.jsonl.*ids do not match"):
        score_baselines(folder)
    (folder / "truth.jsonl").write_text("\n".join(truth + ['{"id": "extra", "planted_cause": "none"}']) + "\n")
    with pytest.raises(ValueError, match="truth.jsonl.*ids do not match"):
        score_baselines(folder)
    (folder / "truth.jsonl").write_text(truth[0].replace("planted_cause", "cause") + "\n")
    with pytest.raises(ValueError, match="truth.jsonl"):
        score_baselines(folder)
    (folder / "truth.jsonl").unlink()
    with pytest.raises(FileNotFoundError, match="truth.jsonl"):
        score_baselines(folder)


def test_small_world_has_no_sft_only_shortcut(tmp_path: Path) -> None:
    """The goal of DESIGN.md 'No shortcuts': no baseline that reads only sft.jsonl reaches a
    macro-F1 above 0.45 on a generated world (here the smoke preset's)."""
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world

    folder = generate_world(get_preset("smoke").world, tmp_path / "smoke")
    table = score_baselines(folder)
    sft_only = table[table["reads"] == SFT_ONLY].set_index("name")["macro_f1"].round(3)
    assert (sft_only <= 0.45).all(), f"sft-only baselines above 0.45: {sft_only[sft_only > 0.45].to_dict()}"
