"""Continued pretraining on knowledge text, mixed with general text (the missing-knowledge fix).

The published study continued pretraining on 0.8 general + 0.2 knowledge-augmented text,
about 20 documents per missing entity, before SFT. Here the knowledge text of a sample is
its own question and answer written as documents in several forms (the model's prompt
format, a plain line, a statement-like line), ``docs_per_sample`` documents in all; the
general text is drawn from the pretraining corpus when the run has one (a world), else from
the other SFT samples. The model is saved with ``save_pretrained`` beside a JSON of the
settings it was made with, and cached by a hash of them.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from transformers import DataCollatorForLanguageModeling, PrinterCallback, Trainer, TrainingArguments

from ilpnb.models.pretrain import cache_root, pack_documents
from ilpnb.quiet import quiet

__all__ = ["knowledge_documents", "continued_pretraining"]


def knowledge_documents(pairs: list[tuple[str, str]], prompt_format: Any, docs_per_sample: int = 20) -> list[str]:
    """Documents stating each (prompt, response) pair, ``docs_per_sample`` per pair.

    Args:
        pairs: (prompt, response) of the samples whose knowledge is added.
        prompt_format: function prompt -> the text the model is conditioned on.
        docs_per_sample: documents per pair (forms are cycled).
    """
    docs = []
    for prompt, response in pairs:
        forms = [prompt_format(prompt) + " " + response, f"{prompt} {response}",
                 f"Answer: {response}. Question: {prompt}", f"{prompt} The answer is {response}."]
        docs += [forms[k % len(forms)].replace("\n", " ").strip() for k in range(docs_per_sample)]
    return docs


def continued_pretraining(base: str | Path, knowledge: list[str], general: list[str], mix: float = 0.2,
                          epochs: int = 3, lr: float = 1e-3, batch_size: int = 8, block: int = 64, seed: int = 0,
                          progress: bool = False) -> Path:
    """Continue pretraining ``base`` on knowledge text mixed with general text.

    Args:
        base: model folder.
        knowledge: knowledge documents.
        general: general documents to mix in.
        mix: share of knowledge documents in the mixture (0.2 = 0.8 general / 0.2 knowledge).
        epochs: passes over the mixture.
        lr: peak learning rate (cosine).
        batch_size: packed blocks per step.
        block: tokens per block.
        seed: sampling and training seed.
        progress: tqdm bars.

    Returns:
        The new model folder (cached by a hash of the inputs).
    """
    from ilpnb.models.registry import load_model_and_tokenizer

    if not 0.0 < mix <= 1.0:
        raise ValueError(f"mix must be in (0, 1], got {mix}")
    rng = random.Random(seed)
    n_general = int(round(len(knowledge) * (1.0 - mix) / mix))
    mixed = knowledge + ([rng.choice(general) for _ in range(n_general)] if general else [])
    h = hashlib.sha256(json.dumps({"base": str(base), "docs": mixed, "epochs": epochs, "lr": lr, "bs": batch_size,
                                   "block": block, "seed": seed}, sort_keys=True).encode()).hexdigest()[:16]
    out = cache_root() / "cpt_models" / h
    if (out / "ilpnb_cpt.json").exists():
        return out
    model, tok = load_model_and_tokenizer(str(base))
    data = pack_documents(tok, mixed, block, seed=seed)
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".cpt-", dir=out.parent))
    try:
        args = TrainingArguments(output_dir=str(work / "trainer"), num_train_epochs=epochs, per_device_train_batch_size=batch_size,
                                 learning_rate=lr, lr_scheduler_type="cosine", warmup_steps=0.05, save_strategy="no",
                                 report_to=[], seed=seed, disable_tqdm=not progress, logging_steps=50,
                                 use_cpu=not torch.cuda.is_available())
        trainer = Trainer(model=model, args=args, train_dataset=data,
                          data_collator=DataCollatorForLanguageModeling(tok, mlm=False))
        if not progress:
            trainer.remove_callback(PrinterCallback)
        trainer.train()
        final = work / "model"
        with quiet():  # no `Writing model shards` bar
            model.save_pretrained(final)
            tok.save_pretrained(final)
        meta = {"base": str(base), "knowledge_docs": len(knowledge), "general_docs": n_general, "mix": mix,
                "epochs": epochs, "lr": lr, "seed": seed}
        (final / "ilpnb_cpt.json").write_text(json.dumps(meta, indent=1) + "\n")
        if not out.exists():
            os.replace(final, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
