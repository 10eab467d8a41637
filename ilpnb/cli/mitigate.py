"""``ilpnb mitigate RUN --cause C --method M [--seeds K]``: a targeted fix vs its matched control.

The experiment's settings are the ``mitigate`` sub-tree of the run's preset
(:class:`ilpnb.config.MitigateConfig`), one generated flag per field (``--mitigate.seeds 2``;
``--seeds`` and ``--mix`` are aliases).
"""

from __future__ import annotations

import argparse
from typing import Any

from ilpnb.cli.registry import arguments, command
from ilpnb.config import MitigateConfig

__all__: list[str] = []


def _arguments(p: argparse.ArgumentParser) -> None:
    from ilpnb.cli.flags import add_setting_flags

    p.add_argument("run", help="diagnosed SFT run folder")
    p.add_argument("--cause", required=True, help="the cause to mitigate")
    p.add_argument("--method", help="intervention (default: the cause's first)")
    p.add_argument("--factor", type=int, default=None, help="k of weights/copies/resampling (default per method)")
    group = p.add_argument_group("mitigation settings (the mitigate sub-tree of the run's preset)")
    add_setting_flags(group, MitigateConfig, "mitigate", aliases={"seeds": ["--seeds"], "mix": ["--mix"]})


def _settings_of(run: str, given: dict[str, Any]) -> MitigateConfig:
    """The run's preset's ``mitigate`` settings with the flags given (dotted keys) applied."""
    from ilpnb.config import get_preset
    from ilpnb.runs import RunFolder

    preset = str(RunFolder.open(run).config.get("preset", "default"))
    return get_preset(preset, **given).mitigate


@command("mitigate", "run a targeted intervention and its matched control on a diagnosed run")
@arguments(_arguments)
def _mitigate(args: argparse.Namespace) -> int:
    from ilpnb.cli.flags import given_settings
    from ilpnb.mitigate.experiment import run_mitigation, summarize

    m = _settings_of(args.run, given_settings(args, "mitigate"))
    knobs = {"mix": m.mix, "docs_per_sample": m.docs_per_sample, "cpt_epochs": m.cpt_epochs}
    table = run_mitigation(args.run, args.cause, args.method, m.seeds, args.factor, knobs, progress=True)
    summary = summarize(table)
    cols = ["cause", "unlearned", "treated", "treated_lo", "treated_hi", "control", "control_lo", "control_hi",
            "difference", "difference_lo", "difference_hi", "collateral_treated", "collateral_control",
            "held_out_treated", "held_out_control"]
    print(summary[cols].round(3).to_string(index=False))
    own = summary[summary["cause"] == args.cause].iloc[0]
    verdict = "beats" if own["difference_lo"] > 0 else "does not clearly beat"
    print(f"\n{args.cause}/{table['method'].iloc[0]}: treated {verdict} its control on its own cause "
          f"(difference {own['difference']:+.3f}, 95% CI [{own['difference_lo']:+.3f}, {own['difference_hi']:+.3f}])")
    return 0
