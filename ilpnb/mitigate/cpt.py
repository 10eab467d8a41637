"""Continued pretraining on knowledge-augmented text mixed with general text (the missing-knowledge fix).

The published study continued pretraining on 0.8 general + 0.2 knowledge-augmented text,
about 20 documents per missing fact, before SFT. On a world, the knowledge text of a sample
is :func:`fact_documents`: each fact its answer needs, stated in paraphrased declarative
sentences built from the relation's statement templates (``ilpnb.data.world_text.RELATIONS``)
— never the sample's own question or answer, so the fix is not upsampling under another
name. Without a world (no facts), :func:`knowledge_documents` writes the sample's question and
answer in several forms (an upsampling of the text, and reported as such). The general text is
drawn from the pretraining corpus when the run has one (a world), else from the other SFT
samples. The model is saved with ``save_pretrained`` beside a JSON of the settings it was
made with and the compute it spent (optimizer steps, tokens), and cached by a hash of them.
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

__all__ = ["knowledge_documents", "fact_documents", "continued_pretraining", "cpt_budget"]


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


def fact_documents(facts: list[tuple[str, str, str]], docs_per_fact: int = 20, seed: int = 0) -> list[str]:
    """Paraphrased declarative statements of each fact, ``docs_per_fact`` per fact.

    Args:
        facts: (subject, relation, object) triples; a relation is a key of
            :data:`ilpnb.data.world_text.RELATIONS`.
        docs_per_fact: documents per fact (templates cycled, synonyms drawn with ``seed``).
        seed: the draw of synonyms and template order.

    Raises:
        ValueError: a relation without statement templates (named).
    """
    from ilpnb.data.world_text import RELATIONS, expand

    rng = random.Random(seed)
    docs = []
    for subject, relation, obj in facts:
        if relation not in RELATIONS:
            raise ValueError(f"fact ({subject}, {relation}, {obj}): unknown relation {relation!r} "
                             f"(known: {', '.join(RELATIONS)})")
        templates = list(RELATIONS[relation].statements)
        rng.shuffle(templates)
        docs += [rng.choice(expand(templates[k % len(templates)])).format(s=subject, o=obj)
                 for k in range(docs_per_fact)]
    return docs


def cpt_budget(model_dir: str | Path) -> dict[str, int]:
    """The compute a continued-pretraining model spent (``steps``, ``tokens``, ``knowledge_tokens``;
    zeros for a model that was not made by :func:`continued_pretraining`)."""
    meta = Path(model_dir) / "ilpnb_cpt.json"
    if not meta.exists():
        return {"steps": 0, "tokens": 0, "knowledge_tokens": 0}
    saved = json.loads(meta.read_text())
    return {k: int(saved.get(k, 0)) for k in ("steps", "tokens", "knowledge_tokens")}


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
                                   "block": block, "seed": seed, "meta": 2}, sort_keys=True).encode()).hexdigest()[:16]
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
        knowledge_tokens = sum(len(ids) + 1 for ids in tok(knowledge, add_special_tokens=True)["input_ids"]) * epochs
        meta = {"base": str(base), "knowledge_docs": len(knowledge), "general_docs": n_general, "mix": mix,
                "epochs": epochs, "lr": lr, "seed": seed, "steps": int(trainer.state.global_step),
                "tokens": sum(len(b["input_ids"]) for b in data) * epochs, "knowledge_tokens": knowledge_tokens}
        (final / "ilpnb_cpt.json").write_text(json.dumps(meta, indent=1) + "\n")
        if not out.exists():
            os.replace(final, out)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out
