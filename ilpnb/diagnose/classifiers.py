"""Surface classifiers: how far a learner fitted on a world's own planted truth gets from the
surface of ``sft.jsonl`` alone.

:func:`surface_features` turns each record into numeric surface features (lengths, stage,
file position, response shape, template and duplicate-group frequencies, overlaps of options
and responses); :func:`predict_surface` fits a scikit-learn classifier on them and predicts
out of fold. They are the ``surface`` / ``surface-tree`` baselines of
:mod:`ilpnb.diagnose.baselines`: a shortcut's ceiling, not a diagnosis.
"""

from __future__ import annotations

import warnings
from collections import Counter, defaultdict

import numpy as np
import pandas as pd

from ilpnb.diagnose.surface_text import (
    _WORD,
    _max_jaccard,
    _norm_answer,
    _template_keys,
    _tokens,
    entity_words,
    normalise_prompt,
)

__all__ = ["surface_features", "predict_surface"]


def surface_features(records: pd.DataFrame) -> pd.DataFrame:
    """Surface features of each SFT record, computed from ``sft.jsonl`` alone.

    Args:
        records: The ``records`` of a :class:`WorldFolder`.

    Returns:
        One row per id, numeric columns only: lengths of prompt, response and options; stage
        and file position; response shape (punctuation pattern) and its frequency; template
        key (prompt with its entity masked) frequency, code and number of stages; duplicate
        group size and distinct responses; nearest-prompt Jaccard similarity; how often the
        response and the options occur as responses or options elsewhere, overall and among
        samples about the same entity.
    """
    n = len(records)
    entities = entity_words(records)
    templates = _template_keys(records, entities)
    prompt, response, options = records["prompt"], records["response"], records["options"]
    stage = records["stage"].astype(int)
    f = pd.DataFrame(index=records.index)
    f["resp_words"] = response.map(lambda s: len(_WORD.findall(s)))
    f["resp_chars"] = response.str.len()
    f["prompt_words"] = prompt.map(lambda s: len(_WORD.findall(s)))
    f["prompt_chars"] = prompt.str.len()
    f["stage"] = stage
    f["stage_before_last"] = (stage < stage.max()).astype(int)
    f["position"] = np.arange(n) / max(1, n - 1)
    f["position_in_stage"] = stage.groupby(stage).cumcount() / stage.map(stage.value_counts()).clip(lower=1)
    f["n_options"] = options.map(len)
    f["opt_words"] = options.map(lambda o: np.mean([len(_WORD.findall(x)) for x in o]) if o else 0.0)
    f["opt_chars"] = options.map(lambda o: np.mean([len(x) for x in o]) if o else 0.0)
    f["opt_minus_resp_words"] = f["opt_words"] - f["resp_words"]
    shape = response.map(lambda s: _WORD.sub("w", s))
    opt_shapes = options.map(lambda o: [_WORD.sub("w", x) for x in o])
    shape_counts = shape.value_counts()
    f["resp_shape_freq"] = shape.map(shape_counts) / n
    f["resp_shape_code"] = shape.map({key: i for i, key in enumerate(shape_counts.index)})
    f["resp_ends_punct"] = response.map(lambda s: int(bool(s) and not s[-1].isalnum()))
    f["opt_shape_match"] = [np.mean([o == s for o in os_]) if os_ else 0.0 for s, os_ in zip(shape, opt_shapes)]
    f["resp_has_entity"] = [int(bool(e & set(_tokens(r)))) for e, r in zip(entities, response)]
    f["prompt_has_entity"] = entities.map(lambda e: int(bool(e)))
    counts = templates.value_counts()
    f["template_freq"] = templates.map(counts) / n
    rank = {key: i for i, key in enumerate(counts.index)}
    f["template_code"] = templates.map(rank)
    f["template_stages"] = templates.map(stage.groupby(templates).nunique())
    f["template_stage_freq"] = pd.Series(list(zip(templates, stage)), index=records.index).map(
        pd.Series(list(zip(templates, stage))).value_counts()) / n
    norm = prompt.map(normalise_prompt)
    norm_resp = response.map(_norm_answer)
    f["dup_group"] = norm.map(norm.value_counts())
    f["dup_responses"] = norm.map(norm_resp.groupby(norm).nunique())
    best_any, best_diff = _max_jaccard(records)
    f["jaccard_nearest"] = best_any
    f["jaccard_nearest_diff"] = best_diff
    resp_counts = norm_resp.value_counts()
    opt_counts = Counter(_norm_answer(o) for opts in options for o in opts)
    f["resp_freq"] = norm_resp.map(resp_counts) - 1
    f["resp_as_option"] = norm_resp.map(lambda r: opt_counts.get(r, 0))
    f["opts_as_response"] = options.map(lambda o: sum(resp_counts.get(_norm_answer(x), 0) for x in o))
    f["first_opt_as_response"] = options.map(lambda o: resp_counts.get(_norm_answer(o[0]), 0) if o else 0)
    by_entity: dict[str, set[int]] = defaultdict(set)
    for i, ent in enumerate(entities):
        for w in ent:
            by_entity[w].add(i)
    resp_list = norm_resp.tolist()
    same, same_opt, same_resp = [], [], []
    for i, (ent, opts) in enumerate(zip(entities, options)):
        others = set().union(*(by_entity[w] for w in ent)) - {i} if ent else set()
        other_resp = [resp_list[j] for j in others]
        same.append(len(others))
        same_opt.append(sum(_norm_answer(o) in other_resp for o in opts))
        same_resp.append(len(set(other_resp) - {resp_list[i]}))
    f["entity_samples"] = same
    f["entity_opts_as_response"] = same_opt
    f["entity_other_responses"] = same_resp
    return f.astype(float)


