"""Mitigation plans: treated targets the diagnosed samples, the control as many random others."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ilpnb.mitigate.experiment import summarize, t_interval
from ilpnb.mitigate.interventions import INTERVENTIONS, build_plan
from ilpnb.train.plan import stage_examples
from ilpnb.train.trainer import PlanSampler


@pytest.fixture()
def diag() -> tuple[pd.DataFrame, pd.DataFrame]:
    ids = [f"s{i}" for i in range(12)]
    causes = ["none"] * 4 + ["data_conflict"] * 4 + ["pretrain_conflict"] * 2 + ["left_forgetting"] * 2
    siblings = [[] for _ in range(12)]
    siblings[4], siblings[5], siblings[6], siblings[7] = ["s5"], ["s4"], ["s7"], ["s6"]
    d = pd.DataFrame({"id": ids, "learned": [c == "none" for c in causes], "cause": causes, "siblings": siblings})
    rec = pd.DataFrame({"prompt": [f"q{i}" for i in range(12)], "response": [f"a{i}" for i in range(12)],
                        "stage": [0] * 2 + [1] * 8 + [0] * 2}, index=ids)
    return d, rec


def _plan(diag, cause, method, control=False, seed=0):
    d, rec = diag
    return build_plan(cause, method, d, rec, {i: "base" for i in rec.index}, {"s4": 0.9, "s5": 0.2, "s6": 0.1, "s7": 0.8},
                      control=control, seed=seed)


def test_every_method_builds_treated_and_control(diag) -> None:
    for cause, methods in INTERVENTIONS.items():
        if not (diag[0]["cause"] == cause).any():
            continue
        for method in methods:
            t, c = _plan(diag, cause, method), _plan(diag, cause, method, control=True)
            assert set(t.targets) == set(diag[0].loc[diag[0]["cause"] == cause, "id"])
            assert len(c.targets) == len(t.targets) and not set(c.targets) & set(t.targets)


def test_delete_drops_the_losing_sibling(diag) -> None:
    plan = _plan(diag, "data_conflict", "delete")
    assert sorted(plan.exclude) == ["s5", "s6"]  # s4 and s7 were reproduced better
    relabel = _plan(diag, "data_conflict", "relabel")
    assert relabel.relabel == {"s5": "a4", "s6": "a7"}


def test_bucketing_groups_siblings_and_sampler_keeps_them_apart(diag) -> None:
    plan = _plan(diag, "data_conflict", "bucketing")
    assert sorted(map(sorted, plan.bucket_groups)) == [["s4", "s5"], ["s6", "s7"]]
    assert not plan.weights  # the cause-specific idea only; extra gradient belongs to the generic control
    ids = list(diag[1].index)
    stages = diag[1]["stage"].tolist()
    data, sampler = stage_examples(plan.to_dict(), ids, stages, list(range(12)), 0,
                                   lambda i: {"input_ids": [1], "labels": [1], "idx": i}, batch_size=2, seed=0, ordered=False)
    assert sampler is not None
    order = list(sampler)
    for k in range(0, len(order), 2):
        batch = {ids[data[j]["idx"]] for j in order[k:k + 2]}
        assert not ({"s4", "s5"} <= batch or {"s6", "s7"} <= batch)


def test_replay_adds_earlier_stage_samples_to_later_stages(diag) -> None:
    plan = _plan(diag, "left_forgetting", "replay")
    ids = list(diag[1].index)
    stages = diag[1]["stage"].tolist()
    stage1 = [i for i, s in enumerate(stages) if s == 1]
    data, _ = stage_examples(plan.to_dict(), ids, stages, stage1, 1, lambda i: {"idx": i}, 4, 0, False)
    got = {ids[ex["idx"]] for ex in data}
    assert {"s10", "s11"} <= got and "s0" not in got


def test_upsample_and_weights(diag) -> None:
    d, rec = diag
    plan = build_plan("pretrain_conflict", "upweight", d, rec, {}, {}, control=False, factor=3)
    assert plan.weights == {"s8": 3.0, "s9": 3.0}
    data, sampler = stage_examples(plan.to_dict(), list(rec.index), rec["stage"].tolist(), list(range(12)), 0,
                                   lambda i: {"idx": i}, 4, 0, False)
    assert sampler is None and sum(ex["weight"] == 3.0 for ex in data) == 2


def test_sampler_multiplicity_changes_epoch_length() -> None:
    s = PlanSampler(5, 2)
    assert sorted(s) == [0, 1, 2, 3, 4]
    s.multiplicity = [1, 3, 1, 1, 1]
    assert sorted(s) == [0, 1, 1, 1, 2, 3, 4]


def test_t_interval_and_summary() -> None:
    m, lo, hi = t_interval(np.array([0.5, 0.6, 0.7]))
    assert lo < m < hi and np.isclose(m, 0.6)
    rows = [{"seed": s, "arm": a, "method": "m", "target": "x", "cause": "x", "unlearned": 4,
             "recovery": (0.8 if a == "treated" else 0.1) + 0.01 * s, "collateral_loss": 0.0, "held_out_recall": 0.9}
            for s in range(3) for a in ("treated", "control")]
    summary = summarize(pd.DataFrame(rows))
    assert summary.loc[0, "difference_lo"] > 0.6


def test_generic_plan_matches_the_treated_extra_examples(diag) -> None:
    from ilpnb.mitigate.interventions import generic_plan

    treated = _plan(diag, "left_forgetting", "replay")
    # replay: each target trained once more per epoch in the one later stage (2 epochs -> 2 extra examples)
    generic = generic_plan(treated, {"s10": 2, "s11": 2, "s0": 6}, epochs=2)
    assert generic.repeats == {"s10": 2, "s11": 2} and generic.targets == treated.targets  # s0 is no target
    ids, stages = list(diag[1].index), diag[1]["stage"].tolist()
    count = {}
    for plan in (treated, generic):
        n = 0
        for stage in (0, 1):
            idx = [i for i, s in enumerate(stages) if s == stage]
            data, _ = stage_examples(plan.to_dict(), ids, stages, idx, stage, lambda i: {"idx": i}, 4, 0, False)
            n += len(data)
        count[id(plan)] = n
    assert count[id(treated)] == count[id(generic)] == len(ids) + 2  # the same examples per epoch
    assert generic_plan(_plan(diag, "data_conflict", "relabel"), {}, epochs=2).repeats == {}


def test_placebo_of_replay_draws_as_many_earlier_stage_samples(diag) -> None:
    d, rec = diag
    placebo = _plan(diag, "left_forgetting", "replay", control=True)
    assert len(placebo.replay) == 2 and all(rec.at[i, "stage"] < rec["stage"].max() for i in placebo.replay)
    rec2 = rec.copy()
    rec2.loc[["s0", "s1"], "stage"] = 1  # no earlier-stage sample left to replay as a placebo
    with pytest.raises(ValueError, match="earlier-stage"):
        build_plan("left_forgetting", "replay", d, rec2, {}, {}, control=True)


def test_placebo_prefers_unlearned_samples_of_other_causes(diag) -> None:
    placebo = _plan(diag, "pretrain_conflict", "upweight", control=True, seed=3)
    cause = diag[0].set_index("id")["cause"]
    assert all(cause[i] not in ("none", "pretrain_conflict") for i in placebo.targets)


def test_shuffle_has_no_placebo_and_resample_is_restricted_to_targets(diag) -> None:
    import pandas as pd

    from ilpnb.mitigate.interventions import has_placebo, same_training
    from ilpnb.train.plan import ResampleOnDrop

    shuffle_t, shuffle_p = _plan(diag, "left_forgetting", "shuffle"), _plan(diag, "left_forgetting", "shuffle", control=True)
    assert same_training(shuffle_t, shuffle_p) and not has_placebo("shuffle") and has_placebo("replay")
    resample_t = _plan(diag, "left_forgetting", "resample")
    assert not same_training(resample_t, _plan(diag, "left_forgetting", "resample", control=True))  # other ids raised
    plan = build_plan("left_forgetting", "resample", diag[0], diag[1], {}, {}, control=False, factor=3, resample_drop=0.5)
    ids, stages = list(diag[1].index), diag[1]["stage"].tolist()
    data, sampler = stage_examples(plan.to_dict(), ids, stages, list(range(12)), 0, lambda i: {"idx": i}, 4, 0, False)
    r = ResampleOnDrop(plan.resample)
    first = pd.DataFrame({"id": ids, "exact": [True] * 12, "token_acc": [1.0] * 12})
    r.update(first, data, ids, sampler)
    then = first.assign(exact=False, token_acc=[0.9] * 11 + [0.2])  # every sample lost exactness; s11 dropped a lot
    assert r.update(then, data, ids, sampler) == 2  # only the targets s10, s11 may be raised
    raised = {ids[ex["idx"]] for ex, m in zip(data, sampler.multiplicity) if m == 3}
    assert raised == {"s10", "s11"}


def test_bucketing_adds_no_weight_and_preregistration_names_a_family_method() -> None:
    from ilpnb.mitigate.interventions import PREREGISTERED

    assert set(PREREGISTERED) == set(INTERVENTIONS)
    from ilpnb.mitigate.interventions import DEFAULT_FACTOR, DEFAULT_METHOD

    for cause, pre in PREREGISTERED.items():
        assert pre.method in INTERVENTIONS[cause] and pre.factor >= 1 and pre.why
        assert pre.method == DEFAULT_METHOD[cause]  # ilpnb.causes names the same default
        if pre.method in DEFAULT_FACTOR:
            assert pre.factor == DEFAULT_FACTOR[pre.method]
