"""Interaction dynamics on hand-made data: sets, statuses, ρ, γ, summaries and stopping rules."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from ilpnb.interactions import (
    add_generalisation,
    assign_status,
    denoising_end,
    generalisation_ratio,
    lowest_loss,
    non_cancelling_ratio,
    order_profile,
    rule_table,
    status_masks,
    stopping_summary,
    stopping_table,
    summarize_dynamics,
    track_sets,
)


def test_track_sets_follows_the_definitions() -> None:
    out = track_sets([{"a", "b", "c"}, {"a", "b", "d"}, {"a", "c", "d", "e"}])
    assert out[0] == {"salient": {"a", "b", "c"}, "preserved": {"a", "b", "c"}, "emerged": set(), "removed": set()}
    assert out[1]["preserved"] == {"a", "b"} and out[1]["emerged"] == {"d"} and out[1]["removed"] == {"c"}
    # c comes back at t=2: salient again, but not preserved (P_t = P_{t-1} ∩ Ω_t), so it is emerged
    assert out[2]["preserved"] == {"a"} and out[2]["emerged"] == {"c", "d", "e"} and out[2]["removed"] == {"b"}
    for t in out:  # the three are disjoint and P ∪ E = Ω
        assert not (t["preserved"] & t["emerged"]) and not (t["removed"] & t["salient"])
        assert t["preserved"] | t["emerged"] == t["salient"]
    with pytest.raises(ValueError):
        track_sets([])


def test_status_masks_match_track_sets() -> None:
    rng = np.random.default_rng(0)
    sal = rng.random((40, 6)) < 0.5
    masks = status_masks(sal)
    sets = track_sets([set(np.flatnonzero(sal[:, t])) for t in range(sal.shape[1])])
    for t, s in enumerate(sets):
        for name in ("preserved", "emerged", "removed"):
            assert set(np.flatnonzero(masks[name][:, t])) == s[name]


def _frame(values: dict[tuple[int, str], list[float]], steps: list[int], frac: float = 0.1,
           prompt: str = "p") -> pd.DataFrame:
    """Tidy rows for one prompt: values[(mask, kind)] = value at each step; salient by threshold."""
    rows = []
    for t, step in enumerate(steps):
        top = max(abs(v[t]) for (m, _), v in values.items() if m)
        for (mask, kind), v in values.items():
            rows.append({"prompt_id": prompt, "step": step, "mask": mask, "kind": kind,
                         "order": bin(mask).count("1"), "value": v[t],
                         "salient": bool(mask) and abs(v[t]) > frac * top})
    return pd.DataFrame(rows)


GAME = {  # (mask, kind): values at steps 0, 10, 20
    (0, "and"): [5.0, 5.0, 5.0],  # the empty set: never salient
    (1, "and"): [2.0, 2.0, 2.0],  # preserved throughout
    (2, "and"): [-1.0, 0.0, 0.0],  # removed at 10
    (3, "and"): [1.0, -1.0, 0.0],  # preserved at 10 (salient, sign flipped), removed at 20
    (7, "or"): [0.0, 1.0, 1.0],  # emerged at 10
    (6, "or"): [0.0, 0.0, -1.0],  # emerged at 20
}


def test_assign_status_on_a_hand_made_table() -> None:
    out = assign_status(_frame(GAME, [0, 10, 20]))
    st = out.set_index(["step", "mask", "kind"])["status"]
    assert st[(0, 1, "and")] == st[(0, 2, "and")] == st[(0, 3, "and")] == "preserved"
    assert st[(0, 0, "and")] == "none" and st[(0, 7, "or")] == "none"
    assert st[(10, 1, "and")] == "preserved" and st[(10, 2, "and")] == "removed"
    assert st[(10, 3, "and")] == "preserved" and st[(10, 7, "or")] == "emerged" and st[(10, 6, "or")] == "none"
    assert st[(20, 3, "and")] == "removed" and st[(20, 6, "or")] == "emerged" and st[(20, 7, "or")] == "emerged"
    base = out.set_index(["step", "mask", "kind"])["base_value"]
    assert base[(20, 2, "and")] == -1.0 and out["base_salient"].dtype == bool
    # steps can be given in another order than sorted: the first is the base
    assert (assign_status(_frame(GAME, [0, 10, 20]), steps=[0, 10, 20])["status"] == out["status"]).all()


def test_assign_status_rejects_a_missing_step() -> None:
    frame = _frame(GAME, [0, 10, 20])
    frame = frame[~((frame["step"] == 10) & (frame["mask"] == 1))]
    with pytest.raises(ValueError, match="missing"):
        assign_status(frame)
    with pytest.raises(ValueError, match="missing"):
        assign_status(_frame(GAME, [0, 10, 20]), steps=[0, 10, 30])


def test_non_cancelling_ratio() -> None:
    assert non_cancelling_ratio([1.0, -1.0]) == 0.0
    assert non_cancelling_ratio([1.0, 2.0]) == 1.0
    assert non_cancelling_ratio([-3.0, -1.0]) == 1.0
    assert non_cancelling_ratio([2.0, -1.0]) == pytest.approx(1 / 3)
    assert math.isnan(non_cancelling_ratio([])) and math.isnan(non_cancelling_ratio([0.0]))


def test_generalisation_ratio() -> None:
    v, r = [1.0, -1.0, 2.0], [0.5, -1.0, -3.0]
    assert generalisation_ratio(v, r, [True, True, True]) == pytest.approx(2 / 3)  # third: other sign
    assert generalisation_ratio(v, r, [False, True, True]) == pytest.approx(1 / 3)  # first: not salient there
    assert math.isnan(generalisation_ratio([], [], []))
    with pytest.raises(ValueError):
        generalisation_ratio([1.0], [1.0, 2.0], [True])


def _reference(prompt: str = "p") -> pd.DataFrame:
    ref = {(1, "and"): (3.0, True), (2, "and"): (-2.0, True), (3, "and"): (1.0, True),
           (7, "or"): (-1.0, True), (6, "or"): (-0.01, False)}
    return pd.DataFrame([{"prompt_id": prompt, "mask": m, "kind": k, "ref_value": v, "ref_salient": s}
                         for (m, k), (v, s) in ref.items()])


def test_add_generalisation_judges_removed_by_their_base_value() -> None:
    out = add_generalisation(assign_status(_frame(GAME, [0, 10, 20])), _reference())
    g = out.set_index(["step", "mask", "kind"])["generalises"]
    assert g[(10, 2, "and")]  # removed: base value -1 has the reference's sign (value now is 0)
    assert g[(10, 1, "and")] and not g[(10, 3, "and")]  # sign flipped at 10 against the reference
    assert not g[(10, 7, "or")]  # emerged with the wrong sign
    assert not g[(20, 6, "or")]  # not salient in the reference
    assert pd.isna(g[(0, 0, "and")])  # the empty set has no reference row
    none = add_generalisation(assign_status(_frame(GAME, [0, 10, 20])), None)
    assert none["generalises"].isna().all()


def test_summary_counts_rho_gamma_and_denoise() -> None:
    frame = add_generalisation(assign_status(_frame(GAME, [0, 10, 20])), _reference())
    s = summarize_dynamics(frame, pd.DataFrame({"step": [0, 10, 20], "val_loss": [1.0, 0.5, 0.7]})).set_index("step")
    assert s.loc[0, "n_salient"] == 3 and s.loc[0, "n_preserved"] == 3 and s.loc[0, "n_emerged"] == 0
    assert s.loc[10, ["n_preserved", "n_emerged", "n_removed"]].tolist() == [2, 1, 1]
    assert s.loc[20, ["n_preserved", "n_emerged", "n_removed"]].tolist() == [1, 2, 2]
    assert s.loc[20, "share_removed"] == pytest.approx(2 / 3) and s.loc[20, "denoise"] == pytest.approx(0.0)
    assert s.loc[10, "denoise"] == pytest.approx(0.0)
    # ρ of the base salient set {2, -1, 1}: |2| / 4; of Ω_10 = {2, -1, 1}: 2/4; removed at 20 by base values {-1, 1}
    assert s.loc[0, "rho_salient"] == pytest.approx(0.5) and s.loc[20, "rho_removed"] == pytest.approx(0.0)
    assert s.loc[0, "gamma_salient"] == pytest.approx(1.0)
    assert s.loc[10, "gamma_emerged"] == 0.0 and s.loc[10, "gamma_preserved"] == pytest.approx(0.5)
    assert s.loc[10, "strength_preserved"] == pytest.approx(3.0) and s.loc[20, "order_emerged"] == pytest.approx(2.5)
    assert math.isnan(s.loc[0, "rho_emerged"]) and s.loc[10, "val_loss"] == 0.5
    orders = order_profile(frame)
    row = orders[(orders["step"] == 20) & (orders["group"] == "emerged") & (orders["order"] == 3)]
    assert row["n"].item() == 1 and row["gamma"].item() == 0.0


def test_counts_are_means_over_prompts_with_empty_groups_as_zero() -> None:
    other = {(0, "and"): [1.0, 1.0, 1.0], (1, "and"): [1.0, 1.0, 1.0], (2, "and"): [1.0, 1.0, 1.0]}
    frame = pd.concat([_frame(GAME, [0, 10, 20], prompt="p"), _frame(other, [0, 10, 20], prompt="q")])
    s = summarize_dynamics(assign_status(frame)).set_index("step")
    assert s.loc[10, "n_emerged"] == pytest.approx(0.5)  # 1 in p, 0 in q
    assert s.loc[10, "share_removed"] == pytest.approx((1 / 3 + 0) / 2)
    assert math.isnan(s.loc[10, "gamma_salient"])  # no reference


def test_denoising_end_net_rule_on_a_synthetic_curve() -> None:
    steps = [0, 100, 200, 300, 400, 500]
    removed = [0, 0.3, 0.5, 0.6, 0.65, 0.66]
    emerged = [0, 0.1, 0.2, 0.4, 0.7, 0.9]
    stop = denoising_end(steps, removed, emerged)
    assert (stop.step, stop.index, stop.detected) == (200, 2, True)
    assert stop.score == pytest.approx(0.3)
    # still denoising at the end: the last checkpoint, not detected
    late = denoising_end(steps, [0, 0.1, 0.2, 0.3, 0.4, 0.5], [0] * 6)
    assert (late.step, late.detected) == (500, False)
    # ties go to the earliest
    assert denoising_end([0, 1, 2], [0, 0.5, 0.5], [0, 0, 0]).step == 1
    # emergences outpace removals from the start: no denoising phase, the least net growth, never the base
    none = denoising_end([0, 1, 2, 3], [0, 0.1, 0.2, 0.3], [0, 0.2, 0.3, 0.9])
    assert (none.step, none.detected) == (1, False) and "no denoising phase" in none.reason
    with pytest.raises(ValueError):
        denoising_end([0], [0], [0])


def test_denoising_end_plateau_rule() -> None:
    steps = [0, 10, 20, 30, 40]
    stop = denoising_end(steps, [0, 0.3, 0.55, 0.6, 0.58], [0, 0.1, 0.2, 0.5, 0.9], rule="plateau")
    assert (stop.step, stop.detected) == (20, True)  # 0.55 >= 0.9 * 0.6
    assert denoising_end(steps, [0, 0.1, 0.2, 0.3, 0.6], [0] * 5, rule="plateau").detected is False
    assert denoising_end(steps, [0] * 5, [0] * 5, rule="plateau").detected is False


def test_denoising_end_turn_rule() -> None:
    steps = [0, 10, 20, 30, 40]
    stop = denoising_end(steps, [0, 0.4, 0.5, 0.5, 0.45], [0, 0.1, 0.15, 0.3, 0.5], rule="turn")
    assert (stop.step, stop.detected) == (20, True)
    none = denoising_end(steps, [0, 0.1, 0.2, 0.3, 0.4], [0, 0.1, 0.2, 0.3, 0.4], rule="turn")
    assert (none.step, none.detected) == (40, False)
    with pytest.raises(ValueError, match="unknown stopping rule"):
        denoising_end(steps, [0] * 5, [0] * 5, rule="magic")
    with pytest.raises(ValueError):
        denoising_end([0, 1], [0], [0, 1])


def test_lowest_loss_and_stopping_summary() -> None:
    stop = lowest_loss([0, 10, 20, 30], [3.0, 2.0, 1.5, 1.7])
    assert (stop.step, stop.detected) == (20, True)
    assert lowest_loss([0, 10], [2.0, float("nan")]).step == 0
    assert not lowest_loss([0, 10], [2.0, 1.0]).detected
    with pytest.raises(ValueError):
        lowest_loss([0], [float("nan")])
    summary = pd.DataFrame({"step": [0, 10, 20, 30], "share_removed": [0, 0.4, 0.5, 0.5],
                            "share_emerged": [0, 0.1, 0.3, 0.6], "val_loss": [2.0, 1.0, 1.2, 1.5],
                            "test_acc": [0.25, 0.5, 0.5, 0.25]})
    out = stopping_summary(summary)
    assert out["interaction"]["step"] == 10 and out["loss"]["step"] == 10 and out["final_step"] == 30
    assert out["at"]["final"]["test_acc"] == 0.25 and out["at"]["interaction"]["val_loss"] == 1.0
    assert stopping_table(out)["point"].tolist() == ["base", "interaction", "loss", "final"]
    rules = rule_table(summary).set_index("rule")
    assert rules.index.tolist() == ["net", "turn", "plateau", "val_loss"]
    assert rules.loc["net", "step"] == 10 and rules.loc["plateau", "step"] == 20
    assert rules.loc["val_loss", "test_acc"] == 0.5
