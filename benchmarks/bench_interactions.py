"""Benchmark the exact interactions of ilpnb.interactions on a tiny-but-not-trivial LM.

Prints ratios, asserts nothing about time. Three measurements:

(a) end-to-end ``compute_interactions`` (n = 10 players, AND + OR transforms) vs the bare
    2^n masked forward passes alone (pre-built ``inputs_embeds`` batches, same batch size);
    the AND-OR fit is timed separately;
(b) shapiq's ``ExactComputer("Moebius")`` driving the same model as its game (the game calls
    our value function on shapiq's coalitions) vs ours: wall-time ratio and max |difference|;
(c) peak memory (RSS growth, one fresh subprocess per case) of ``v`` over all subsets for
    n = 8, 10, 12 at a fixed batch size, and all 2^n at once for contrast;
(d) the shared-prefix key/value cache: ``ValueFunction.all_subsets`` with ``prefix_cache=True``
    vs ``False`` on SmolLM2-135M-Instruct chat prompts (its chat template applied, players =
    the 8, 9 and 10 words of the user message), same process, interleaved repeats; the last
    line printed is ``prefix cache: N.NN× faster than the bare 2^n passes`` (total best bare
    time / total best cached time over the prompts). The packaged model is loaded offline; if
    it cannot be, the tiny Llama above is used and the line says so.

Run: ``.venv/bin/python benchmarks/bench_interactions.py [--threads 1] [--repeats 3] [--skip a b c d]
[--json [PATH]]`` (``HF_HUB_OFFLINE=1`` for (d); (d) takes minutes on 2 CPU cores).
``--json`` also writes the headline figures to ``benchmarks/results/bench_interactions.json``
(or PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import numpy as np
import torch

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["bench_end_to_end", "bench_memory", "bench_prefix_cache", "bench_shapiq", "build", "main",
           "prefix_cache_model"]

N_WORDS = 400
CHAT_PROMPTS = ("What is the capital city of France today?",  # 8, 9 and 10 words
                "Which river flows through the old city of Paris?",
                "Who built the famous iron tower in Paris long ago?")
PREFIX_MODEL = "smollm2-135m-instruct"
PROMPT_WORDS = ("the old river that flows through the quiet city near the large "
                "northern hills meets").split()


def build(seed: int = 0):
    """A word-level tokenizer with a chat template and a random Llama (hidden 128, 4 layers)."""
    from tokenizers import Tokenizer, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<unk>", "<pad>", "<bos>", "<eos>", "<|user|>", "<|assistant|>", "<|end|>"]
    words = sorted(set(PROMPT_WORDS)) + [f"w{i}" for i in range(N_WORDS)]
    vocab = {w: i for i, w in enumerate(specials + words)}
    tok = Tokenizer(WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="<bos> $A",
                                                       special_tokens=[("<bos>", vocab["<bos>"])])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>",
                                   unk_token="<unk>", pad_token="<pad>")
    fast.chat_template = ("{{ bos_token }}{% for m in messages %}<|user|> {{ m['content'] }} "
                          "<|end|> {% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}")
    torch.manual_seed(seed)
    cfg = LlamaConfig(hidden_size=128, num_hidden_layers=4, num_attention_heads=4,
                      num_key_value_heads=4, intermediate_size=512, vocab_size=len(vocab),
                      max_position_embeddings=256, initializer_range=0.1)
    return LlamaForCausalLM(cfg).eval(), fast


def prompt_of(n: int) -> str:
    return " ".join(PROMPT_WORDS[:n])


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def bench_end_to_end(model, tok, n: int, batch: int, repeats: int) -> dict:
    from ilpnb.interactions import (
        ValueFunction,
        compute_interactions,
        encode_prompt,
        fit_and_or,
        keep_matrix,
        mask_embeddings,
        word_players,
    )

    prompt = prompt_of(n)
    enc = encode_prompt(tok, prompt)
    vf = ValueFunction(model, enc, word_players(enc), batch_size=batch)
    batches = [mask_embeddings(vf.embeds, vf.owner, torch.from_numpy(keep_matrix(n, a, min(a + batch, 1 << n))),
                               vf.baseline) for a in range(0, 1 << n, batch)]

    def bare():
        with torch.inference_mode():
            for emb in batches:
                model(inputs_embeds=emb, use_cache=False, logits_to_keep=1)

    def ours():
        return compute_interactions(model, tok, prompt, and_or=False, batch_size=batch)

    bare(), ours()  # warm up
    t_bare, t_ours, res = [], [], None
    for _ in range(repeats):  # interleaved, so machine load hits both alike
        t_bare.append(best(bare, 1)[0])
        t, res = best(ours, 1)
        t_ours.append(t)
    ratios = [o / b for o, b in zip(t_ours, t_bare)]
    t_fit, fit = best(lambda: fit_and_or(res.values), 1)
    return {"n": n, "seq_len": enc.seq_len, "batch": batch, "bare_s": min(t_bare), "ours_s": min(t_ours),
            "ratio": min(t_ours) / min(t_bare), "ratio_median": statistics.median(ratios),
            "transforms_s": res.meta["timing"]["transforms_s"],
            "and_or_fit_s": t_fit, "and_or_loss": [fit.initial_loss, fit.final_loss]}


def bench_shapiq(model, tok, n: int, batch: int, repeats: int) -> dict:
    import shapiq

    from ilpnb.interactions import (
        ValueFunction,
        and_interactions,
        compute_interactions,
        encode_prompt,
        subset_tuple,
        word_players,
    )

    prompt = prompt_of(n)
    enc = encode_prompt(tok, prompt)
    vf = ValueFunction(model, enc, word_players(enc), batch_size=batch)

    def theirs():
        exact = shapiq.ExactComputer(lambda coalitions: vf(coalitions), n_players=n)
        return exact("Moebius")

    t_ours, res = best(lambda: compute_interactions(model, tok, prompt, and_or=False, batch_size=batch), repeats)
    t_theirs, iv = best(theirs, 1)
    diff = max(abs(res.and_values[m] - iv.values[iv.interaction_lookup[subset_tuple(m)]])
               for m in range(1 << n))
    # the transforms alone, on the already computed game
    weights = 1 << np.arange(n)
    game = lambda coalitions: res.values[np.asarray(coalitions, dtype=np.int64) @ weights]  # noqa: E731
    t_mob_theirs, _ = best(lambda: shapiq.ExactComputer(game, n_players=n)("Moebius"), 1)
    t_mob_ours, _ = best(lambda: and_interactions(res.values), repeats)
    return {"n": n, "ours_s": t_ours, "shapiq_s": t_theirs, "ratio": t_theirs / t_ours,
            "max_abs_diff": float(diff), "transform_shapiq_s": t_mob_theirs,
            "transform_ours_s": t_mob_ours}


def prefix_cache_model(name: str = PREFIX_MODEL) -> tuple[object, object, str, list[str]]:
    """The model for (d): the packaged SmolLM2 (offline), else the tiny Llama of :func:`build`.

    Returns:
        ``(model, tokenizer, label, prompts)``; the prompts have 8, 9 and 10 words.
    """
    from ilpnb.models.registry import ModelNotFoundError, load_model_and_tokenizer
    from ilpnb.quiet import quiet

    try:
        with quiet():
            model, tok = load_model_and_tokenizer(name)
        return model.eval(), tok, name, list(CHAT_PROMPTS)
    except (ModelNotFoundError, ImportError) as err:
        print(f"(d) {name} cannot be loaded offline ({err}); measuring on the tiny Llama instead")
        model, tok = build()
        return model, tok, "tiny Llama (hidden 128, 4 layers)", [prompt_of(n) for n in (8, 9, 10)]


def bench_prefix_cache(model, tok, prompts: list[str], batch: int, repeats: int) -> list[dict]:
    """``all_subsets`` with and without the prefix cache, per prompt (players = all its words).

    The two value functions share model, players, baseline, target and batch size. Each repeat
    runs ``all_subsets``' own loop (its ``keep_matrix`` slices of ``batch`` rows, each through
    ``vf(rows)``, i.e. ``evaluate`` under inference mode) for both, alternating cached and bare
    batch by batch (cached first on even batches), so that load from other processes on a
    shared machine hits both alike. One batch of each is run first to warm up. Per mode the
    best repeat's total is kept; the median of the per-batch ratios is reported beside it.
    """
    from ilpnb.interactions import ValueFunction, encode_prompt, keep_matrix, word_players

    rows = []
    for prompt in prompts:
        enc = encode_prompt(tok, prompt)
        players = word_players(enc)
        n, total = len(players), 1 << len(players)
        fns = {mode: ValueFunction(model, enc, players, batch_size=batch, prefix_cache=mode == "cached")
               for mode in ("cached", "bare")}
        for vf in fns.values():
            vf(keep_matrix(n, 0, min(batch, total)))  # warm up
        totals: dict[str, list[float]] = {"cached": [], "bare": []}
        values = {mode: np.empty(total) for mode in fns}
        per_batch: list[float] = []
        for _ in range(repeats):
            spent = {"cached": 0.0, "bare": 0.0}
            for i, a in enumerate(range(0, total, batch)):
                keep = keep_matrix(n, a, min(a + batch, total))
                took = {}
                for mode in (("cached", "bare") if i % 2 == 0 else ("bare", "cached")):
                    t = time.perf_counter()
                    values[mode][a:a + keep.shape[0]] = fns[mode](keep)
                    took[mode] = time.perf_counter() - t
                    spent[mode] += took[mode]
                per_batch.append(took["bare"] / took["cached"])
            for mode in spent:
                totals[mode].append(spent[mode])
        rows.append({"n": n, "seq_len": enc.seq_len, "prefix_len": fns["cached"].prefix_len, "batch": batch,
                     "cached_s": min(totals["cached"]), "bare_s": min(totals["bare"]),
                     "batch_ratio_median": statistics.median(per_batch),
                     "max_abs_diff": float(np.abs(values["cached"] - values["bare"]).max()),
                     "max_abs_v": float(np.abs(values["bare"]).max())})
    return rows


def _peak_rss() -> tuple[int, callable]:
    """Reset the process's peak-RSS counter (Linux clear_refs) and return a reader of it."""
    import re

    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")

        def read() -> int:
            with open("/proc/self/status") as fh:
                return int(re.search(r"VmHWM:\s+(\d+)", fh.read()).group(1)) * 1024
        return 0, read
    except OSError:  # no clear_refs: fall back to the lifetime peak
        return 0, lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def memory_child(n: int, batch: int) -> dict:
    """Run in a fresh process: peak RSS growth while computing v on all 2^n subsets."""
    import psutil

    from ilpnb.interactions import ValueFunction, encode_prompt, keep_matrix, word_players

    model, tok = build()
    enc = encode_prompt(tok, prompt_of(n))
    vf = ValueFunction(model, enc, word_players(enc), batch_size=batch)
    vf(keep_matrix(n, 0, 1))  # warm up kernels with one row
    _, peak = _peak_rss()
    rss0 = psutil.Process().memory_info().rss
    t = time.perf_counter()
    vf.all_subsets()
    elapsed = time.perf_counter() - t
    return {"n": n, "batch": batch, "peak_growth_mib": max(0, peak() - rss0) / 2**20, "seconds": elapsed}