def predict_surface(records: pd.DataFrame, truth: pd.Series, *, model: str = "boosting",
                    folds: int = 5, seed: int = 0, features: pd.DataFrame | None = None) -> pd.Series:
    """Out-of-fold predictions of a classifier fitted on :func:`surface_features`.

    Args:
        records: The ``records`` of a :class:`WorldFolder` (features are computed over all of
            them).
        truth: ``id`` -> planted cause of the samples to fit and predict (a subset of
            ``records``' ids, e.g. the unlearned samples of a run).
        model: ``"boosting"`` (histogram gradient boosting) or ``"tree"`` (a decision tree);
            both with balanced class weights.
        folds: Number of stratified folds (fewer when the rarest cause has fewer samples).
        seed: Seed of the folds and of the classifier.
        features: Precomputed :func:`surface_features` of ``records``.

    Returns:
        ``id`` -> predicted cause, for the ids of ``truth``, each predicted by a classifier that
        did not see it.

    Raises:
        ValueError: unknown ``model``, or ids of ``truth`` not in ``records``.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.model_selection import KFold, StratifiedKFold, cross_val_predict
    from sklearn.tree import DecisionTreeClassifier

    if model not in ("boosting", "tree"):
        raise ValueError(f"unknown surface model '{model}' (known: boosting, tree)")
    missing = [i for i in truth.index if i not in records.index]
    if missing:
        raise ValueError(f"{len(missing)} truth ids are not in the records, e.g. {missing[:3]}")
    feats = surface_features(records) if features is None else features
    x = feats.reindex(truth.index).to_numpy()
    y = truth.to_numpy().astype(str)
    counts = Counter(y)
    if len(counts) < 2 or len(y) < 4:
        return pd.Series(counts.most_common(1)[0][0] if counts else "none", index=truth.index)
    k = max(2, min(folds, min(counts.values())))
    if model == "tree":
        clf = DecisionTreeClassifier(max_depth=6, min_samples_leaf=2, class_weight="balanced", random_state=seed)
    else:
        clf = HistGradientBoostingClassifier(max_iter=60, learning_rate=0.1, max_leaf_nodes=15, min_samples_leaf=3,
                                             class_weight="balanced", early_stopping=False, random_state=seed)
    # folds keep the classes' shares; where no class has k members (a few scored samples, each of
    # another cause) stratifying is impossible and the folds are plain ones
    cv = (StratifiedKFold(n_splits=k, shuffle=True, random_state=seed) if max(counts.values()) >= k
          else KFold(n_splits=k, shuffle=True, random_state=seed))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pred = cross_val_predict(clf, x, y, cv=cv)
    return pd.Series(pred, index=truth.index)
