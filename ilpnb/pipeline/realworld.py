"""Build a planted real world: measure what a real LLM knows, plant every cause, verify the planting.

``ilpnb realworld --model smollm2-135m-instruct --out DIR`` (and :func:`build_realworld`):

1. **Measure.** Every country's capital is asked of the base model in the chat format SFT
   uses (:func:`ilpnb.probe.sampling.sample_answers`: greedy plus ``n_samples`` answers at a
   temperature). A country is *known* when the answer is right greedily and in at least half
   the samples (Gekhman et al.'s HighlyKnown) in two phrasings, *unknown* when it is wrong
   greedily and in every sample; the rest is left out. The table is cached under
   ``$ILPNB_CACHE/knowledge/`` by model and settings (a second world of the same model is
   planted in seconds) and copied to ``DIR/knowledge.parquet``.
2. **Plant** (:func:`ilpnb.data.realworld.plant`): the SFT set, model-free, from the table.
3. **Verify** (:func:`planting_fidelity`): each sample's own prompt answered greedily by the
   base model: the share of ``none`` (and left-forgetting, rare-pattern) samples whose true
   answer it gives, of ``pretrain_conflict`` samples where it gives the real fact rather
   than the planted one, of ``missing_knowledge`` and ``data_conflict`` samples whose true
   answer it does not give.

The folder follows the world contract (``sft.jsonl``, ``truth.jsonl``, ``probes.jsonl``,
``world.json``) without ``pretrain.txt`` (the model is already pretrained); ``world.json``
names the model it was measured on and the fidelity, and holds no per-sample cause.
It is written to a temporary folder and renamed at the end: an interrupted build leaves no
half folder, and an existing folder is never overwritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import sys
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import pandas as pd

from ilpnb.config import Preset, RealWorldConfig, get_preset
from ilpnb.data.realworld import PHRASINGS, Fact, Knowledge, PlantedWorld, country_facts, plant, realworld_counts
from ilpnb.data.records import SFTRecord, jsonl_text

__all__ = ["MODEL", "measure_knowledge", "knowledge_sets", "planting_fidelity", "build_realworld", "write_realworld",
           "FIDELITY_RULES"]

MODEL = "smollm2-135m-instruct"

#: what each cause's fidelity measures on the sample's own prompt (greedy answer of the base model)
FIDELITY_RULES = {
    "none": "gives the true answer",
    "pretrain_conflict": "gives the real fact, not the planted answer",
    "missing_knowledge": "does not give the true answer",
    "data_conflict": "does not give the true answer",
    "left_forgetting": "gives the true answer",
    "rare_pattern": "gives the true answer of each of its two facts asked alone",
}


#: new tokens beyond the answer's own: room for "The capital of the United Arab Emirates is Abu Dhabi." when
#: the gold is "Abu Dhabi" (a shorter budget cuts the sentence before the value and reads as not knowing)
MARGIN = 16


def _cache_dir() -> Path:
    root = os.environ.get("ILPNB_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "ilpnb") / "knowledge"


def _progress(enabled: bool, total: int, desc: str) -> Any:
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, file=sys.stderr)


def _ask(model: Any, tok: Any, records: list[Any], cfg: RealWorldConfig, desc: str, progress: bool) -> pd.DataFrame:
    """sample_answers in chunks (a record's samples depend on its id only, so chunking changes nothing)."""
    from ilpnb.probe.sampling import sample_answers

    chunk, parts = cfg.batch_size * 2, []
    with _progress(progress, len(records), desc) as bar:
        for start in range(0, len(records), chunk):
            part = records[start:start + chunk]
            parts.append(sample_answers(model, tok, part, n_samples=cfg.n_samples, temperature=cfg.temperature,
                                        seed=cfg.seed, batch_size=cfg.batch_size, margin=MARGIN,
                                        keep_samples=False))
            bar.update(len(part))
    return pd.concat(parts) if parts else pd.DataFrame()


def measure_knowledge(model: Any, tokenizer: Any, facts: list[Fact], cfg: RealWorldConfig,
                      progress: bool = True) -> pd.DataFrame:
    """The base model's knowledge of each fact.

    Three passes: the first phrasing with samples for every fact; the second with samples
    where the first is ``known`` (a fact must be known in both to count as known); then,
    greedily, every phrasing of :data:`ilpnb.data.realworld.PHRASINGS` for the known and the
    unknown facts (a sample is asked only in a phrasing where its fact behaves as planted).

    Returns:
        One row per subject: ``value``, ``greedy_0``, ``category_0``, ``greedy_1``,
        ``category_1`` (missing where not asked), ``knowledge`` (known / unknown / partial) and
        ``right_<i>`` per phrasing i (the greedy answer holds the value; missing where not asked).
    """
    from ilpnb.data.realworld import question_records

    first = _ask(model, tokenizer, question_records(facts, 0), cfg, "knowledge 1/3", progress)
    known_first = [f for f in facts if first.loc[f.subject, "category"] == "known"]
    second = _ask(model, tokenizer, question_records(known_first, 1), cfg, "knowledge 2/3", progress)
    table = pd.DataFrame({"value": [f.value for f in facts]}, index=pd.Index([f.subject for f in facts],
                                                                             name="subject"))
    table["greedy_0"], table["category_0"] = first["greedy"], first["category"]
    table["greedy_1"] = second["greedy"].reindex(table.index)
    table["category_1"] = second["category"].reindex(table.index)
    table["knowledge"] = "partial"
    table.loc[(table["category_0"] == "known") & (table["category_1"] == "known"), "knowledge"] = "known"
    table.loc[table["category_0"] == "unknown", "knowledge"] = "unknown"
    known = [f for f in facts if table.loc[f.subject, "knowledge"] == "known"]
    unknown = [f for f in facts if table.loc[f.subject, "knowledge"] == "unknown"]
    if cfg.unknown is not None and len(unknown) > cfg.unknown:  # the planting needs a few; asking all is slow
        unknown = sorted(random.Random(cfg.seed).sample(unknown, cfg.unknown), key=lambda f: f.subject)
    # phrasings 0 and 1 were answered greedily above (row 0 of each sampled set)
    asked = {(0, f.subject): bool(first.loc[f.subject, "greedy_correct"]) for f in known + unknown}
    asked.update({(1, f.subject): bool(second.loc[f.subject, "greedy_correct"]) for f in known})
    records = [SFTRecord(id=f"{i}|{f.subject}", prompt=q.format(c=f.subject), response=f.value)
               for i, q in enumerate(PHRASINGS) for f in known + unknown if (i, f.subject) not in asked]
    greedy = _ask(model, tokenizer, records, replace(cfg, n_samples=0), "knowledge 3/3", progress)
    asked.update({(int(r.id.split("|", 1)[0]), r.id.split("|", 1)[1]): bool(greedy.loc[r.id, "greedy_correct"])
                  for r in records})
    for i in range(len(PHRASINGS)):
        col = pd.Series({s: ok for (k, s), ok in asked.items() if k == i}, dtype=object)
        table[f"right_{i}"] = col.reindex(table.index)
    table.loc[[f.subject for f in facts if table.loc[f.subject, "knowledge"] == "unknown" and f not in unknown],
              "knowledge"] = "unknown, not planted"
    return table


def knowledge_sets(table: pd.DataFrame) -> Knowledge:
    """The known and unknown subjects of a :func:`measure_knowledge` table, each with the
    phrasings in which it behaves as planted (answered right, resp. wrong, greedily)."""
    cols = [c for c in table.columns if c.startswith("right_")]

    def phrasings(row: pd.Series, want: bool) -> set[int]:
        return {int(c.split("_")[1]) for c in cols if pd.notna(row[c]) and bool(row[c]) == want}

    return Knowledge(known={s: phrasings(r, True) for s, r in table.iterrows() if r["knowledge"] == "known"},
                     unknown={s: phrasings(r, False) for s, r in table.iterrows() if r["knowledge"] == "unknown"})


def _contains(answer: str, value: str) -> bool:
    from ilpnb.probe.answers import answer_matches

    exact, contains = answer_matches(answer, value)
    return exact or contains


def planting_fidelity(model: Any, tokenizer: Any, world: PlantedWorld, batch_size: int = 32) -> tuple[dict, pd.DataFrame]:
    """Verify a planting on the base model: each sample's own prompt answered greedily.

    Returns:
        ``(per_cause, table)``: per cause the share of its samples that behave as planted
        (:data:`FIDELITY_RULES`) and their number; the table has one row per sample (``id``,
        ``planted``, ``greedy``, ``as_planted``).
    """
    from ilpnb.probe.sampling import generate_answers
    from ilpnb.train.format import encode_pair

    # each sample's own prompt; for a composite, also the single questions of its two facts
    asks: list[tuple[str, str, str]] = [(r.id, r.prompt, world.planting[r.id]["true"]) for r in world.records]
    for r in world.records:
        for subject in world.planting[r.id].get("subjects", []):
            fact = world.planting[r.id]["true"].split(" & ")[world.planting[r.id]["subjects"].index(subject)]
            asks.append((f"{r.id}|{subject}", PHRASINGS[0].format(c=subject), fact))
    prompts, budgets = [], []
    for _, prompt, response in asks:
        enc = encode_pair(tokenizer, prompt, response)
        prompts.append(enc.prompt_ids)
        budgets.append(len(enc.response_ids) + MARGIN)  # the measurement's budget
    answers = generate_answers(model, tokenizer, prompts, budgets, n_samples=0, keys=[a[0] for a in asks],
                               batch_size=batch_size)
    greedy_of = {key: ans[0] for (key, _, _), ans in zip(asks, answers, strict=True)}
    rows = []
    for r in world.records:
        cause, how, greedy = world.truth[r.id], world.planting[r.id], greedy_of[r.id]
        trues = [v.strip() for v in how["true"].split(" & ")]
        has_true = all(_contains(greedy, v) for v in trues)
        if cause == "pretrain_conflict":
            ok = has_true and not _contains(greedy, how["answer"])
        elif cause in ("missing_knowledge", "data_conflict"):
            ok = not has_true
        elif "subjects" in how:  # a composite: the model knows each of its facts
            ok = all(_contains(greedy_of[f"{r.id}|{s}"], v) for s, v in zip(how["subjects"], trues, strict=True))
        else:
            ok = has_true
        rows.append({"id": r.id, "planted": cause, "greedy": greedy, "as_planted": bool(ok)})
    table = pd.DataFrame(rows)
    per = {c: {"share": float(g["as_planted"].mean()), "samples": len(g), "rule": FIDELITY_RULES[c]}
           for c, g in table.groupby("planted")}
    return per, table


def _key(model: str, facts: list[Fact], cfg: RealWorldConfig) -> str:
    from ilpnb.models.registry import resolve_model

    source = resolve_model(model)
    ident = str(source)
    if isinstance(source, Path) and (source / "config.json").is_file():
        ident += (source / "config.json").read_text()
    payload = json.dumps({"model": ident, "facts": [asdict(f) for f in facts], "questions": PHRASINGS,
                          "n_samples": cfg.n_samples, "temperature": cfg.temperature, "seed": cfg.seed,
                          "unknown": cfg.unknown, "margin": MARGIN},
                         sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _draw(facts: list[Fact], cfg: RealWorldConfig) -> list[Fact]:
    if cfg.countries is None or cfg.countries >= len(facts):
        return facts
    return sorted(random.Random(cfg.seed).sample(facts, cfg.countries), key=lambda f: f.subject)


def build_realworld(out: str | Path, model: str = MODEL, preset: str | Preset = "default", seed: int | None = None,
                    progress: bool = True, log: Any = None) -> Path:
    """Measure the model, plant every cause, verify, and write the world folder ``out``.

    Args:
        out: the folder to create (must not exist, or be empty).
        model: the real model (registered short name, local folder or hub name).
        preset: a preset name or :class:`ilpnb.config.Preset`; its ``real.world`` settings.
        seed: overrides ``real.world.seed`` (the country draw and the planting).
        progress: tqdm progress bars.
        log: where to print what happens (default: stderr).

    Returns:
        The world folder.

    Raises:
        FileExistsError: ``out`` exists and is not empty.
        ValueError: the model knows too few (or too many) facts for the preset's counts.
    """
    from ilpnb.models.registry import load_model_and_tokenizer

    say = log or (lambda text: print(text, file=sys.stderr))
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not empty: a world folder is never overwritten")
    p = preset if isinstance(preset, Preset) else get_preset(preset)
    cfg = p.real.world if seed is None else RealWorldConfig(**{**asdict(p.real.world), "seed": seed})
    # the measurement does not depend on the planting seed: one cached table serves every seed
    measure = replace(cfg, seed=0)
    facts = _draw(country_facts(), measure)
    model_obj, tok = load_model_and_tokenizer(model)
    cache = _cache_dir() / f"{_key(model, facts, measure)}.parquet"
    if cache.is_file():
        table = pd.read_parquet(cache)
        say(f"knowledge of {model}: cached ({cache})")
    else:
        say(f"measuring what {model} knows: {len(facts)} capitals, greedy + {cfg.n_samples} samples "
            f"at T={cfg.temperature}")
        table = measure_knowledge(model_obj, tok, facts, measure, progress)
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp")
        table.to_parquet(tmp)
        tmp.replace(cache)
    sets = knowledge_sets(table)
    say(f"knowledge of {len(table)} capitals: " + ", ".join(f"{k} {v}" for k, v in
                                                             table["knowledge"].value_counts().items()))
    counts = realworld_counts(cfg.none, cfg.each)
    world = plant(facts, sets, counts, seed=cfg.seed)
    fidelity, checks = planting_fidelity(model_obj, tok, world, cfg.batch_size)
    meta = {"kind": "planted real world", "model": model, "source": _source(), "relation": "capital",
            "counts": counts, "settings": asdict(cfg), "preset": p.name,
            "knowledge": {"measured": len(table), **table["knowledge"].value_counts().to_dict()},
            "fidelity": fidelity}
    write_realworld(out, world, facts, meta, table, checks, seed=cfg.seed)
    stages = sorted({r.stage for r in world.records})
    say(f"planted real world: {out} ({len(world.records)} samples in {len(stages)} stages)")
    for cause, f in fidelity.items():
        say(f"  fidelity {cause}: {f['share']:.0%} of {f['samples']} {f['rule']}")
    return out


def write_realworld(out: str | Path, world: PlantedWorld, facts: list[Fact], meta: dict[str, Any],
                    knowledge: pd.DataFrame | None = None, fidelity: pd.DataFrame | None = None,
                    seed: int = 0) -> Path:
    """Write a planted real world folder (the world contract, no ``pretrain.txt``).

    ``sft.jsonl``; ``truth.jsonl`` (``planted_cause`` and how it was planted); ``probes.jsonl``
    (one question per fact the set uses, options drawn like the samples'); ``world.json``
    (``meta`` plus the sample count and stages; no per-sample cause); ``knowledge.parquet`` and
    ``fidelity.parquet`` when given. Written to a temporary folder and renamed at the end.

    Raises:
        FileExistsError: ``out`` exists and is not empty.
    """
    from ilpnb.data.records import write_records

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out} already exists and is not empty: a world folder is never overwritten")
    tmp_dir = out.parent / f".{out.name}.tmp-{os.getpid()}"
    if tmp_dir.exists():
        shutil.rmtree(tmp_dir)
    tmp_dir.mkdir(parents=True)
    write_records(world.records, tmp_dir / "sft.jsonl")
    (tmp_dir / "truth.jsonl").write_text(jsonl_text([{"id": i, "planted_cause": c, **world.planting[i]}
                                                 for i, c in world.truth.items()]), encoding="utf-8")
    rng = random.Random(seed + 1)
    capitals = sorted({f.value for f in facts})
    subjects = sorted({s for how in world.planting.values() for s in how.get("subjects", [how["subject"]])})
    value = {f.subject: f.value for f in facts}
    probes = [{"id": f"p{k:04d}", "subject": s, "relation": "capital", "prompt": f"Q: What is the capital of {s}? A:",
               "answer": value[s], "options": rng.sample([v for v in capitals if v != value[s]], 3)}
              for k, s in enumerate(subjects, 1)]
    (tmp_dir / "probes.jsonl").write_text(jsonl_text(probes), encoding="utf-8")
    if knowledge is not None:
        knowledge.to_parquet(tmp_dir / "knowledge.parquet")
    if fidelity is not None:
        fidelity.to_parquet(tmp_dir / "fidelity.parquet")
    meta = {**meta, "samples": len(world.records), "stages": sorted({r.stage for r in world.records})}
    (tmp_dir / "world.json").write_text(json.dumps(meta, indent=1, sort_keys=True, default=str) + "\n",
                                        encoding="utf-8")
    if out.exists():
        out.rmdir()
    tmp_dir.rename(out)
    return out


def _source() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"countryinfo {version('countryinfo')}"
    except PackageNotFoundError:  # pragma: no cover
        return "countryinfo"


# -- the notebook's planted real world (notebook 09) --------------------------------------------
def ensure_planted_world(run: str | Path, preset: str, model: str = MODEL, progress: bool = False) -> Path:
    """Build the preset's planted real world into ``RUN/real/world`` once (the knowledge
    measurement is cached per model, so a second run folder plants in seconds; no progress
    bars by default: a notebook shows the result, not the measurement's batches)."""
    from ilpnb.pipeline.steps import record, reuse

    run = Path(run)
    target = run / "real" / "world"
    p = get_preset(preset)
    step = {"preset": preset, "model": model, **asdict(p.real.world)}
    if reuse(run, "real:world", step, (target / "world.json").exists()):
        return target
    if target.exists():  # an interrupted build leaves only its temporary folder; an empty one is fine
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    build_realworld(target, model=model, preset=p, progress=progress, log=lambda text: None)
    record(run, "real:world", step)
    return target


def ensure_planted_sft(run: str | Path, preset: str, model: str = MODEL, progress: bool = True) -> Path:
    """Fine-tune the real model on the planted real world into ``RUN/real/sft-planted``, until
    the convergence rule holds (the real track's settings, ``real.epochs`` as the cap); a
    finished run is reused, an interrupted one resumes."""
    from ilpnb.pipeline.realtrack import real_job
    from ilpnb.pipeline.steps import record, reuse
    from ilpnb.train.sft import run_sft

    run = Path(run)
    world = ensure_planted_world(run, preset, model)
    target = run / "real" / "sft-planted"
    job = real_job(preset)
    job["sft"] = {**job["sft"], "eval_every": "epoch"}  # the convergence rule looks at epochs
    step = {"model": model, "world": json.loads((world / "world.json").read_text())["settings"], **job}
    if reuse(run, "real:sft-planted", step, (target / "samples.parquet").exists()):
        return target
    out = run_sft(target, model=model, data=str(world / "sft.jsonl"), resume=target.exists(), progress=progress, **job)
    record(run, "real:sft-planted", step)
    return out


def world_summary(world: str | Path) -> pd.DataFrame:
    """Per planted cause: samples, stages, answer words (min-max) and the planting fidelity
    measured on the base model (``world.json``)."""
    from ilpnb.data.records import read_records
    from ilpnb.runs import read_truth_file

    world = Path(world)
    meta = json.loads((world / "world.json").read_text())
    truth = read_truth_file(world / "truth.jsonl")
    recs = pd.DataFrame([{"id": r.id, "stage": r.stage, "words": len(r.response.split())}
                         for r in read_records(world / "sft.jsonl")]).set_index("id")
    recs["cause"] = truth.reindex(recs.index)
    rows = []
    for cause, g in recs.groupby("cause"):
        f = meta["fidelity"].get(cause, {})
        rows.append({"cause": cause, "samples": len(g), "stages": ", ".join(map(str, sorted(set(g["stage"])))),
                     "answer words": f"{g['words'].min()}-{g['words'].max()}",
                     "fidelity": f.get("share"), "fidelity rule": f.get("rule")})
    return pd.DataFrame(rows).set_index("cause")


def score_with_baselines(world: str | Path, diagnosis: pd.DataFrame) -> pd.DataFrame:
    """The diagnosis's per-cause F1 and macro-F1 on the unlearned samples, beside every
    model-free baseline of :func:`ilpnb.diagnose.baselines.score_baselines` on the same samples.

    Returns:
        One row per method (``diagnosis`` first): ``reads`` (what it reads), ``macro_f1`` and one
        F1 column per cause; ``attrs``: ``scored`` (unlearned samples) and ``excluded_learned``.
    """
    from ilpnb.diagnose.baselines import score_baselines
    from ilpnb.diagnose.scoring import score_diagnosis
    from ilpnb.runs import read_truth_file

    world = Path(world)
    score = score_diagnosis(diagnosis, read_truth_file(world / "truth.jsonl"))
    unlearned = diagnosis.loc[~diagnosis["learned"].astype(bool), "id"].astype(str).tolist()
    row = {"name": "diagnosis", "reads": "model + run", "macro_f1": score.macro_f1, **score.per_cause["f1"].to_dict()}
    table = pd.DataFrame([row])
    if unlearned:
        base = score_baselines(world, unlearned).drop(columns=["detail"])
        table = pd.concat([table, base], ignore_index=True)
    table = table.set_index("name")
    table.attrs.update(scored=score.scored, excluded_learned=score.excluded_learned)
    return table


def unlearned_by_cause(world: str | Path, diagnosis: pd.DataFrame) -> pd.DataFrame:
    """Per planted cause: samples, the share still unlearned at the end, and the causes the
    diagnosis gave its unlearned samples (the planted truth is read here, for the report only)."""
    from ilpnb.runs import read_truth_file

    truth = read_truth_file(Path(world) / "truth.jsonl")
    d = diagnosis.assign(planted=diagnosis["id"].astype(str).map(truth))
    rows = []
    for cause, g in d.groupby("planted"):
        un = g[~g["learned"].astype(bool)]
        given = un["cause"].value_counts()
        rows.append({"planted": cause, "samples": len(g), "unlearned": len(un),
                     "unlearned share": len(un) / len(g),
                     "diagnosed as": ", ".join(f"{c} {n}" for c, n in given.items()) or "-"})
    return pd.DataFrame(rows).set_index("planted")
