"""``ilpnb world``, ``pretrain``, ``probe`` and ``run``: the world, its base model, the probe
report and the numbered notebooks."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ilpnb.cli.registry import arguments, command, preset_arg

__all__: list[str] = []


@command("world", "generate a controlled world folder from a JSON config")
@arguments(lambda p: (p.add_argument("--config", help="world config JSON (default: the preset's world)"),
                      p.add_argument("--out", required=True, help="world folder to write"),
                      preset_arg(p)))
def _world(args: argparse.Namespace) -> int:
    from ilpnb.config import get_preset
    from ilpnb.data.world import generate_world
    from ilpnb.data.world_config import load_world_config

    cfg = load_world_config(args.config) if args.config else get_preset(args.preset).world
    out = generate_world(cfg, args.out)
    counts = json.loads((out / "world.json").read_text())["counts"]
    print(f"world written to {out}: " + ", ".join(f"{k}={v}" for k, v in counts.items()))
    return 0


@command("realworld", "plant every cause into real facts a real LLM is measured to know (a scorable real world)")
@arguments(lambda p: (p.add_argument("--model", default="smollm2-135m-instruct",
                                     help="the real model whose knowledge is measured (default: smollm2-135m-instruct)"),
                      p.add_argument("--out", required=True, help="world folder to create (never overwritten)"),
                      preset_arg(p),
                      p.add_argument("--seed", type=int, help="seed of the planting "
                                                              "(default: real.world.seed)"),
                      p.add_argument("--no-progress", action="store_true", help="no progress bars")))
def _realworld(args: argparse.Namespace) -> int:
    from ilpnb.pipeline.realworld import build_realworld

    out = build_realworld(args.out, model=args.model, preset=args.preset, seed=args.seed,
                          progress=not args.no_progress)
    print(f"world written to {out}: train with `ilpnb sft --model {args.model} --data {out / 'sft.jsonl'} "
          f"--out RUN`, then `ilpnb diagnose RUN` and `ilpnb score RUN --truth {out / 'truth.jsonl'}`")
    return 0


@command("pretrain", "pretrain (or fetch from cache) the tiny base model of a world")
@arguments(lambda p: (p.add_argument("--world", required=True, help="world folder"), preset_arg(p)))
def _pretrain(args: argparse.Namespace) -> int:
    from ilpnb.config import get_preset
    from ilpnb.models.pretrain import pretrain_base_model, pretrain_info

    p = get_preset(args.preset)
    path = pretrain_base_model(Path(args.world) / "pretrain.txt", p.model, p.pretrain)
    info = pretrain_info(path)
    print(f"base model: {path} ({info['parameters']:,} parameters, pretrained in {info['seconds']:.0f} s)")
    return 0


@command("probe", "knowledge-probe report of a world's base model (stated vs unstated facts)")
@arguments(lambda p: (p.add_argument("--world", required=True, help="world folder"), preset_arg(p)))
def _probe(args: argparse.Namespace) -> int:
    from ilpnb.config import get_preset
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.pipeline.workbench import load_base_model
    from ilpnb.probe.knowledge import probe_report, read_probes, run_probes, summarize_probes

    p = get_preset(args.preset)
    model, tok = load_base_model(pretrain_base_model(Path(args.world) / "pretrain.txt", p.model, p.pretrain))
    report = probe_report(run_probes(model, tok, read_probes(Path(args.world) / "probes.jsonl")), args.world)
    print(summarize_probes(report).round(3).to_string())
    return 0


@command("run", "execute the numbered notebooks into a new run folder")
@arguments(lambda p: (preset_arg(p),
                      p.add_argument("--only", help="comma-separated notebook numbers, e.g. 00,01"),
                      p.add_argument("--out", help="run folder (default: runs/<preset>-<time>)"),
                      p.add_argument("--resume", action="store_true", help="continue an interrupted run"),
                      p.add_argument("--keep-going", action="store_true",
                                     help="run the later notebooks after one fails; report every failure at the end"),
                      p.add_argument("--jobs", type=int, default=1,
                                     help="notebooks run at once when they do not build on each other (their "
                                          "ilpnb.needs metadata), each with cores/jobs torch threads; 0: one per "
                                          "core (default 1)")))
def _run(args: argparse.Namespace) -> int:
    from ilpnb.pipeline.notebook_runner import NotebookError, NotebooksFailedError, run_notebooks

    only = [s.strip() for s in args.only.split(",")] if args.only else None
    try:
        path = run_notebooks(preset=args.preset, out=args.out, only=only, resume=args.resume,
                             keep_going=args.keep_going, jobs=args.jobs)
    except NotebookError as err:  # the message names each failed notebook and its executed copy
        run = err.run if isinstance(err, NotebooksFailedError) else err.executed.parent.parent
        print(f"ilpnb run: {err}\nResults: {run / 'index.html'}", file=sys.stderr)
        return 1
    print(f"Results: {Path(path) / 'index.html'}")
    return 0
