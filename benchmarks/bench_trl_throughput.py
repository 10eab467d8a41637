"""Benchmark: training throughput (tokens/second) of ilpnb's SFT against TRL's `SFTTrainer`.

Same model (the preset's world base model), same data (the world's SFT set, all stages
together), same batch size, epochs, learning rate and schedule, fp32, no gradient
checkpointing, a checkpoint each epoch in both (ilpnb always keeps one to resume from). TRL
gets a conversational prompt-completion dataset (its chat template renders it) with
completion-only loss; the script checks that both tokenise every sample to the same ids and
the same loss mask, so both train on the same tokens. ilpnb's SFT runs without per-sample
tracking (``track="none"``) for the training throughput, and with it for the end-to-end figure.

Two figures per trainer: the training loop alone (``Trainer.train``) and end to end (building
the trainer, preparing the data, training). tokens/second = tokens of the training sequences
(prompt + response, no padding) over all epochs / seconds. The best of ``--repeats`` runs.

    .venv/bin/python benchmarks/bench_trl_throughput.py [--preset default] [--repeats 2] [--threads 1]
                                                        [--json [PATH]]

``--json`` also writes the headline figures to ``benchmarks/results/bench_trl_throughput.json``
(or PATH) for the README's table (``make figures``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def _ours(base: Path, data: Path, out: Path, preset: str, sft: dict[str, Any], max_length: int,
          track: str) -> tuple[float, float]:
    """(training-loop seconds, end-to-end seconds) of ``run_sft``."""
    from ilpnb.train import sft as sft_module

    inner = [0.0]
    real = sft_module.SFTTrainer.train

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return real(self, *args, **kwargs)
        finally:
            inner[0] += time.perf_counter() - start

    sft_module.SFTTrainer.train = timed
    try:
        start = time.perf_counter()
        sft_module.run_sft(out, model=str(base), data=str(data), preset=preset, progress=False, track=track,
                           checkpoints="none", stages="mixed", max_length=max_length, sft=sft)
        return inner[0], time.perf_counter() - start
    finally:
        sft_module.SFTTrainer.train = real


def _trl(base: Path, records: list[Any], out: Path, sft: dict[str, Any], max_length: int) -> tuple[float, float, Any]:
    """(training-loop seconds, end-to-end seconds, the trainer) of TRL's SFTTrainer."""
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    from ilpnb.models.registry import load_model_and_tokenizer

    start = time.perf_counter()
    model, tok = load_model_and_tokenizer(str(base))
    rows = [{"prompt": [{"role": "user", "content": r.prompt}],
             "completion": [{"role": "assistant", "content": r.response}]} for r in records]
    args = SFTConfig(
        output_dir=str(out), num_train_epochs=sft["epochs"], per_device_train_batch_size=sft["batch_size"],
        learning_rate=sft["lr"], lr_scheduler_type="cosine", warmup_steps=0.05, weight_decay=0.0,
        max_length=max_length, completion_only_loss=True, gradient_checkpointing=False, bf16=False,
        save_strategy="epoch", save_total_limit=1, report_to=[], seed=sft["seed"], disable_tqdm=True,
        logging_steps=10**6, dataloader_num_workers=0, use_cpu=not torch.cuda.is_available(),
    )
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    begin = time.perf_counter()
    trainer.train()
    end = time.perf_counter()
    return end - begin, end - start, trainer


