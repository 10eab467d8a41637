"""Benchmark: early stopping from interactions vs the lowest validation loss, over SFT seeds.

Notebooks 10 and 11's two interaction runs at a preset — the world's tiny model
(:func:`ilpnb.pipeline.interactions.ensure_interaction_dynamics`) and SmolLM2-135M-Instruct on the
planted real world in the study's setup (:func:`ilpnb.pipeline.real_interactions.ensure_real_interaction_dynamics`)
— once per SFT seed, on one world and one base model. Both stopping rules choose on the
validation prompts; everything reported is measured on the disjoint test prompts. Per model it
prints, per seed, the stopping steps and the test loss / accuracy at each, and the test
first-token cross-entropy rebuilt from the preserved interactions alone vs from all of them at
the last checkpoint; then over seeds the mean differences with a 95% t-interval, and the
removed / emerged counts by order at the denoising end and at the last checkpoint.

    python benchmarks/bench_early_stopping.py [--preset default] [--seeds 0 1 2] [--models world real]
                                              [--threads N] [--out DIR] [--json [PATH]]

``--out`` keeps the runs (reused when run again).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["interval", "main"]

MODELS = {"world": "world (tiny model)", "real": "SmolLM2-135M-Instruct"}


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval (NaN bounds for one value)."""
    from scipy import stats

    x = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    m = float(x.mean())
    if len(x) < 2:
        return m, float("nan"), float("nan")
    h = float(stats.t.ppf(0.975, len(x) - 1) * x.std(ddof=1) / np.sqrt(len(x)))
    return m, m - h, m + h


def _tables(kind: str, root: Path, preset: str, seed: int):
    if kind == "world":
        from ilpnb.pipeline.interactions import ensure_interaction_dynamics
        return ensure_interaction_dynamics(root, preset, seed=seed)
    from ilpnb.pipeline.real_interactions import ensure_real_interaction_dynamics
    return ensure_real_interaction_dynamics(root, preset, seed=seed)


def _orders(tables, step: int) -> str:
    o = tables.orders[(tables.orders["step"] == step) & tables.orders["group"].isin(["removed", "emerged"])]
    t = o.pivot_table(index="group", columns="order", values="n", aggfunc="first").fillna(0.0)
    return "; ".join(f"{g} " + ", ".join(f"o{int(k)}={v:.1f}" for k, v in t.loc[g].items()) for g in t.index)


def _one(kind: str, root: Path, preset: str, seed: int) -> dict:
    t0 = time.perf_counter()
    tab = _tables(kind, root, preset, seed)
    st, last = tab.stopping, tab.summary.sort_values("step").iloc[-1]
    a = st["at"]
    row = {"seed": seed, "seconds": time.perf_counter() - t0,
           "inter_step": st["interaction"]["step"], "inter_detected": st["interaction"]["detected"],
           "loss_step": (st["loss"] or {}).get("step"),
           "inter_test_loss": a["interaction"].get("test_loss"), "loss_test_loss": (a.get("loss") or {}).get("test_loss"),
           "inter_test_acc": a["interaction"].get("test_acc"), "loss_test_acc": (a.get("loss") or {}).get("test_acc"),
           "ce_preserved": last.get("test_ce_preserved"), "ce_all": last.get("test_ce_all"),
           "ce_model": last.get("test_ce_model"), "orders_stop": _orders(tab, st["interaction"]["step"]),
           "orders_last": _orders(tab, int(last["step"])), "n_val": len(st["split"]["validation"]),
           "n_test": len(st["split"]["test"])}
    print(f"  seed {seed} ({row['seconds']:.0f} s; {row['n_val']} validation / {row['n_test']} test prompts): "
          f"interaction stop step {row['inter_step']}{'' if row['inter_detected'] else ' (no end detected)'}, "
          f"loss stop step {row['loss_step']}; test loss {row['inter_test_loss']:.3f} vs {row['loss_test_loss']:.3f}, "
          f"test accuracy {row['inter_test_acc']:.3f} vs {row['loss_test_acc']:.3f}; last checkpoint test CE "
          f"preserved-only {row['ce_preserved']:.3f} vs all {row['ce_all']:.3f} (model {row['ce_model']:.3f})")
    print(f"    by order at the interaction stop: {row['orders_stop']}")
    print(f"    by order at the last checkpoint:  {row['orders_last']}")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--out", default=None, help="folder to keep the runs in (default: temporary)")
    add_json_option(parser)
    args = parser.parse_args()
    root = Path(args.out) if args.out else Path(tempfile.mkdtemp(prefix="ilpnb-bench-stop-"))
    root.mkdir(parents=True, exist_ok=True)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"preset {args.preset}; SFT seeds {args.seeds}; torch threads {torch.get_num_threads()}; runs in {root}")
    figures = []
    for kind in args.models:
        print(f"\n== {MODELS[kind]}")
        rows = [_one(kind, root, args.preset, s) for s in args.seeds]
        d_loss = [r["inter_test_loss"] - r["loss_test_loss"] for r in rows]
        d_acc = [r["inter_test_acc"] - r["loss_test_acc"] for r in rows]
        d_ce = [r["ce_preserved"] - r["ce_all"] for r in rows]
        for key, what, vals, digits in (
                ("test_loss", "test loss, interaction stop − lowest-validation-loss stop", d_loss, 3),
                ("test_acc", "test accuracy, interaction stop − lowest-validation-loss stop", d_acc, 3),
                ("ce_preserved", "last checkpoint test CE, preserved interactions alone − all", d_ce, 3)):
            m, lo, hi = interval(vals)
            print(f"{MODELS[kind]}: {what}: {m:+.{digits}f} (95% CI {lo:+.{digits}f} to {hi:+.{digits}f}; "
                  f"n = {len(vals)} seeds)")
            figures.append(figure(f"{kind}_{key}", f"{MODELS[kind]}: {what}", m, "", digits=digits, ci=(lo, hi),
                                  n=len(vals), signed=True))
        found = sum(bool(r["inter_detected"]) for r in rows)
        print(f"{MODELS[kind]}: an end of denoising detected in {found} of {len(rows)} seeds")
        figures.append(figure(f"{kind}_denoising_detected", f"{MODELS[kind]}: seeds with an end of denoising "
                              "detected (validation prompts)", found, "seeds", digits=0, n=len(rows)))
    write_results(args, __file__, figures, preset=args.preset, seeds={"sft": list(args.seeds)})


if __name__ == "__main__":
    main()
