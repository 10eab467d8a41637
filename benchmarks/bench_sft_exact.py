"""Benchmark: greedy exact reproduction from ONE teacher-forced pass vs `model.generate`.

ilpnb decides "the model reproduces this SFT sample exactly under greedy decoding" from one
teacher-forced forward pass per batch (every argmax equals the target token;
:func:`ilpnb.probe.scoring.score_continuations`, used by :class:`ilpnb.train.tracking.Tracker`)
instead of generating. This script checks, sample by sample, that the verdicts equal those of
``model.generate`` greedy decoding (token by token: the generated ids start with the response
ids, end-of-sequence included), and prints the speed ratio:

1. on the world's SFT set (the preset's world and base model; the model fine-tuned briefly so
   that both verdicts occur), and
2. on long answers: records whose responses are composite sentences of 50+ tokens about
   several people of the world (the model fine-tuned on them first, so that generation runs
   the full length instead of stopping early on a wrong answer).

Both methods use the same model, samples and batch size (several batch sizes are timed: the
ratio depends on it); times are the best of ``--repeats`` runs. Generation gets exactly the
response length as ``max_new_tokens`` (the least it needs) and uses its KV cache.

On a CPU, KV-cached decoding does about the same arithmetic per token as one teacher-forced
pass; what one pass saves is the sequential token-by-token steps (each a full trip through
the model and ``generate``'s per-step work), so the ratio grows with the answer length and
shrinks as larger batches amortise the per-step cost. On a GPU the steps are latency-bound
and the ratio is larger still.

    .venv/bin/python benchmarks/bench_sft_exact.py [--preset default] [--threads 1] [--batch-sizes 1,8,32]
                                                   [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_sft_exact.json`` (or
PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def _timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """The result and the best wall time of ``repeats`` calls (the least disturbed by other
    processes on a shared machine, as ``timeit`` advises)."""
    times, out = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - start)
    return out, min(times)


def generate_verdicts(model: Any, tok: Any, encoded: Sequence[Any], batch_size: int) -> tuple[list[bool], int]:
    """Greedy ``model.generate`` verdicts (generated ids start with the response ids) and the
    number of tokens generated."""
    import torch

    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    verdicts = [False] * len(encoded)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i].prompt_ids))
    generated = 0
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            width = max(len(encoded[i].prompt_ids) for i in idx)
            ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, i in enumerate(idx):  # left padding, as generation needs
                p = encoded[i].prompt_ids
                ids[row, width - len(p):] = torch.tensor(p)
                mask[row, width - len(p):] = 1
            new = max(len(encoded[i].response_ids) for i in idx)
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                                 pad_token_id=pad, eos_token_id=tok.eos_token_id)
            generated += (out.shape[1] - width) * len(idx)
            for row, i in enumerate(idx):
                resp = encoded[i].response_ids
                verdicts[i] = out[row, width : width + len(resp)].tolist() == list(resp)
    return verdicts, generated


def compare(label: str, model: Any, tok: Any, records: Sequence[Any], batch_sizes: Sequence[int], repeats: int,
            max_length: int) -> list[dict[str, Any]]:
    """Time both methods on ``records`` at each batch size and check that their verdicts agree
    on every sample."""
    import numpy as np

    from ilpnb.probe.scoring import score_continuations
    from ilpnb.train.format import encode_pair
    from ilpnb.train.tracking import Tracker

    model.eval()
    encoded = [encode_pair(tok, r.prompt, r.response, max_length) for r in records]
    assert not any(e.truncated for e in encoded), "raise --max-length: some samples were truncated"
    pairs = [(e.prompt_ids, e.response_ids) for e in encoded]
    pad = tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id
    lengths = np.array([len(e.response_ids) for e in encoded])
    prompts = np.array([len(e.prompt_ids) for e in encoded])
    print(f"\n== {label}: {len(records)} samples; response {lengths.mean():.1f} tokens on average "
          f"(min {lengths.min()}, max {lengths.max()}), prompt {prompts.mean():.1f}")
    print(f"   {'batch':>5} {'teacher-forced':>15} {'Tracker.measure':>16} {'generate':>10} {'gen tokens':>11} "
          f"{'ratio':>7} {'ratio vs Tracker':>17}  verdicts")
    rows = []
    for bs in batch_sizes:
        scores, t_forced = _timed(lambda: score_continuations(model, pairs, bs, pad), repeats)
        tracker = Tracker(tok, records, max_length, batch_size=bs)
        _, t_tracker = _timed(lambda: tracker.measure(model, {}, options=False), repeats)
        (gen, n_generated), t_generate = _timed(lambda: generate_verdicts(model, tok, encoded, bs), repeats)
        forced = scores.exact.tolist()
        disagree = [r.id for r, a, b in zip(records, forced, gen) if a != b]
        row = {
            "set": label, "batch_size": bs, "samples": len(records), "response_tokens_mean": float(lengths.mean()),
            "response_tokens_min": int(lengths.min()), "exact_share": float(np.mean(forced)),
            "disagreements": len(disagree), "t_teacher_forced_s": t_forced, "t_tracker_s": t_tracker,
            "t_generate_s": t_generate, "generated_tokens": n_generated,
            "speedup": t_generate / t_forced, "speedup_tracker": t_generate / t_tracker,
        }
        rows.append(row)
        verdict = (f"agree {len(records) - len(disagree)}/{len(records)}, exact {np.mean(forced):.1%}"
                   + (f"; DISAGREE on {disagree[:10]}" if disagree else ""))
        print(f"   {bs:>5} {t_forced:>13.3f} s {t_tracker:>14.3f} s {t_generate:>8.3f} s {n_generated:>11} "
              f"{row['speedup']:>6.1f}x {row['speedup_tracker']:>16.1f}x  {verdict}")
    return rows


def long_records(world: Path, tok: Any, n: int, min_tokens: int, seed: int = 0) -> list[Any]:
    """Records whose responses are composite sentences about three people (>= ``min_tokens``)."""
    import random

    from ilpnb.data.records import SFTRecord

    info = json.loads((world / "world.json").read_text())
    people: dict[str, dict[str, str]] = {}
    for f in info["facts"]:
        people.setdefault(f["subject"], {})[f["relation"]] = f["object"]
    people = {p: f for p, f in people.items() if {"lives_in", "works_as", "likes"} <= set(f)}
    cities = info.get("cities", {})
    rng = random.Random(seed)
    names = sorted(people)

    def sentence(p: str) -> str:
        f = people[p]
        where = f"{f['lives_in']}, a city of {cities[f['lives_in']]}" if f["lives_in"] in cities else f["lives_in"]
        return f"{p} lives in {where}; {p} works as a {f['works_as']} and likes the colour {f['likes']}."

    out: list[Any] = []
    for k in range(50 * n):
        if len(out) == n:
            break
        group = rng.sample(names, 3)
        response = " ".join(sentence(p) for p in group)
        if len(tok(response, add_special_tokens=False)["input_ids"]) < min_tokens:
            continue
        out.append(SFTRecord(id=f"long{k:04d}", prompt=f"Tell me about {', '.join(group[:2])} and {group[2]}.",
                             response=response))
    if len(out) < n:
        raise RuntimeError(f"only {len(out)} composite answers of {min_tokens}+ tokens could be built")
    return out


def _fine_tune(model_dir: Path, records: list[Any] | Path, out: Path, epochs: int, lr: float,
               max_length: int, preset: str) -> Path:
    """Plain SFT (no tracking) and the folder of its final checkpoint."""
    from ilpnb.data.records import write_records
    from ilpnb.train.sft import run_sft

    data = records
    if not isinstance(records, Path):
        data = out.with_suffix(".jsonl")
        write_records(records, data)
    run = run_sft(out, model=str(model_dir), data=str(data), preset=preset, progress=False, track="none",
                  checkpoints="none", stages="mixed", max_length=max_length, sft={"epochs": epochs, "lr": lr})
    return sorted((run / "checkpoints").glob("stage-*-end"))[-1]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="world and base model preset (default: default)")
    parser.add_argument("--batch-sizes", default="1,8,32", help="sequences per forward pass / generate call, "
                                                                  "comma-separated (default 1,8,32)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    parser.add_argument("--repeats", type=int, default=3, help="timed repeats (the best is kept)")
    parser.add_argument("--long-samples", type=int, default=64, help="long-answer records")
    parser.add_argument("--long-min-tokens", type=int, default=50, help="shortest long answer, in tokens")
    parser.add_argument("--sft-epochs", type=int, default=3, help="epochs of the brief SFT on the world set")
    parser.add_argument("--long-epochs", type=int, default=30, help="epochs of SFT on the long answers")
    add_json_option(parser)
    args = parser.parse_args(argv)
    sizes = [int(b) for b in args.batch_sizes.split(",")]

    import torch

    torch.set_num_threads(args.threads)
    from ilpnb.config import get_preset
    from ilpnb.data.records import read_records
    from ilpnb.data.world import generate_world
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.models.registry import load_model_and_tokenizer

    p = get_preset(args.preset)
    tmp = Path(tempfile.mkdtemp(prefix="ilpnb-bench-exact-"))
    world = generate_world(p.world, tmp / "world")
    start = time.perf_counter()
    base = pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=False)
    took = time.perf_counter() - start
    print(f"preset {args.preset}: base model {base.name} ({'pretrained now in ' + format(took, '.0f') + ' s' if took > 5 else 'cached'}), "
          f"torch threads {torch.get_num_threads()}, batch sizes {sizes}, cache {os.environ.get('ILPNB_CACHE', '~/.cache/ilpnb')}")
    rows = []
    records = read_records(world / "sft.jsonl")
    model, tok = load_model_and_tokenizer(str(base))
    rows += compare("world SFT set, base model", model, tok, records, sizes, args.repeats, p.model.max_length)
    tuned = _fine_tune(base, world / "sft.jsonl", tmp / "sft-world", args.sft_epochs, p.sft.lr,
                       p.model.max_length, args.preset)
    model, tok = load_model_and_tokenizer(str(tuned))
    rows += compare(f"world SFT set, after {args.sft_epochs} SFT epochs", model, tok, records, sizes, args.repeats,
                    p.model.max_length)

    _, tok = load_model_and_tokenizer(str(base))
    longs = long_records(world, tok, args.long_samples, args.long_min_tokens)
    limit = 2 * p.model.max_length  # the tiny model's position limit
    tuned = _fine_tune(base, longs, tmp / "sft-long", args.long_epochs, 3e-3, limit, args.preset)
    model, tok = load_model_and_tokenizer(str(tuned))
    rows += compare(f"long answers ({args.long_min_tokens}+ tokens), after {args.long_epochs} SFT epochs",
                    model, tok, longs, sizes, args.repeats, limit)

    print("\nsummary (speed ratio = model.generate time / teacher-forced time; verdicts must agree on every sample)")
    for r in rows:
        print(f"  {r['set']:<55} batch {r['batch_size']:>3} {r['speedup']:7.1f}x   "
              f"agree {r['samples'] - r['disagreements']}/{r['samples']}")
    (tmp / "bench_sft_exact.json").write_text(json.dumps(rows, indent=1))
    print(f"(figures also in {tmp / 'bench_sft_exact.json'})")
    write_results(args, __file__, headline_figures(rows), preset=args.preset,
                  seeds={"world": [p.world.seed], "pretrain": [p.pretrain.seed], "sft": [p.sft.seed],
                         "long answers": [0]}, extra={"rows": rows})


def headline_figures(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per set: the generate / teacher-forced time ratio at the smallest batch (the others in the
    note); then the verdicts that agree over every set and batch size."""
    figures = []
    for k, label in enumerate(dict.fromkeys(r["set"] for r in rows)):
        sub = sorted((r for r in rows if r["set"] == label), key=lambda r: r["batch_size"])
        tokens = f"{sub[0]['response_tokens_mean']:.0f}-token answers on average"
        figures.append(figure(f"speedup_set{k}", f"`generate` time / teacher-forced exact time: {label} ({tokens}), "
                              f"batch {sub[0]['batch_size']}", sub[0]["speedup"], "x", digits=1,
                              note=", ".join(f"{r['speedup']:.1f}× at batch {r['batch_size']}" for r in sub[1:])))
    agree = sum(r["samples"] - r["disagreements"] for r in rows)
    figures.append(figure("verdicts_agree", "teacher-forced exact vs `generate`: samples with the same verdict",
                          agree, "samples",
                          digits=0, note=f"of {sum(r['samples'] for r in rows)} (every set × batch size)"))
    return figures


if __name__ == "__main__":
    main()
