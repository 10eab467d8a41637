"""Benchmark of the real track (SmolLM2-135M-Instruct on the FAQ set), offline, on CPU.

Three measurements, printed with the settings they were made with:

1. **Load time**: the first load of the packaged model (GGUF -> plain safetensors
   conversion, into a fresh temporary cache) and the cached reload (median of repeats).
2. **SFT tokens per second**, LoRA (r=8, all linear layers, as ``run_sft``) and full
   fine-tuning, on the same samples, batch and length: forward + backward + AdamW step,
   after one warm-up step; tokens = non-padding tokens fed to the model.
3. **Teacher-forced vs generate**: deciding "greedy decoding reproduces the answer" from one
   teacher-forced pass (what the tracker does) against greedy generation of the answer's
   length (+8 tokens, as ``greedy_outputs``). Half of the samples take the real gold answer,
   half the base model's own greedy answer as target (so both verdicts occur); the two
   verdicts must agree on every sample, and their time ratio is printed.

    .venv/bin/python benchmarks/bench_real_track.py [--threads 1] [--samples 16] [--batch 4] [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_real_track.json`` (or
PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]

NAME = "smollm2-135m-instruct"


def _load_times(repeats: int) -> tuple[float, float, Path]:
    from ilpnb.models.registry import load_model_and_tokenizer

    tmp = Path(tempfile.mkdtemp(prefix="ilpnb-bench-real-"))
    start = time.perf_counter()
    model, _ = load_model_and_tokenizer(NAME, cache_dir=tmp)
    first = time.perf_counter() - start
    del model
    reloads = []
    for _ in range(repeats):
        start = time.perf_counter()
        model, _ = load_model_and_tokenizer(NAME, cache_dir=tmp)
        reloads.append(time.perf_counter() - start)
        del model
    return first, statistics.median(reloads), tmp


def _batches(tok: Any, records: list[Any], batch: int, max_length: int) -> list[dict[str, Any]]:
    from ilpnb.train.format import encode_pair
    from ilpnb.train.trainer import collate

    items = [encode_pair(tok, r.prompt, r.response, max_length) for r in records]
    feats = [{"input_ids": e.input_ids, "labels": e.labels, "idx": i} for i, e in enumerate(items)]
    return [collate(feats[i: i + batch], tok.pad_token_id) for i in range(0, len(feats), batch)]


def _train_speed(cache: Path, records: list[Any], batch: int, max_length: int, lora: bool,
                 steps: int) -> dict[str, float]:
    import torch

    from ilpnb.models.registry import load_model_and_tokenizer

    model, tok = load_model_and_tokenizer(NAME, cache_dir=cache)
    if lora:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules="all-linear",
                                                 task_type="CAUSAL_LM"))
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-4 if lora else 1e-5, weight_decay=0.0)
    batches = _batches(tok, records, batch, max_length)
    tokens, elapsed, cpu = 0, 0.0, 0.0
    for k in range(steps + 1):  # step 0 warms up (allocations, optimizer state)
        b = batches[k % len(batches)]
        b = {key: v for key, v in b.items() if key in ("input_ids", "attention_mask", "labels")}
        start, start_cpu = time.perf_counter(), time.process_time()
        loss = model(**b).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if k:
            elapsed += time.perf_counter() - start
            cpu += time.process_time() - start_cpu
            tokens += int(b["attention_mask"].sum())
    return {"tokens_per_s": tokens / elapsed, "tokens_per_cpu_s": tokens / cpu, "step_s": elapsed / steps,
            "trainable": sum(p.numel() for p in params)}


def _verdicts(cache: Path, records: list[Any], batch: int, max_length: int) -> dict[str, Any]:
    import torch

    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.probe.scoring import score_continuations
    from ilpnb.train.format import Encoded, encode_pair

    model, tok = load_model_and_tokenizer(NAME, cache_dir=cache)
    pad, eos = tok.pad_token_id, tok.eos_token_id
    enc = [encode_pair(tok, r.prompt, r.response, max_length) for r in records]

    @torch.no_grad()
    def generate(items: list[Encoded], extra: int) -> list[list[int]]:
        out: list[list[int]] = []
        for s in range(0, len(items), batch):
            part = items[s: s + batch]
            width = max(len(e.prompt_ids) for e in part)
            ids = torch.full((len(part), width), pad, dtype=torch.long)
            mask = torch.zeros_like(ids)
            for row, e in enumerate(part):  # left padding, as greedy_outputs
                ids[row, width - len(e.prompt_ids):] = torch.tensor(e.prompt_ids)
                mask[row, width - len(e.prompt_ids):] = 1
            new = max(len(e.response_ids) for e in part) + extra
            gen = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new, do_sample=False,
                                 pad_token_id=pad, eos_token_id=eos)
            out.extend(gen[row, width:].tolist() for row in range(len(part)))
        return out

    half = len(enc) // 2
    own = generate(enc[half:], extra=8)  # the base model's own answers become the targets of the second half
    targets = list(enc[:half])
    for e, g in zip(enc[half:], own):
        g = g[: g.index(eos) + 1] if eos in g else [t for t in g if t != pad]
        targets.append(Encoded(e.prompt_ids, g))
    start, start_cpu = time.perf_counter(), time.process_time()
    scores = score_continuations(model, [(e.prompt_ids, e.response_ids) for e in targets], batch, pad)
    tf_s, tf_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    start, start_cpu = time.perf_counter(), time.process_time()
    gens = generate(targets, extra=8)
    gen_s, gen_cpu = time.perf_counter() - start, time.process_time() - start_cpu
    by_gen = [g[: len(e.response_ids)] == e.response_ids for e, g in zip(targets, gens)]
    by_tf = scores.exact.tolist()
    return {"tf_s": tf_s, "gen_s": gen_s, "tf_cpu": tf_cpu, "gen_cpu": gen_cpu,
            "agree": sum(a == b for a, b in zip(by_tf, by_gen)), "n": len(targets), "reproduced": sum(by_gen),
            "answer_tokens": statistics.median(len(e.response_ids) for e in targets)}


def main(argv: list[str] | None = None) -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (default 1: a shared machine)")
    parser.add_argument("--samples", type=int, default=16, help="FAQ samples used by the speed measurements")
    parser.add_argument("--batch", type=int, default=4, help="samples per step / per forward pass")
    parser.add_argument("--max-length", type=int, default=192, help="longest sequence in tokens")
    parser.add_argument("--steps", type=int, default=4, help="timed optimisation steps per mode")
    parser.add_argument("--repeats", type=int, default=3, help="cached reloads timed")
    add_json_option(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    import transformers  # noqa: F401  (imported before timing)

    from ilpnb.data.packaged import resolve_data
    from ilpnb.pipeline.realtrack import select_subset

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    records = select_subset(resolve_data("faq-en"), args.samples, seed=0)
    print(f"CPU: {torch.get_num_threads()} torch thread(s), {os.cpu_count()} cores, load average {load:.1f} at start "
          "(other processes slow wall times; the per-CPU-second figures are less affected)")
    first, cached, cache = _load_times(args.repeats)
    print(f"load   first (GGUF conversion)    {first:7.1f} s")
    print(f"load   cached reload (median {args.repeats})    {cached:7.2f} s   ratio {first / cached:.0f}x")
    speeds = {}
    for lora in (True, False):
        speeds[lora] = _train_speed(cache, records, args.batch, args.max_length, lora, args.steps)
        name = "LoRA r=8" if lora else "full FT "
        s = speeds[lora]
        print(f"SFT    {name}  {s['tokens_per_s']:7.0f} tokens/s ({s['tokens_per_cpu_s']:.0f} per CPU-second)   "
              f"{s['step_s']:6.2f} s/step   "
              f"({s['trainable'] / 1e6:.2f}M trainable; batch {args.batch}, {args.samples} samples, "
              f"max_length {args.max_length}, {args.steps} steps)")
    print(f"SFT    LoRA / full FT speed        {speeds[True]['tokens_per_s'] / speeds[False]['tokens_per_s']:7.2f}x")
    v = _verdicts(cache, records, args.batch, args.max_length)
    print(f"exact  teacher-forced {v['tf_s']:6.2f} s, generate {v['gen_s']:6.2f} s for {v['n']} samples "
          f"(median answer {v['answer_tokens']:.0f} tokens, batch {args.batch}): generate / teacher-forced "
          f"= {v['gen_s'] / v['tf_s']:.1f}x (CPU time: {v['gen_cpu'] / v['tf_cpu']:.1f}x)")
    print(f"exact  verdicts agree on {v['agree']} of {v['n']} samples ({v['reproduced']} reproduced)")
    print(f"CPU: load average {os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f} at the end")
    import shutil

    shutil.rmtree(cache, ignore_errors=True)
    m = "SmolLM2-135M"
    sft = f"batch {args.batch}, {args.max_length} tokens, {args.samples} FAQ samples"
    steps = f"{args.steps} step{'s' * (args.steps != 1)}"
    write_results(args, __file__, [
        figure("first_load_s", f"{m} first load (GGUF → safetensors)", first, "s", digits=1),
        figure("cached_reload_s", f"{m} cached reload", cached, "s", note=f"median of {args.repeats}"),
        *(figure(f"sft_{'lora' if lora else 'full'}_tokens_per_s", f"{m} SFT on CPU, "
                 f"{'LoRA r=8' if lora else 'full fine-tuning'} ({sft})", speeds[lora]["tokens_per_s"], "tokens/s",
                 digits=0, note=f"{speeds[lora]['tokens_per_cpu_s']:.0f} per CPU-second; {steps}")
          for lora in (True, False)),
        figure("generate_over_teacher_forced", f"{m} teacher-forced exact vs `generate` on FAQ answers "
               f"(median {v['answer_tokens']:.0f} tokens, batch {args.batch})", v["gen_s"] / v["tf_s"], "x", digits=1,
               note=f"`generate` slower; same verdict on {v['agree']}/{v['n']}"),
    ], seeds={"torch": [0], "FAQ subset": [0]})
    if v["agree"] != v["n"]:
        raise SystemExit("teacher-forced and generated verdicts disagree")


if __name__ == "__main__":
    main()
