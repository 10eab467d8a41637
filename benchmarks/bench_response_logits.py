"""Benchmark: a training step with logits only from the first response position vs all positions.

ilpnb's SFT (``ilpnb.train.trainer.SFTTrainer``) passes ``logits_to_keep`` so that the output
layer (a vocabulary-wide matmul, 49k words for SmolLM2) and the loss run on the response
positions only, not on the chat template's header and the prompt. This times one LoRA
training step (forward and backward, no update, so both ways see the same weights) of SmolLM2-135M-Instruct on a batch of real
question-answer pairs both ways, alternating, and prints the losses (equal) and the ratio.

    python benchmarks/bench_response_logits.py [--data faq-en|capitals] [--batch 8] [--repeats 6]
                                              [--threads N] [--json [PATH]]

``capitals``: short answers in the chat format (what the planted real world trains on);
``faq-en``: the FAQ's answers of at most 200 characters.
"""

from __future__ import annotations

import argparse
import statistics
import time

from ilpnb.figures import add_json_option, figure, write_results

__all__ = ["main"]


def _pairs(data: str, n: int) -> list[tuple[str, str]]:
    if data == "capitals":
        from ilpnb.data.realworld import country_facts

        return [(f"What is the capital of {f.subject}?", f"It is {f.value}.") for f in country_facts()[:n]]
    from ilpnb.data.packaged import resolve_data

    return [(r.prompt, r.response) for r in resolve_data(data) if len(r.response) <= 200][:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="capitals", choices=("capitals", "faq-en"))
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    add_json_option(parser)
    args = parser.parse_args()

    import torch
    from peft import LoraConfig, get_peft_model

    from ilpnb.models.registry import load_model_and_tokenizer
    from ilpnb.train.format import encode_pair
    from ilpnb.train.trainer import collate, response_start

    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, tok = load_model_and_tokenizer("smollm2-135m-instruct")
    model = get_peft_model(model, LoraConfig(r=8, lora_alpha=16, target_modules="all-linear", task_type="CAUSAL_LM"))
    model.train()
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)  # only zeroes the grads
    feats = []
    for prompt, response in _pairs(args.data, args.batch):
        e = encode_pair(tok, prompt, response)
        feats.append({"input_ids": list(e.prompt_ids) + list(e.response_ids),
                      "labels": [-100] * len(e.prompt_ids) + list(e.response_ids)})
    batch = collate(feats, tok.pad_token_id or 0)
    start = response_start(batch["labels"])
    width = batch["labels"].shape[1]

    def step(trim: bool) -> tuple[float, float]:
        kw = ({"labels": batch["labels"][:, start:], "logits_to_keep": width - start} if trim
              else {"labels": batch["labels"]})
        t = time.perf_counter()
        loss = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kw).loss
        loss.backward()
        opt.zero_grad(set_to_none=True)  # no update: both ways see the same weights
        return time.perf_counter() - t, float(loss.detach())

    step(False), step(True)  # warm-up
    full, cut, lf, lc = [], [], [], []
    for _ in range(args.repeats):
        for trim, times, losses in ((False, full, lf), (True, cut, lc)):
            t, loss = step(trim)
            times.append(t)
            losses.append(loss)
    ratio = statistics.median(full) / statistics.median(cut)
    print(f"{args.data}: batch {args.batch}, {width} positions, logits from position {start} "
          f"({width - start} kept), torch threads {torch.get_num_threads()}, {args.repeats} alternating repeats")
    print(f"loss all positions {lf[0]:.6f}, response positions {lc[0]:.6f}")
    print(f"step median: all positions {statistics.median(full):.3f} s, response positions {statistics.median(cut):.3f} s")
    print(f"response-only logits: {ratio:.2f}x faster training step")
    write_results(args, __file__, [figure("response_logits_speedup", f"training step, response-only logits vs all "
                                          f"({args.data}, batch {args.batch})", ratio, "x", digits=2,
                                          n=args.repeats)],
                  extra={"full_s": full, "cut_s": cut})


if __name__ == "__main__":
    main()
