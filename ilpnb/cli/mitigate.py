"""``ilpnb mitigate RUN --cause C --method M [--seeds K]``: a targeted fix vs its generic and placebo
controls (and the unmodified run), with 95% intervals over seeds; ``ilpnb mitigate RUN --crossover``:
every intervention on every diagnosed cause's samples, written to ``RUN/mitigation/crossover.parquet``.

The experiment's settings are the ``mitigate`` sub-tree of the run's preset
(:class:`ilpnb.config.MitigateConfig`), one generated flag per field (``--mitigate.seeds 2``;
``--seeds`` and ``--mix`` are aliases).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pandas as pd

from ilpnb.cli.registry import arguments, command
from ilpnb.config import MitigateConfig

__all__: list[str] = []


def _arguments(p: argparse.ArgumentParser) -> None:
    from ilpnb.cli.flags import add_setting_flags

    p.add_argument("run", help="diagnosed SFT run folder")
    p.add_argument("--cause", help="the cause to mitigate (required without --crossover)")
    p.add_argument("--method", help="intervention (default: the cause's pre-registered one)")
    p.add_argument("--crossover", action="store_true",
                   help="every method on every diagnosed cause's samples; writes RUN/mitigation/crossover.parquet")
    p.add_argument("--methods", nargs="+", default=None, help="methods of the crossover (default: all)")
    p.add_argument("--causes", nargs="+", default=None, help="causes of the crossover (default: every diagnosed one)")
    p.add_argument("--factor", type=int, default=None, help="k of weights/copies/resampling (default per method)")
    group = p.add_argument_group("mitigation settings (the mitigate sub-tree of the run's preset)")
    add_setting_flags(group, MitigateConfig, "mitigate", aliases={"seeds": ["--seeds"], "mix": ["--mix"]})


def _settings_of(run: str, given: dict[str, Any]) -> MitigateConfig:
    """The run's preset's ``mitigate`` settings with the flags given (dotted keys) applied."""
    from ilpnb.config import get_preset
    from ilpnb.runs import RunFolder

    preset = str(RunFolder.open(run).config.get("preset", "default"))
    return get_preset(preset, **given).mitigate


def _fmt(row: pd.Series, arm: str) -> str:
    return f"{row[arm]:.3f} [{row[f'{arm}_lo']:.3f}, {row[f'{arm}_hi']:.3f}]"


def _report(summary: pd.DataFrame, cause: str, method: str) -> str:
    """The lines the command prints: per cause the arms with intervals, the compute, the verdict."""
    arms = ("treated", "generic", "placebo", "unmodified")
    lines = [f"{'cause':<18} {'n':>3}  " + " ".join(f"{name:<22}" for name in
                                                   ("treated", "generic control", "placebo", "unmodified"))]
    for _, r in summary.iterrows():
        lines.append(f"{r['cause']:<18} {r['unlearned']:>3}  " + " ".join(f"{_fmt(r, a):<22}" for a in arms))
    own = summary[summary["cause"] == cause].iloc[0]
    lines += ["", f"compute (mean per arm): optimizer steps treated {own['steps_treated']:.0f} / generic "
              f"{own['steps_generic']:.0f} / placebo {own['steps_placebo']:.0f}; trained tokens "
              f"{own['tokens_treated']:.0f} / {own['tokens_generic']:.0f} / {own['tokens_placebo']:.0f}; "
              f"continued-pretraining tokens {own['cpt_tokens_treated']:.0f}",
              f"collateral (learned before, lost now): treated {own['collateral_loss_treated']:.3f}, generic "
              f"{own['collateral_loss_generic']:.3f}; held-out probe recall: treated "
              f"{own['held_out_recall_treated']:.3f}, unmodified {own['held_out_recall_unmodified']:.3f}"]
    for arm in ("generic", "placebo"):
        lines.append(f"treated - {arm}: {own[f'vs_{arm}']:+.3f} (95% CI [{own[f'vs_{arm}_lo']:+.3f}, "
                     f"{own[f'vs_{arm}_hi']:+.3f}], {own['seeds']} seeds)")
    if own["longer"] == own["longer"]:  # cpt: the published comparison with more SFT epochs
        lines.append(f"unmodified with more SFT epochs: {_fmt(own, 'longer')}; treated - it: {own['vs_longer']:+.3f} "
                     f"(95% CI [{own['vs_longer_lo']:+.3f}, {own['vs_longer_hi']:+.3f}])")
    verdict = ("cause-specific: beats its generic control" if own["cause_specific"]
               else "not shown cause-specific: does not clearly beat its generic control")
    lines.append(f"{cause}/{method}: {verdict}")
    return "\n".join(lines)


@command("mitigate", "run a targeted intervention with its generic and placebo controls, or the crossover matrix")
@arguments(_arguments)
def _mitigate(args: argparse.Namespace) -> int:
    from ilpnb.cli.flags import given_settings

    m = _settings_of(args.run, given_settings(args, "mitigate"))
    knobs = {"mix": m.mix, "docs_per_sample": m.docs_per_sample, "cpt_epochs": m.cpt_epochs}
    if args.crossover:
        from ilpnb.mitigate.crossover import crossover_matrix, run_crossover

        matrix = crossover_matrix(run_crossover(args.run, args.causes, args.methods, m.crossover_seeds or m.seeds,
                                                args.factor, knobs, progress=True, workers=m.workers))
        print(matrix.round(3).to_string(index=False))
        print(f"\nwrote {Path(args.run) / 'mitigation' / 'crossover.parquet'}")
        return 0
    if not args.cause:
        raise ValueError("give --cause C (or --crossover)")
    from ilpnb.mitigate.experiment import run_mitigation, summarize

    table = run_mitigation(args.run, args.cause, args.method, m.seeds, args.factor, knobs, progress=True,
                           workers=m.workers)
    print(_report(summarize(table), args.cause, str(table["method"].iloc[0])))
    return 0
