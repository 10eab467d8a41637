"""Benchmark: first load (GGUF -> plain safetensors conversion) vs cached reload of a packaged model.

Runs offline. The first load goes into a fresh temporary cache so it always measures the
conversion; the reloads read the cached folder. Prints the times and their ratio.

    .venv/bin/python benchmarks/bench_registry.py [--model smollm2-135m-instruct] [--repeats 3] [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_registry.json`` (or
PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def main(argv: list[str] | None = None) -> None:
    """Time the first (converting) load and the cached reloads, and print their ratio."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m-instruct", help="registered short name")
    parser.add_argument("--repeats", type=int, default=3, help="cached reloads to time (median reported)")
    add_json_option(parser)
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import torch
    import transformers  # noqa: F401  (imported before timing: the load times exclude imports)

    from ilpnb.models.registry import load_model_and_tokenizer

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    with tempfile.TemporaryDirectory(prefix="ilpnb-bench-") as tmp:
        cache = Path(tmp)
        start = time.perf_counter()
        model, _ = load_model_and_tokenizer(args.model, cache_dir=cache)
        first = time.perf_counter() - start
        n_params = sum(p.numel() for p in model.parameters())
        del model
        reloads = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            model, _ = load_model_and_tokenizer(args.model, cache_dir=cache)
            reloads.append(time.perf_counter() - start)
            del model
        size = sum(f.stat().st_size for f in (cache / args.model).iterdir())
    cached = statistics.median(reloads)
    print(f"model               {args.model} ({n_params / 1e6:.1f}M parameters, cached folder {size / 2**20:.0f} MiB)")
    print(f"first load (convert) {first:8.2f} s")
    print(f"cached reload        {cached:8.2f} s  (median of {args.repeats}: "
          + ", ".join(f"{t:.2f}" for t in reloads) + ")")
    print(f"ratio first/cached   {first / cached:8.1f}x")
    what = f"{args.model} ({n_params / 1e6:.0f}M parameters)"
    write_results(args, __file__, [
        figure("first_load_s", f"{what}: first load (GGUF → safetensors)", first, "s", digits=1),
        figure("cached_reload_s", f"{what}: cached reload", cached, "s",
               note=f"median of {args.repeats}: " + ", ".join(f"{t:.2f}" for t in reloads)),
        figure("first_over_cached", f"{what}: first load / cached reload", first / cached, "x", digits=0),
    ], seeds={})


if __name__ == "__main__":
    main()
