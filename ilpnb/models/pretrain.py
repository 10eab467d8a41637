"""Pretraining of the world's tiny base model, cached by a hash of its settings and corpus.

:func:`pretrain_base_model` trains a byte-level BPE tokenizer on ``pretrain.txt``, builds a
tiny model of a real architecture, pretrains it with transformers' ``Trainer`` (``epochs``
passes, more for a corpus too small to give ``min_steps`` optimizer steps) and saves it
with ``save_pretrained`` beside ``ilpnb_pretrain.json`` (the settings it was made with, the
loss curve and the wall time). The folder name is a hash of the model and pretraining
settings and of the corpus, so a second call with the same inputs costs nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from transformers import (
    DataCollatorForLanguageModeling,
    PrinterCallback,
    PreTrainedTokenizerBase,
    Trainer,
    TrainerCallback,
    TrainingArguments,
)

from ilpnb.config import ModelConfig, PretrainConfig, to_dict
from ilpnb.models.tiny import build_tiny_model
from ilpnb.models.tokenizer import train_tokenizer
from ilpnb.quiet import quiet

__all__ = ["cache_root", "base_model_key", "pack_documents", "pretrain_base_model", "pretrain_epochs", "read_corpus"]

_META = "ilpnb_pretrain.json"


def cache_root() -> Path:
    """Where cached models live: ``$ILPNB_CACHE`` or ``~/.cache/ilpnb``."""
    return Path(os.environ.get("ILPNB_CACHE", Path.home() / ".cache" / "ilpnb"))


def read_corpus(path: str | Path) -> list[str]:
    """The non-empty documents (lines) of a pretraining corpus.

    Raises:
        ValueError: the corpus holds no document.
    """
    lines = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines()]
    docs = [line for line in lines if line]
    if not docs:
        raise ValueError(f"{path}: the pretraining corpus is empty")
    return docs


def base_model_key(corpus: list[str], model: ModelConfig, pretrain: PretrainConfig) -> str:
    """A short hash of everything that determines the pretrained model."""
    h = hashlib.sha256()
    h.update(json.dumps({"model": to_dict(model), "pretrain": to_dict(pretrain), "v": 2}, sort_keys=True).encode())
    for line in corpus:
        h.update(line.encode("utf-8") + b"\n")
    return f"{model.arch}-{h.hexdigest()[:16]}"


class _LossLog(TrainerCallback):
    """Keeps the training-loss curve so it can be stored beside the model."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, float] | None = None, **kw: Any) -> None:
        if logs and "loss" in logs:
            self.rows.append({"step": state.global_step, "epoch": round(state.epoch or 0, 3), "loss": logs["loss"]})


def pack_documents(tok: PreTrainedTokenizerBase, docs: list[str], block: int, seed: int = 0) -> list[dict[str, list[int]]]:
    """Tokenise documents (``<s> doc </s>``), shuffle them with ``seed`` and cut the stream
    into blocks of ``block`` tokens, as GPT-style pretraining does (no padding is wasted).
    The last partial block is kept, shorter."""
    enc = [ids + [tok.eos_token_id] for ids in tok(docs, add_special_tokens=True)["input_ids"]]
    order = list(range(len(enc)))
    random.Random(seed).shuffle(order)
    stream = [t for i in order for t in enc[i]]
    return [{"input_ids": stream[k : k + block]} for k in range(0, len(stream), block)]


def pretrain_epochs(blocks: int, pretrain: PretrainConfig) -> int:
    """The epochs a corpus of ``blocks`` packed blocks is pretrained for: ``pretrain.epochs``, or
    more where that would be fewer than ``pretrain.min_steps`` optimizer steps."""
    per_epoch = max(1, math.ceil(blocks / pretrain.batch_size))
    return max(pretrain.epochs, math.ceil(pretrain.min_steps / per_epoch))


def pretrain_base_model(
    corpus_path: str | Path,
    model: ModelConfig,
    pretrain: PretrainConfig,
    cache_dir: str | Path | None = None,
    progress: bool = True,
) -> Path:
    """Pretrain (or fetch from cache) the tiny base model on a corpus.

    Args:
        corpus_path: ``pretrain.txt`` of a world (one document a line).
        model: architecture settings.
        pretrain: training settings.
        cache_dir: where model folders are kept (default ``cache_root()/base_models``).
        progress: show tqdm progress bars.

    Returns:
        The model folder, loadable with ``AutoModelForCausalLM`` / ``AutoTokenizer``.
    """
    docs = read_corpus(corpus_path)
    root = Path(cache_dir) if cache_dir else cache_root() / "base_models"
    out = root / base_model_key(docs, model, pretrain)
    if (out / _META).exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    torch.manual_seed(pretrain.seed)
    tok = train_tokenizer(docs, vocab_size=model.vocab_size)
    net = build_tiny_model(model, tok, seed=pretrain.seed)
    data = pack_documents(tok, docs, model.max_length, seed=pretrain.seed)
    n_tokens = sum(len(d["input_ids"]) for d in data)
    epochs = pretrain_epochs(len(data), pretrain)
    work = Path(tempfile.mkdtemp(prefix=".pretrain-", dir=root))
    try:
        log = _LossLog()
        args = TrainingArguments(
            output_dir=str(work / "trainer"),
            num_train_epochs=epochs,
            per_device_train_batch_size=pretrain.batch_size,
            learning_rate=pretrain.lr,
            weight_decay=pretrain.weight_decay,
            lr_scheduler_type="cosine",
            warmup_steps=0.02,
            logging_steps=max(1, len(data) // pretrain.batch_size),
            save_strategy="no",
            report_to=[],
            seed=pretrain.seed,
            disable_tqdm=not progress,
            dataloader_num_workers=0,
            use_cpu=not torch.cuda.is_available(),
        )
        trainer = Trainer(
            model=net,
            args=args,
            train_dataset=data,
            data_collator=DataCollatorForLanguageModeling(tok, mlm=False),
            callbacks=[log],
        )
        if not progress:
            trainer.remove_callback(PrinterCallback)
        trainer.train()
        seconds = time.perf_counter() - start
        final = work / "model"
        with quiet():  # no `Writing model shards` bar
            net.save_pretrained(final, safe_serialization=True)
            tok.save_pretrained(final)
        meta = {
            "model": to_dict(model),
            "pretrain": to_dict(pretrain),
            "corpus": str(corpus_path),
            "documents": len(docs),
            "blocks": len(data),
            "tokens_per_epoch": n_tokens,
            "epochs": epochs,
            "parameters": sum(p.numel() for p in net.parameters()),
            "seconds": round(seconds, 2),
            "loss_curve": log.rows,
        }
        (final / _META).write_text(json.dumps(meta, indent=1, sort_keys=True) + "\n")
        if out.exists():  # another process finished first: keep theirs
            return out
        os.replace(final, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def pretrain_info(model_dir: str | Path) -> dict[str, Any]:
    """The settings, loss curve and wall time stored beside a pretrained model."""
    return json.loads((Path(model_dir) / _META).read_text())


__all__ += ["pretrain_info"]
