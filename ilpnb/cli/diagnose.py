"""``ilpnb diagnose RUN`` and ``ilpnb score RUN --truth WORLD/truth.jsonl``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ilpnb.cli.registry import arguments, command
from ilpnb.diagnose.thresholds import ATTRIBUTE

__all__: list[str] = []


@command("diagnose", "attribute every unlearned sample of a run to a cause, with evidence")
@arguments(lambda p: (p.add_argument("run", help="SFT run folder"),
                      p.add_argument("--criterion", help="exact, token_acc, loss or mc (default: the run's)"),
                      p.add_argument("--probes", help="knowledge-probe JSONL of your own (default: none; the base model is questioned directly)"),
                      p.add_argument("--threshold", type=float, default=ATTRIBUTE,
                                     help=f"least score to attribute a cause (default: {ATTRIBUTE})")))
def _diagnose(args: argparse.Namespace) -> int:
    from ilpnb.diagnose.attribution import cause_split, write_diagnosis

    table = write_diagnosis(args.run, args.criterion, args.probes, args.threshold, evidence=_evidence(args.run))
    split = cause_split(table)
    print(f"{Path(args.run) / 'diagnosis.parquet'}: {len(table)} samples, "
          f"{split.attrs['unlearned_share']:.1%} unlearned")
    print(split.round(3).to_string())
    return 0


def _evidence(run: str) -> object:
    """How the base model is questioned: for a real model (a registered or hub name, not a local
    folder) the real track's settings of the run's preset (``real.diagnose``: sampling a 135M
    model on a CPU is the slow part), else the diagnosis's defaults (None)."""
    from ilpnb.runs import RunFolder

    config = RunFolder.open(run).config
    model = config.get("model")
    if config.get("world") or not model or Path(str(model)).exists():
        return None
    from ilpnb.pipeline.realtrack import evidence_settings

    return evidence_settings(str(config.get("preset") or "default"))


@command("score", "score a run's diagnosis against a world's planted causes")
@arguments(lambda p: (p.add_argument("run", help="SFT run folder with diagnosis.parquet"),
                      p.add_argument("--truth", required=True, help="WORLD/truth.jsonl")))
def _score(args: argparse.Namespace) -> int:
    import pandas as pd

    from ilpnb.diagnose.scoring import read_truth_file, score_diagnosis

    path = Path(args.run) / "diagnosis.parquet"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no diagnosis yet; run `ilpnb diagnose {args.run}` first")
    result = score_diagnosis(pd.read_parquet(path), read_truth_file(args.truth))
    print(result.to_text())
    result.confusion.to_csv(Path(args.run) / "score_confusion.csv")
    result.per_cause.to_csv(Path(args.run) / "score_per_cause.csv")
    (Path(args.run) / "score.json").write_text(json.dumps(
        {"macro_f1": result.macro_f1, "scored": result.scored, "excluded_learned": result.excluded_learned,
         "per_cause_f1": result.per_cause["f1"].to_dict()}, indent=1, default=float) + "\n")
    return 0