def bench_memory(threads: int, batch: int) -> list[dict]:
    rows = []
    for n in (8, 10, 12):
        for b in (batch, 1 << n):
            code = (f"import torch, json, sys; torch.set_num_threads({threads}); sys.path.insert(0, 'benchmarks');"
                    f"import bench_interactions as b; print(json.dumps(b.memory_child({n}, {b})))")
            out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    ap.add_argument("--repeats", type=int, default=5, help="repeats; the best time is kept")
    ap.add_argument("--batch", type=int, default=64, help="masked sequences per forward pass")
    ap.add_argument("--skip", nargs="*", default=[], choices=["a", "b", "c", "d"])
    ap.add_argument("--prefix-repeats", type=int, default=2, help="repeats of (d) (each runs all 2^n, cached and bare)")
    ap.add_argument("--prefix-model", default=PREFIX_MODEL, help="model of (d): a registered name or a path")
    add_json_option(ap)
    args = ap.parse_args()
    figures = []
    torch.set_num_threads(args.threads)
    model, tok = build()
    print(f"model: Llama hidden 128, 4 layers, vocab {len(tok)}; threads {args.threads}; batch {args.batch}")
    if "a" not in args.skip:
        r = bench_end_to_end(model, tok, 10, args.batch, args.repeats)
        print(f"(a) n=10, {r['seq_len']} tokens: end-to-end {r['ours_s']:.3f}s vs bare 2^n forward passes "
              f"{r['bare_s']:.3f}s -> ratio {r['ratio']:.3f} (best of {args.repeats}; median of "
              f"paired ratios {r['ratio_median']:.3f}; transforms {1e3 * r['transforms_s']:.2f} ms); "
              f"AND-OR fit (default config) {r['and_or_fit_s']:.2f}s, loss {r['and_or_loss'][0]:.2f} -> "
              f"{r['and_or_loss'][1]:.2f}")
        figures.append(figure("end_to_end_over_bare", f"exact interactions, n = {r['n']}: end to end / the bare "
                              f"2^n masked forward passes (batch {args.batch})", r["ratio"], "x",
                              note=f"best of {args.repeats}; median of paired ratios {r['ratio_median']:.2f}"))
    if "b" not in args.skip:
        for n in (8, 10):
            r = bench_shapiq(model, tok, n, args.batch, args.repeats)
            print(f"(b) n={n}: shapiq ExactComputer('Moebius') {r['shapiq_s']:.3f}s vs ours {r['ours_s']:.3f}s "
                  f"-> shapiq/ours {r['ratio']:.2f}x; max |diff| {r['max_abs_diff']:.2e}; Moebius transform alone "
                  f"{1e3 * r['transform_shapiq_s']:.1f} ms vs {1e3 * r['transform_ours_s']:.2f} ms "
                  f"({r['transform_shapiq_s'] / r['transform_ours_s']:.0f}x)")
            figures.append(figure(f"shapiq_over_ours_n{n}", f"exact interactions, n = {n}: shapiq's "
                                  "`ExactComputer` time / ilpnb's, same model", r["ratio"], "x",
                                  note=f"max |Möbius difference| {r['max_abs_diff']:.1e}"))
    if "c" not in args.skip:
        for r in bench_memory(args.threads, args.batch):
            print(f"(c) n={r['n']:2d} batch={r['batch']:5d}: peak RSS growth {r['peak_growth_mib']:8.1f} MiB "
                  f"({r['seconds']:.2f}s)")
            if r["n"] == 12:
                figures.append(figure(f"peak_rss_n12_batch{r['batch']}", f"exact interactions, n = 12: peak RSS "
                                      f"growth of v over all subsets, batch {r['batch']}", r["peak_growth_mib"],
                                      "MiB", digits=0, note=f"{r['seconds']:.2f} s"))
    if "d" not in args.skip:
        d_model, d_tok, label, prompts = prefix_cache_model(args.prefix_model)
        rows = bench_prefix_cache(d_model, d_tok, prompts, args.batch, args.prefix_repeats)
        for r in rows:
            print(f"(d) {label}, n={r['n']}, {r['seq_len']} tokens ({r['prefix_len']} shared prefix): all_subsets "
                  f"cached {r['cached_s']:.2f}s vs bare {r['bare_s']:.2f}s -> {r['bare_s'] / r['cached_s']:.2f}x "
                  f"(median per-batch ratio {r['batch_ratio_median']:.2f}); max |diff| "
                  f"{r['max_abs_diff']:.1e} (max |v| {r['max_abs_v']:.1f})")
        speedup = sum(r["bare_s"] for r in rows) / sum(r["cached_s"] for r in rows)
        ns = "-".join(str(r["n"]) for r in (rows[0], rows[-1]))
        figures.append(figure("prefix_cache_speedup", f"exact interactions on {label} chat prompts, n = {ns}: bare "
                              "2^n masked passes / with the shared-prefix cache", speedup, "x",
                              note=f"best of {args.prefix_repeats}, interleaved batch by batch; batch {args.batch}"))
        print(f"prefix cache: {speedup:.2f}× faster than the bare 2^n passes")
    sys.stdout.flush()
    write_results(args, __file__, figures, seeds={"model init": [0]})


if __name__ == "__main__":
    main()
