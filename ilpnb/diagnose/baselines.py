"""Model-free baselines: how far the surface of a world folder goes towards its planted causes.

A diagnosis is only worth something if no cheap reading of the data gets the same answers.
This module runs such cheap readings on any world folder (any generator) and scores them with
the project's own scorer (:func:`ilpnb.diagnose.scoring.score_diagnosis`), so that a world
can show it has no shortcuts: every baseline that reads only ``sft.jsonl`` should stay far
below the diagnosis.

Each baseline maps the records of ``sft.jsonl`` to one predicted cause per id (the planted
cause names, ``none`` allowed). None of them reads ``world.json`` or ``probes.jsonl``; only
``corpus`` reads ``pretrain.txt``; only ``surface`` and the ``@oracle`` variants read the
truth (to fit, out of fold, or to tune a threshold — a shortcut's ceiling is what matters):

* ``length`` — a response longer than a number of words is ``rare_pattern``;
* ``stage`` — a sample in a stage before the last is ``left_forgetting``;
* ``duplicates`` — prompts equal after a generic normalisation (lower case, punctuation and
  English stop words removed, words sorted; the oracle variant: word-set Jaccard similarity
  at or above a tuned threshold) with different responses are ``data_conflict``;
* ``options`` — a distractor that is the response of another sample about the same entity is
  ``data_conflict``; distractors that restate the prompt's entity (composite answers) are
  ``rare_pattern``;
* ``surface`` / ``surface-tree`` — a scikit-learn classifier (gradient boosting / a decision
  tree) on surface features of ``sft.jsonl`` (lengths, stage, file position, options, template
  frequency, duplicate groups, overlaps of options and responses, ...), predictions out of
  fold from a seeded stratified k-fold;
* ``corpus`` — corpus lines that name the prompt's entity: response stated there is ``none``,
  another answer stated there is ``pretrain_conflict``, nothing stated is
  ``missing_knowledge``;
* ``combined-sft`` / ``combined`` — the rules stacked (oracle thresholds), without / with the
  corpus.

The rules and the scoring live here; the surface features and the classifiers fitted on them
are :mod:`ilpnb.diagnose.classifiers`, the generic reading of a record's surface (entities,
normalised prompts, template keys) is :mod:`ilpnb.diagnose.surface_text`; their public names
are re-exported here.

The entity of a prompt is read generically: words written capitalised somewhere in the file
other than at the start of a sentence (names, places), or failing that the prompt's rarest
words. No list of any generator's templates or filler phrases is used.

Example:
    >>> table = score_baselines("worlds/default")            # doctest: +SKIP
    >>> table[table.reads == "sft.jsonl"].macro_f1.max()      # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ilpnb.data.records import read_records
from ilpnb.diagnose.attribution import CAUSE_ORDER
from ilpnb.diagnose.classifiers import predict_surface, surface_features
from ilpnb.diagnose.scoring import DiagnosisScore, read_truth_file, score_diagnosis
from ilpnb.diagnose.surface_text import (
    _WORD,
    _content,
    _max_jaccard,
    _norm_answer,
    _template_keys,
    _tokens,
    entity_words,
    normalise_prompt,
)

__all__ = [
    "BASELINE_LABELS",
    "SFT_ONLY",
    "WITH_CORPUS",
    "LONG_ANSWER_WORDS",
    "WorldFolder",
    "load_world_folder",
    "entity_words",
    "normalise_prompt",
    "surface_features",
    "predict_length",
    "predict_stage",
    "predict_duplicates",
    "predict_options",
    "predict_surface",
    "predict_corpus",
    "stack_predictions",
    "oracle_threshold",
    "score_predictions",
    "score_baselines",
    "max_sft_only_macro_f1",
]

#: Every label a baseline may predict: ``none`` and the five causes.
BASELINE_LABELS: tuple[str, ...] = ("none",) + tuple(CAUSE_ORDER)
#: The ``reads`` value of a baseline that reads only the SFT set.
SFT_ONLY = "sft.jsonl"
#: The ``reads`` value of a baseline that also reads the pretraining corpus.
WITH_CORPUS = "sft.jsonl+pretrain.txt"
#: Default threshold of the ``length`` rule: more words than this is ``rare_pattern``.
LONG_ANSWER_WORDS = 5



# -- reading a folder ------------------------------------------------------------------------


@dataclass
class WorldFolder:
    """What the baselines read of a world folder.

    Attributes:
        path: The folder.
        records: One row per SFT record, indexed by ``id`` in file order, with columns
            ``prompt``, ``response``, ``stage`` (int) and ``options`` (tuple of strings,
            empty when the record has none).
        truth: ``id`` -> planted cause, in the order of ``records`` (``None`` when not read).
        corpus: The lines of ``pretrain.txt`` (``None`` when the folder has none).
    """

    path: Path
    records: pd.DataFrame
    truth: pd.Series | None
    corpus: list[str] | None


def load_world_folder(world_dir: str | Path, *, truth: bool = True) -> WorldFolder:
    """Read ``sft.jsonl`` (and ``truth.jsonl``, ``pretrain.txt`` when present) of a folder.

    Args:
        world_dir: A world folder written by any generator.
        truth: Whether to read and check ``truth.jsonl``.

    Returns:
        The folder's records, truth and corpus.

    Raises:
        FileNotFoundError: The folder, its ``sft.jsonl`` or (with ``truth``) its ``truth.jsonl``
            does not exist (the path is named).
        ValueError: ``sft.jsonl`` is empty or has a bad line; ``truth.jsonl`` is unreadable,
            has an unknown cause, or its ids do not match those of ``sft.jsonl`` (file named).
    """
    path = Path(world_dir)
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such world folder")
    sft_path = path / "sft.jsonl"
    if not sft_path.is_file():
        raise FileNotFoundError(f"{sft_path}: the world folder has no sft.jsonl")
    recs = read_records(sft_path)
    if not recs:
        raise ValueError(f"{sft_path}: no records")
    records = pd.DataFrame({
        "prompt": [r.prompt for r in recs],
        "response": [r.response for r in recs],
        "stage": [int(r.stage) for r in recs],
        "options": [tuple(r.options or ()) for r in recs],
    }, index=pd.Index([r.id for r in recs], name="id"))
    planted = _read_truth(path / "truth.jsonl", records.index) if truth else None
    corpus_path = path / "pretrain.txt"
    corpus = None
    if corpus_path.is_file():
        corpus = [line for line in corpus_path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return WorldFolder(path=path, records=records, truth=planted, corpus=corpus)


def _read_truth(truth_path: Path, ids: pd.Index) -> pd.Series:
    if not truth_path.is_file():
        raise FileNotFoundError(f"{truth_path}: the world folder has no truth.jsonl (needed for scoring)")
    try:
        planted = read_truth_file(truth_path)
    except ValueError as exc:
        raise ValueError(f"{truth_path}: {exc}" if str(truth_path) not in str(exc) else str(exc)) from None
    planted.index = planted.index.astype(str)
    if planted.index.duplicated().any():
        dup = planted.index[planted.index.duplicated()].unique().tolist()
        raise ValueError(f"{truth_path}: {len(dup)} ids appear twice, e.g. {dup[:3]}")
    bad = sorted(set(planted) - set(BASELINE_LABELS))
    if bad:
        raise ValueError(f"{truth_path}: unknown planted causes {bad[:5]} (known: {', '.join(BASELINE_LABELS)})")
    missing = [i for i in ids if i not in planted.index]
    extra = [i for i in planted.index if i not in set(ids)]
    if missing or extra:
        raise ValueError(f"{truth_path}: ids do not match sft.jsonl ({len(missing)} sft ids missing, e.g. "
                         f"{missing[:3]}; {len(extra)} ids not in sft.jsonl, e.g. {extra[:3]})")
    return planted.reindex(ids)


# -- the rules -------------------------------------------------------------------------------


def predict_length(records: pd.DataFrame, threshold: float = LONG_ANSWER_WORDS) -> pd.Series:
    """``rare_pattern`` where the response has more than ``threshold`` words, else ``none``."""
    words = records["response"].map(lambda s: len(_WORD.findall(s)))
    return pd.Series(np.where(words > threshold, "rare_pattern", "none"), index=records.index)


def predict_stage(records: pd.DataFrame, cut: int | None = None) -> pd.Series:
    """``left_forgetting`` where the stage is at most ``cut`` (default: any stage before the
    last), else ``none``; a single-stage set predicts ``none`` everywhere."""
    stage = records["stage"]
    cut = int(stage.max()) - 1 if cut is None else cut
    return pd.Series(np.where(stage <= cut, "left_forgetting", "none"), index=records.index)


def predict_duplicates(records: pd.DataFrame, min_jaccard: float = 1.0) -> pd.Series:
    """``data_conflict`` where another prompt is a near duplicate with a different response.

    Args:
        records: The ``records`` of a :class:`WorldFolder`.
        min_jaccard: Word-set Jaccard similarity of the normalised prompts (see
            :func:`normalise_prompt`) at or above which two prompts are duplicates; 1.0 (the
            default) asks for the same normalised words.

    Returns:
        ``id`` -> ``data_conflict`` or ``none``.
    """
    _, best_diff = _max_jaccard(records)
    return pd.Series(np.where(best_diff >= min_jaccard - 1e-12, "data_conflict", "none"), index=records.index)


def predict_options(records: pd.DataFrame) -> pd.Series:
    """Option content: a distractor that is the response of another sample about the same
    entity means ``data_conflict``; distractors that restate the prompt's entity (composite
    answers) mean ``rare_pattern``; otherwise ``none``."""
    entities = entity_words(records)
    by_entity: dict[str, set[int]] = defaultdict(set)
    for i, ent in enumerate(entities):
        for w in ent:
            by_entity[w].add(i)
    responses = records["response"].map(_norm_answer).tolist()
    out = []
    for i, (ent, opts) in enumerate(zip(entities, records["options"])):
        others = set().union(*(by_entity[w] for w in ent)) - {i} if ent else set()
        other_resp = {responses[j] for j in others}
        norm_opts = [_norm_answer(o) for o in opts]
        if any(o in other_resp for o in norm_opts):
            out.append("data_conflict")
        elif ent and any(ent & set(o.split()) for o in norm_opts):
            out.append("rare_pattern")
        else:
            out.append("none")
    return pd.Series(out, index=records.index)


def predict_corpus(records: pd.DataFrame, corpus: list[str]) -> pd.Series:
    """Look each prompt's entity up in the corpus.

    The lines naming every entity word (or, failing that, any of them) are gathered. When the
    answer words of the response (its content words less the entity and less the wording it
    shares with every distractor) all occur in them the fact is stated: ``none``. Otherwise,
    when another answer (a distractor, or the response of a sample with the same prompt
    template) has its own words there, the corpus states something else: ``pretrain_conflict``.
    Otherwise (or when no line names the entity): ``missing_knowledge``.

    Args:
        records: The ``records`` of a :class:`WorldFolder`.
        corpus: The lines of ``pretrain.txt``.

    Returns:
        ``id`` -> ``none``, ``pretrain_conflict`` or ``missing_knowledge``.
    """
    line_words = [set(_tokens(line)) for line in corpus]
    postings: dict[str, set[int]] = defaultdict(set)
    for k, words in enumerate(line_words):
        for w in words:
            postings[w].add(k)
    entities = entity_words(records)
    templates = _template_keys(records, entities)
    same_template: dict[str, list[str]] = defaultdict(list)
    for key, resp in zip(templates, records["response"]):
        same_template[key].append(resp)
    out = []
    for ent, key, resp, opts in zip(entities, templates, records["response"], records["options"]):
        hits = [postings.get(w, set()) for w in ent]
        lines = set.intersection(*hits) if hits else set()
        if not lines and hits:
            lines = set().union(*hits)
        if not lines:
            out.append("missing_knowledge")
            continue
        stated = set().union(*(line_words[k] for k in lines))
        shared = set.intersection(*(_content(o) for o in opts)) if opts else set()
        gold = _content(resp) - ent - shared or _content(resp) - ent or _content(resp)
        if gold <= stated:
            out.append("none")
            continue
        cands = {c for c in list(opts) + same_template[key] if _norm_answer(c) != _norm_answer(resp)}
        other = False
        for cand in cands:
            words = _content(cand) - ent - gold
            if words and words <= stated:
                other = True
                break
        out.append("pretrain_conflict" if other else "missing_knowledge")
    return pd.Series(out, index=records.index)


def stack_predictions(*predictions: pd.Series) -> pd.Series:
    """Stack rules: each sample takes the first prediction other than ``none``, in order."""
    if not predictions:
        raise ValueError("stack_predictions needs at least one prediction")
    out = predictions[0].copy()
    for pred in predictions[1:]:
        pred = pred.reindex(out.index)
        out = out.where(out != "none", pred)
    return out


# -- the surface classifier ------------------------------------------------------------------


# -- scoring ---------------------------------------------------------------------------------


def score_predictions(predictions: pd.Series, truth: pd.Series) -> DiagnosisScore:
    """Score ``id`` -> predicted cause with the project's scorer (every sample counted as
    unlearned), over the ids of ``truth``."""
    pred = predictions.reindex(truth.index).fillna("none")
    diagnosis = pd.DataFrame({"id": truth.index.astype(str), "learned": False, "cause": pred.to_numpy()})
    return score_diagnosis(diagnosis, truth)


def oracle_threshold(predict: Callable[[float], pd.Series], candidates: Iterable[float],
                     truth: pd.Series) -> tuple[float, pd.Series]:
    """The candidate threshold whose predictions score the best macro-F1 on the truth.

    Args:
        predict: Threshold -> ``id`` -> predicted cause.
        candidates: Thresholds to try (ties go to the first).
        truth: ``id`` -> planted cause of the scored samples.

    Returns:
        The best threshold and its predictions.

    Raises:
        ValueError: no candidates.
    """
    best: tuple[float, float, pd.Series] | None = None
    for t in candidates:
        pred = predict(t)
        f1 = score_predictions(pred, truth).macro_f1
        f1 = -1.0 if math.isnan(f1) else f1
        if best is None or f1 > best[1]:
            best = (t, f1, pred)
    if best is None:
        raise ValueError("oracle_threshold needs at least one candidate")
    return best[0], best[2]


def _row(name: str, reads: str, detail: str, pred: pd.Series, truth: pd.Series) -> dict:
    score = score_predictions(pred, truth)
    row = {"name": name, "reads": reads, "macro_f1": score.macro_f1}
    row.update({c: score.per_cause.loc[c, "f1"] for c in CAUSE_ORDER})
    row["detail"] = detail
    return row


def score_baselines(world_dir: str | Path, ids: Iterable[str] | None = None, *, folds: int = 5,
                    seed: int = 0) -> pd.DataFrame:
    """Run every baseline on a world folder and score it against ``truth.jsonl``.

    Rules read the whole ``sft.jsonl``; scoring, oracle thresholds and the out-of-fold
    classifier use only the samples of ``ids``.

    Args:
        world_dir: A world folder (``sft.jsonl`` and ``truth.jsonl``; ``pretrain.txt`` for the
            corpus baselines, which are left out without it).
        ids: The samples to score (e.g. the unlearned samples of a run, to compare with its
            diagnosis); default all.
        folds: Folds of the surface classifier.
        seed: Seed of the surface classifier.

    Returns:
        One row per baseline: ``name``, ``reads`` (:data:`SFT_ONLY` or :data:`WITH_CORPUS`),
        ``macro_f1``, one F1 column per cause (NaN where the cause has no scored sample) and
        ``detail`` (the rule's setting). ``attrs["scored"]`` holds the number of samples.

    Raises:
        FileNotFoundError: the folder, ``sft.jsonl`` or ``truth.jsonl`` is missing.
        ValueError: a bad file (named), or ``ids`` empty or not in ``sft.jsonl``.
    """
    world = load_world_folder(world_dir)
    records, truth = world.records, world.truth
    assert truth is not None
    if ids is not None:
        wanted = [str(i) for i in ids]
        if not wanted:
            raise ValueError("ids is empty: nothing to score")
        missing = [i for i in wanted if i not in records.index]
        if missing:
            raise ValueError(f"{len(missing)} ids are not in {world.path / 'sft.jsonl'}, e.g. {missing[:3]}")
        truth = truth.reindex(list(dict.fromkeys(wanted)))
    rows = []

    length = predict_length(records)
    rows.append(_row("length", SFT_ONLY, f"words > {LONG_ANSWER_WORDS}", length, truth))
    words = records["response"].map(lambda s: len(_WORD.findall(s)))
    cands = sorted(set(words.reindex(truth.index)) | {0})
    t_len, length_o = oracle_threshold(lambda t: predict_length(records, t), [c - 0.5 for c in cands], truth)
    rows.append(_row("length@oracle", SFT_ONLY, f"words > {t_len:g}", length_o, truth))

    stage = predict_stage(records)
    rows.append(_row("stage", SFT_ONLY, f"stage < {int(records['stage'].max())}", stage, truth))
    stages = sorted(set(records["stage"]))
    t_st, stage_o = oracle_threshold(lambda t: predict_stage(records, int(t)), [s for s in stages[:-1]] or [-1], truth)
    rows.append(_row("stage@oracle", SFT_ONLY, f"stage <= {int(t_st)}", stage_o, truth))

    dup = predict_duplicates(records)
    rows.append(_row("duplicates", SFT_ONLY, "same normalised words", dup, truth))
    _, best_diff = _max_jaccard(records)
    jac = pd.Series(best_diff, index=records.index)
    grid = sorted({round(v, 2) for v in jac.reindex(truth.index) if v > 0} | {1.0}, reverse=True)
    t_dup, dup_o = oracle_threshold(lambda t: pd.Series(np.where(jac >= t - 1e-9, "data_conflict", "none"),
                                                        index=records.index), grid, truth)
    rows.append(_row("duplicates@oracle", SFT_ONLY, f"jaccard >= {t_dup:.2f}", dup_o, truth))

    opts = predict_options(records)
    rows.append(_row("options", SFT_ONLY, "option = same-entity response; option restates entity", opts, truth))

    feats = surface_features(records)
    for name, model in (("surface-tree", "tree"), ("surface", "boosting")):
        pred = predict_surface(records, truth, model=model, folds=folds, seed=seed, features=feats)
        rows.append(_row(name, SFT_ONLY, f"{model}, {feats.shape[1]} features, out-of-fold", pred, truth))

    combined_sft = stack_predictions(dup_o, stage_o, length_o, opts)
    rows.append(_row("combined-sft", SFT_ONLY, "duplicates, stage, length (oracle), options", combined_sft, truth))

    if world.corpus is not None:
        corpus = predict_corpus(records, world.corpus)
        rows.append(_row("corpus", WITH_CORPUS, f"{len(world.corpus)} corpus lines", corpus, truth))
        rows.append(_row("combined", WITH_CORPUS, "combined-sft, then corpus",
                         stack_predictions(combined_sft, corpus), truth))
    table = pd.DataFrame(rows)
    table.attrs["scored"] = len(truth)
    return table


def max_sft_only_macro_f1(table: pd.DataFrame) -> float:
    """The highest macro-F1 among the baselines of ``table`` that read only ``sft.jsonl``."""
    return float(table.loc[table["reads"] == SFT_ONLY, "macro_f1"].max())
