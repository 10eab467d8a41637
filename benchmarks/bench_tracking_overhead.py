"""Benchmark: the wall-time cost of per-sample tracking during SFT.

Runs the same SFT (the preset's world and base model, the preset's SFT settings, same seed,
a fixed budget) as:

* plain ``Trainer`` SFT: no tracking at all (``track="none"``, ``train_stats=False``);
* with the free in-training statistics only (``track="none"``: each trained sample's loss,
  token accuracy and exact reproduction read off the training forward pass);
* with tracking at every evaluation point (``track="points"``: step 0, every epoch, the base
  model's and the final greedy outputs; multiple-choice options at ``all`` points and/or only
  at the ``ends``), the in-training statistics included.

No run saves per-point model checkpoints (``checkpoints="none"``), so the differences are the
measurement alone. Times are this process's CPU time on a CPU-only machine (``--clock``:
wall time swings with the other load of a shared machine; CPU time of a one-thread process
does not) and wall time with a GPU. It also times the scoring of every sample's multiple-choice options on the
base model, with the prompt encoded once and its key/value cache shared by the options
against each (prompt, option) pair on its own. The last three lines printed are

    in-training stats overhead: +N%                             (goal <= 3%)
    evaluation tracking overhead (every epoch, options): +N%   (goal <= 15%)
    option scoring with shared prompt: N.NN× faster than unshared   (goal >= 2×)

    .venv/bin/python benchmarks/bench_tracking_overhead.py [--preset default] [--repeats 2] [--threads 1]
                                                           [--model smollm2-135m-instruct [--samples 8]
                                                            [--epochs 2] [--data faq-en]] [--json [PATH]]

``--model`` measures the same on a real model (the real track's LoRA settings, a few records of
the real data with their drawn distractors as options) instead of the world's tiny model.

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


#: the clock of every measurement (see --clock); set in main
_CLOCK = {"now": time.perf_counter}


def _now() -> float:
    return _CLOCK["now"]()


def _instrument(spent: dict[str, float]) -> Callable[[], None]:
    """Accumulate the time spent in the tracking functions; returns an undo function."""
    from ilpnb.train import tracking

    originals: list[tuple[Any, str, Any]] = []

    def wrap(owner: Any, name: str, label: str) -> None:
        real = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = _now()
            try:
                return real(*args, **kwargs)
            finally:
                spent[label] += _now() - start

        originals.append((owner, name, real))
        setattr(owner, name, timed)

    wrap(tracking.Tracker, "measure", "Tracker.measure (all)")
    wrap(tracking.Tracker, "_options", "  options (multiple choice)")
    wrap(tracking, "greedy_outputs", "  greedy outputs (base and final)")
    wrap(tracking, "score_continuations", "  teacher-forced scoring")
    wrap(tracking, "score_shared_context", "    options, shared prompt")
    wrap(tracking, "js_divergence_bits", "  JS divergence to the base")

    def undo() -> None:
        for owner, name, real in originals:
            setattr(owner, name, real)

    return undo


def _one(track: str, out: Path, model: str, data: Path, preset: str, sft: dict[str, Any], max_length: int,
         track_options: str = "all", train_stats: bool = True) -> tuple[float, dict[str, float]]:
    from ilpnb.train.sft import run_sft

    spent: dict[str, float] = defaultdict(float)
    undo = _instrument(spent)
    try:
        start = _now()
        run_sft(out, model=model, data=str(data), preset=preset, progress=False, track=track,
                checkpoints="none", max_length=max_length, train_stats=train_stats,
                # a fixed budget: every arm trains the same steps, whatever it measures
                sft={**sft, "converge": False}, track_options=track_options)
        return _now() - start, dict(spent)
    finally:
        undo()


def _option_scoring(model_name: str, data: Path, max_length: int, batch_size: int,
                    repeats: int) -> tuple[float, float, float]:
    """Seconds (best of ``repeats``, interleaved) that scoring every sample's distractors adds
    on the base model: each (prompt, option) pair on its own, against the options scored on the
    key/value cache of the sample's own pass (as the Tracker does: the time of that pass with
    the options minus the time without); and the largest difference of the two scores."""
    import numpy as np

    from ilpnb.data.records import read_records
    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.probe.scoring import score_continuations
    from ilpnb.train.tracking import Tracker

    model, tok = load_model_and_tokenizer(model_name)
    if tok.pad_token_id is None:
        tok.pad_token = tok.eos_token
    tracker = Tracker(tok, read_records(data), max_length, batch_size=max(32, 2 * batch_size))
    gold = [(it.enc.prompt_ids, it.enc.response_ids) for it in tracker.items]
    follow = [[o.response_ids for o in it.options] for it in tracker.items]
    pairs = [(it.enc.prompt_ids, f) for it, fs in zip(tracker.items, follow) for f in fs]
    if not pairs:
        raise SystemExit(f"{data}: no record has options; nothing to score")
    runs: dict[str, Callable[[], Any]] = {
        "gold": lambda: score_continuations(model, gold, tracker.batch_size, tracker.pad_id, first_logprobs=True),
        "gold+options": lambda: score_continuations(model, gold, tracker.batch_size, tracker.pad_id,
                                                    first_logprobs=True, followers=follow),
        "unshared": lambda: score_continuations(model, pairs, tracker.batch_size, tracker.pad_id),
    }
    best = {k: float("inf") for k in runs}
    out: dict[str, Any] = {}
    for _ in range(repeats):
        for name, fn in runs.items():
            start = _now()
            out[name] = fn()
            best[name] = min(best[name], _now() - start)
    shared_lp = np.concatenate([f.logprob for f in out["gold+options"].followers])
    return best["unshared"], best["gold+options"] - best["gold"], float(np.abs(shared_lp - out["unshared"].logprob).max())


def _real_setup(args: argparse.Namespace, tmp: Path, sft: dict[str, Any]
                ) -> tuple[Path, str, int, int, dict[str, list[int]], str]:
    """A real model's run: ``--samples`` records of ``--data`` drawn as the real track draws its
    subset (answers of at most ``real.max_answer_chars``), LoRA at the real track's settings for
    ``--epochs`` epochs; fills ``sft`` and returns (data, model, max_length, batch, seeds, what)."""
    from ilpnb.data.packaged import resolve_data
    from ilpnb.data.records import write_records
    from ilpnb.pipeline.realtrack import real_settings, select_subset, sft_overrides

    s = real_settings(args.preset)
    data = tmp / "data.jsonl"
    write_records(select_subset(resolve_data(args.data), args.samples, s.seed, 0, s.max_answer_chars), data)
    sft.update(sft_overrides(s), epochs=args.epochs, eval_every="epoch")
    what = (f"{args.model}, LoRA r {s.lora_r} lr {s.lora_lr}, {args.epochs} epochs, batch {s.batch_size}, "
            f"data {args.data}")
    return data, args.model, s.max_length, s.batch_size, {"subset": [s.seed], "sft": [s.seed]}, what


def _max_length(preset: str) -> int:
    from ilpnb.config import get_preset

    return get_preset(preset).model.max_length


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="world, base model and SFT preset (default: default)")
    parser.add_argument("--model", default=None,
                        help="a real model (e.g. smollm2-135m-instruct) on a few records of --data instead of the "
                             "preset's world and tiny base model")
    parser.add_argument("--data", default="faq-en", help="with --model: the SFT data (default faq-en)")
    parser.add_argument("--samples", type=int, default=8, help="with --model: records drawn (default 8)")
    parser.add_argument("--epochs", type=int, default=2, help="with --model: epochs trained (default 2)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind, interleaved (the best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--eval-every", default=None, help="evaluation points: epoch (the preset's) or K steps")
    parser.add_argument("--track-options", default="all,ends",
                        help="multiple-choice scoring at 'all' points and/or only at the 'ends' (step 0, stage ends); "
                             "comma-separated, each timed (default all,ends)")
    parser.add_argument("--clock", choices=("auto", "cpu", "wall"), default="auto",
                        help="cpu: this process's CPU time (robust to other load on a shared machine; right for "
                             "CPU training in one process), wall: elapsed time (needed with a GPU, whose work the "
                             "CPU clock does not see); auto (default): cpu without CUDA, else wall")
    add_json_option(parser)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    clock = args.clock if args.clock != "auto" else ("wall" if torch.cuda.is_available() else "cpu")
    _CLOCK["now"] = time.process_time if clock == "cpu" else time.perf_counter
    from ilpnb.config import get_preset

    p = get_preset(args.preset)
    tmp = Path(tempfile.mkdtemp(prefix="ilpnb-bench-tracking-"))
    sft: dict[str, Any] = {}
    if args.model:  # a real model: a few records of the real track's data, its LoRA settings
        data, model, max_length, batch, seeds, what = _real_setup(args, tmp, sft)
    else:
        from ilpnb.data.world import generate_world
        from ilpnb.models.pretrain import pretrain_base_model

        world = generate_world(p.world, tmp / "world")
        start = time.perf_counter()
        base = pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=False)
        took = time.perf_counter() - start
        data, model, max_length, batch = world / "sft.jsonl", str(base), _max_length(args.preset), p.sft.batch_size
        seeds = {"world": [p.world.seed], "pretrain": [p.pretrain.seed], "sft": [p.sft.seed]}
        what = (f"{p.sft.epochs} epochs per stage, batch {batch}; base model {base.name} "
                f"({'pretrained now in ' + format(took, '.0f') + ' s' if took > 5 else 'cached'})")
    if args.eval_every:
        sft["eval_every"] = args.eval_every if args.eval_every == "epoch" else int(args.eval_every)
    n = sum(1 for line in data.read_text().splitlines() if line.strip())
    cfg = p.sft
    print(f"preset {args.preset}: {n} SFT samples, {what}, eval every {sft.get('eval_every', cfg.eval_every)}; "
          f"torch threads {torch.get_num_threads()}; clock {clock}; "
          f"cache {os.environ.get('ILPNB_CACHE', '~/.cache/ilpnb')}")
    # warm-up (imports, first allocations) so that neither kind pays it
    _one("none", tmp / "warmup", model, data, args.preset, {**sft, "epochs": 1}, max_length, train_stats=False)
    Kind = tuple[str, str, bool]  # (track, track_options, train_stats)
    plain_kind: Kind = ("none", "all", False)
    stats_kind: Kind = ("none", "all", True)
    kinds: list[Kind] = [plain_kind, stats_kind] + [("points", o, True) for o in args.track_options.split(",")]
    times: dict[Kind, list[float]] = {k: [] for k in kinds}
    spent: dict[Kind, dict[str, float]] = {}
    for k in range(args.repeats):
        for kind in kinds:
            track, options, stats = kind
            wall, where = _one(track, tmp / f"{track}-{options}-{int(stats)}-{k}", model, data, args.preset, sft,
                               max_length, options, stats)
            times[kind].append(wall)
            if wall == min(times[kind]):
                spent[kind] = where
            print(f"  run {k + 1} track={track:<6} track_options={options:<4} train_stats={stats!s:<5} {wall:7.1f} s")
    unshared, shared, diff = _option_scoring(model, data, max_length, batch, max(5, args.repeats))
    plain = min(times[plain_kind])
    pct = {kind: 100 * (min(times[kind]) - plain) / plain for kind in kinds}
    on = f" of {args.model}" if args.model else ""
    every = sft.get("eval_every", cfg.eval_every)
    every = "epoch" if every == "epoch" else f"{every} steps"
    figures = [figure("plain_sft_s", f"plain SFT{on} at `{args.preset}` ({n} samples, no tracking)", plain, "s",
                      digits=1, note=f"best of {args.repeats}"),
               figure("overhead_train_stats_pct", f"in-training per-sample statistics overhead{on} (no extra pass)",
                      pct[stats_kind], "%", digits=1, signed=True,
                      note=f"{min(times[stats_kind]):.1f} s vs {plain:.1f} s plain SFT; best of {args.repeats}; "
                           "goal <= 3%"),
               figure("shared_prompt_option_speedup", f"option scoring{on} with the prompt's key/value cache shared",
                      unshared / shared, "×", digits=2,
                      note=f"{shared:.2f} s vs {unshared:.2f} s unshared on the base model; goal >= 2×")]
    for kind in kinds[2:]:
        tracked = min(times[kind])
        where = "at every point" if kind[1] == "all" else "at step 0 and stage ends"
        figures.append(figure(f"overhead_options_{kind[1]}_pct", f"tracking overhead{on}, evaluation every {every}, "
                              f"multiple-choice options {where}", pct[kind], "%",
                              digits=0, signed=True,
                              note=f"{tracked:.1f} s vs {plain:.1f} s plain SFT; best of {args.repeats}; "
                                   "target <= 15%"))
    write_results(args, __file__, figures, preset=args.preset, seeds=seeds)
    print(f"\nSFT without tracking                    {plain:7.1f} s")
    for kind in kinds[1:]:
        tracked = min(times[kind])
        extra = tracked - plain
        label = "in-training stats only      " if kind == stats_kind else f"tracking, options at {kind[1]:<4}   "
        print(f"SFT with {label}      {tracked:7.1f} s: extra {extra:5.1f} s = {100 * extra / plain:5.1f}%")
        for name, secs in spent[kind].items():
            print(f"    {name:<36} {secs:7.2f} s  ({100 * secs / plain:5.1f}% of plain SFT)")
    print(f"option scoring on the base model: unshared {unshared:.2f} s, on the sample's own cache {shared:.2f} s "
          f"(largest score difference {diff:.1e})")
    every_kind = next((k for k in kinds[2:] if k[1] == "all"), kinds[-1])
    what = "options" if every_kind[1] == "all" else "options at ends"
    print(f"in-training stats overhead: {pct[stats_kind]:+.0f}%")
    print(f"evaluation tracking overhead (every {every}, {what}): {pct[every_kind]:+.0f}%")
    print(f"option scoring with shared prompt: {unshared / shared:.2f}× faster than unshared")

if __name__ == "__main__":
    main()
