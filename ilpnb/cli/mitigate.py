"""``ilpnb mitigate RUN --cause C --method M [--seeds K]``: a targeted fix vs its matched control."""

from __future__ import annotations

import argparse

from ilpnb.cli.registry import arguments, command

__all__: list[str] = []


@command("mitigate", "run a targeted intervention and its matched control on a diagnosed run")
@arguments(lambda p: (p.add_argument("run", help="diagnosed SFT run folder"),
                      p.add_argument("--cause", required=True, help="the cause to mitigate"),
                      p.add_argument("--method", help="intervention (default: the cause's first)"),
                      p.add_argument("--seeds", type=int, default=3, help="seeds per arm (default 3)"),
                      p.add_argument("--factor", type=int, default=None, help="k of weights/copies/resampling (default per method)"),
                      p.add_argument("--mix", type=float, default=0.2, help="knowledge share of continued pretraining")))
def _mitigate(args: argparse.Namespace) -> int:
    from ilpnb.mitigate.experiment import run_mitigation, summarize

    table = run_mitigation(args.run, args.cause, args.method, args.seeds, args.factor, {"mix": args.mix}, progress=True)
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
