"""Benchmark: the wall-time cost of per-sample tracking during SFT.

Runs the same SFT (the preset's world and base model, the preset's SFT settings, same seed)
twice: with tracking at every evaluation point (``track="points"``: step 0, every epoch, the
base model's and the final greedy outputs) and without any tracking (``track="none"``: plain
``Trainer`` SFT). Both runs save no per-point model checkpoints (``checkpoints="none"``), so
the difference is the measurement alone. Prints both wall times, the extra time in percent
(target <= 15% at the ``default`` preset), and where the tracking time goes.

    .venv/bin/python benchmarks/bench_tracking_overhead.py [--preset default] [--repeats 2] [--threads 1]
                                                           [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_tracking_overhead.json``
(or PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def _instrument(spent: dict[str, float]) -> Callable[[], None]:
    """Accumulate the time spent in the tracking functions; returns an undo function."""
    from ilpnb.train import tracking

    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return real(*args, **kwargs)
            finally:
                spent[label] += time.perf_counter() - start

        originals.append((owner, name, real))
        setattr(owner, name, timed)

    wrap(tracking.Tracker, "measure", "Tracker.measure (all)")
    wrap(tracking.Tracker, "_options", "  options (multiple choice)")
    wrap(tracking, "greedy_outputs", "  greedy outputs (base and final)")
    wrap(tracking, "score_continuations", "  teacher-forced scoring")
    wrap(tracking, "js_divergence_bits", "  JS divergence to the base")

    def undo() -> None:
        for owner, name, real in originals:
            setattr(owner, name, real)

    return undo


def _one(track: str, out: Path, base: Path, world: Path, preset: str, sft: dict[str, Any],
         track_options: str = "all") -> tuple[float, dict[str, float]]:
    from ilpnb.train.sft import run_sft

    spent: dict[str, float] = defaultdict(float)
    undo = _instrument(spent)
    try:
        start = time.perf_counter()
        run_sft(out, model=str(base), data=str(world / "sft.jsonl"), preset=preset, progress=False, track=track,
                checkpoints="none", max_length=_max_length(preset),
                # a fixed budget: every arm trains the same steps, whatever it measures
                sft={**sft, "converge": False}, track_options=track_options)
        return time.perf_counter() - start, dict(spent)
    finally:
        undo()


def _max_length(preset: str) -> int:
    from ilpnb.config import get_preset

    return get_preset(preset).model.max_length


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="world, base model and SFT preset (default: default)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind, interleaved (the best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--eval-every", default=None, help="evaluation points: epoch (the preset's) or K steps")
    parser.add_argument("--track-options", default="all,ends",
                        help="multiple-choice scoring at 'all' points and/or only at the 'ends' (step 0, stage ends); "
                             "comma-separated, each timed (default all,ends)")
    add_json_option(parser)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.models.pretrain import pretrain_base_model

    p = get_preset(args.preset)
    tmp = Path(tempfile.mkdtemp(prefix="ilpnb-bench-tracking-"))
    world = generate_world(p.world, tmp / "world")
    start = time.perf_counter()
    base = pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=False)
    took = time.perf_counter() - start
    sft: dict[str, Any] = {}
    if args.eval_every:
        sft["eval_every"] = args.eval_every if args.eval_every == "epoch" else int(args.eval_every)
    n = sum(1 for line in (world / "sft.jsonl").read_text().splitlines() if line.strip())
    cfg = p.sft
    print(f"preset {args.preset}: {n} SFT samples, {cfg.epochs} epochs per stage, batch {cfg.batch_size}, "
          f"eval every {sft.get('eval_every', cfg.eval_every)}; base model {base.name} "
          f"({'pretrained now in ' + format(took, '.0f') + ' s' if took > 5 else 'cached'}); "
          f"torch threads {torch.get_num_threads()}; cache {os.environ.get('ILPNB_CACHE', '~/.cache/ilpnb')}")
    # warm-up (imports, first allocations) so that neither kind pays it
    _one("none", tmp / "warmup", base, world, args.preset, {**sft, "epochs": 1})
    kinds = [("none", "all")] + [("points", o) for o in args.track_options.split(",")]
    times: dict[tuple[str, str], list[float]] = {k: [] for k in kinds}
    spent: dict[tuple[str, str], dict[str, float]] = {}
    for k in range(args.repeats):
        for kind in kinds:
            track, options = kind
            wall, where = _one(track, tmp / f"{track}-{options}-{k}", base, world, args.preset, sft, options)
            times[kind].append(wall)
            if wall == min(times[kind]):
                spent[kind] = where
            print(f"  run {k + 1} track={track:<6} track_options={options:<4} {wall:7.1f} s")
    plain = min(times[("none", "all")])
    every = sft.get("eval_every", cfg.eval_every)
    every = "epoch" if every == "epoch" else f"{every} steps"
    figures = [figure("plain_sft_s", f"plain SFT at `{args.preset}` ({n} samples, no tracking)", plain, "s",
                      digits=1, note=f"best of {args.repeats}")]
    for kind in kinds[1:]:
        tracked = min(times[kind])
        where = "at every point" if kind[1] == "all" else "at step 0 and stage ends"
        figures.append(figure(f"overhead_options_{kind[1]}_pct", f"tracking overhead, evaluation every {every}, "
                              f"multiple-choice options {where}", 100 * (tracked - plain) / plain, "%",
                              digits=0, signed=True,
                              note=f"{tracked:.1f} s vs {plain:.1f} s plain SFT; best of {args.repeats}; "
                                   "target <= 15%"))
    write_results(args, __file__, figures, preset=args.preset,
                  seeds={"world": [p.world.seed], "pretrain": [p.pretrain.seed], "sft": [cfg.seed]})
    print(f"\nSFT without tracking                    {plain:7.1f} s")
    for kind in kinds[1:]:
        tracked = min(times[kind])
        extra = tracked - plain
        print(f"SFT with tracking, options at {kind[1]:<4}      {tracked:7.1f} s: extra {extra:5.1f} s = "
              f"{100 * extra / plain:5.1f}%  (target <= 15%)")
        for label, secs in spent[kind].items():
            print(f"    {label:<36} {secs:7.2f} s  ({100 * secs / plain:5.1f}% of plain SFT)")


if __name__ == "__main__":
    main()