def _same_tokens(trainer: Any, tok: Any, records: list[Any], max_length: int) -> tuple[int, int]:
    """Check that TRL and ilpnb train on the same ids and loss masks; the number of tokens per
    epoch and the number of samples whose tokens differ."""
    from ilpnb.train.format import encode_pair

    ds = trainer.train_dataset
    differ, tokens = 0, 0
    for k, r in enumerate(records):
        enc = encode_pair(tok, r.prompt, r.response, max_length)
        tokens += len(enc.input_ids)
        ids = list(ds[k]["input_ids"])
        labels = list(ds[k]["labels"]) if "labels" in ds.column_names else None
        ours_mask = [lab != -100 for lab in enc.labels]
        theirs_mask = [lab != -100 for lab in labels] if labels is not None else None
        if ids != enc.input_ids or (theirs_mask is not None and theirs_mask != ours_mask):
            differ += 1
    return tokens, differ


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="default", help="world, base model and SFT preset (default: default)")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each trainer, interleaved (the best is kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: the machine is shared)")
    add_json_option(parser)
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(args.threads)
    import trl

    from ilpnb.config import get_preset, to_dict
    from ilpnb.data.records import read_records
    from ilpnb.data.world import generate_world
    from ilpnb.models.pretrain import pretrain_base_model
    from ilpnb.models.registry import load_model_and_tokenizer

    p = get_preset(args.preset)
    tmp = Path(tempfile.mkdtemp(prefix="ilpnb-bench-trl-"))
    world = generate_world(p.world, tmp / "world")
    start = time.perf_counter()
    base = pretrain_base_model(world / "pretrain.txt", p.model, p.pretrain, progress=False)
    took = time.perf_counter() - start
    data = world / "sft.jsonl"
    records = read_records(data)
    sft = {k: v for k, v in to_dict(p.sft).items() if k in ("epochs", "batch_size", "lr", "seed")}
    max_length = p.model.max_length
    print(f"preset {args.preset}: {len(records)} samples, {sft['epochs']} epochs, batch {sft['batch_size']}, "
          f"lr {sft['lr']}; base model {base.name} "
          f"({'pretrained now in ' + format(took, '.0f') + ' s' if took > 5 else 'cached'}); trl {trl.__version__}; "
          f"torch threads {torch.get_num_threads()}; cache {os.environ.get('ILPNB_CACHE', '~/.cache/ilpnb')}")
    _ours(base, data, tmp / "warmup", args.preset, {**sft, "epochs": 1}, max_length, "none")  # imports, allocator
    best: dict[str, tuple[float, float]] = {}
    trainer = None
    for k in range(args.repeats):
        for name in ("ilpnb", "ilpnb+tracking", "trl"):
            if name == "trl":
                loop, total, trainer = _trl(base, records, tmp / f"trl-{k}", sft, max_length)
            else:
                track = "points" if name.endswith("tracking") else "none"
                loop, total = _ours(base, data, tmp / f"{name}-{k}", args.preset, sft, max_length, track)
            print(f"  run {k + 1} {name:<15} training loop {loop:6.1f} s, end to end {total:6.1f} s")
            old = best.get(name, (float("inf"), float("inf")))
            best[name] = (min(old[0], loop), min(old[1], total))
    _, tok = load_model_and_tokenizer(str(base))
    per_epoch, differ = _same_tokens(trainer, tok, records, max_length)
    tokens = per_epoch * sft["epochs"]
    print(f"\nsame tokens: {len(records) - differ} of {len(records)} samples tokenised identically by TRL and ilpnb "
          f"(ids and loss mask); {per_epoch} tokens an epoch, {tokens} in all")
    print(f"{'':<16}{'training loop':>22}{'end to end':>22}")
    for name, (loop, total) in best.items():
        print(f"{name:<16}{tokens / loop:>14,.0f} tok/s{tokens / total:>16,.0f} tok/s")
    ours, theirs = best["ilpnb"], best["trl"]
    print(f"ratio ilpnb / TRL: training loop {theirs[0] / ours[0]:.2f}x, end to end {theirs[1] / ours[1]:.2f}x "
          f"(aim >= 1.0); with per-sample tracking at every epoch, end to end "
          f"{theirs[1] / best['ilpnb+tracking'][1]:.2f}x")
    setting = f"`{args.preset}`, {len(records)} samples, batch {sft['batch_size']}, trl {trl.__version__}"
    note = f"best of {args.repeats}; {len(records) - differ}/{len(records)} samples tokenised identically"
    write_results(args, __file__, [
        figure("ratio_training_loop", f"SFT throughput, ilpnb / TRL's `SFTTrainer`, training loop ({setting})",
               theirs[0] / ours[0], "x", note=f"{tokens / ours[0]:,.0f} vs {tokens / theirs[0]:,.0f} tokens/s; {note}"),
        figure("ratio_end_to_end", f"SFT throughput, ilpnb / TRL's `SFTTrainer`, end to end ({setting})",
               theirs[1] / ours[1], "x", note=f"{tokens / ours[1]:,.0f} vs {tokens / theirs[1]:,.0f} tokens/s; {note}"),
        figure("ratio_end_to_end_tracking", f"SFT throughput, ilpnb with per-sample tracking every epoch / TRL, "
               f"end to end ({setting})", theirs[1] / best["ilpnb+tracking"][1], "x", note=note),
    ], preset=args.preset, seeds={"world": [p.world.seed], "pretrain": [p.pretrain.seed], "sft": [sft["seed"]]})


if __name__ == "__main__":
    main()
