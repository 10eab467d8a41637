"""The inputs of the interaction dynamics: a run's checkpoints, held-out prompts, their metrics.

* :func:`list_checkpoints` — the base model (step 0, the run's ``config.json["model"]``) and
  every saved point checkpoint, in step order (a ``stage-S-end`` checkpoint only where no
  point checkpoint has its step);
* :func:`load_checkpoint` — a checkpoint as a plain model (LoRA adapters merged into the base);
* :func:`heldout_prompts` — held-out questions of a world run: knowledge probes whose
  ``(subject, relation)`` no SFT sample asks about (a profile sample covers all of its
  subject's relations; ``lives_in`` and ``country`` count as one), facts stated in the pretraining corpus first, relations balanced,
  drawn with a seed; :func:`read_prompts` reads any SFT-record file instead;
* :func:`split_prompts` — the held-out prompts split into disjoint validation prompts (which
  choose a stopping step) and test prompts (which report what it buys);
* :func:`heldout_metrics` — teacher-forced validation loss and exact reproduction of the gold
  answers on the held-out prompts.
"""

from __future__ import annotations

import contextlib
import json
import random
import re
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ilpnb.data.records import SFTRecord, read_records
from ilpnb.runs import Checkpoint, Run  # Checkpoint: re-exported, the one checkpoint type

__all__ = [
    "Checkpoint",
    "heldout_metrics",
    "heldout_prompts",
    "list_checkpoints",
    "load_checkpoint",
    "quiet_loading",
    "read_prompts",
    "select_checkpoints",
    "split_prompts",
]

SPLITS = ("validation", "test")

_LINKED = ("lives_in", "country")
_PROBE = re.compile(r"^\s*Q:\s*(.*?)\s*A:\s*$", re.S)


def list_checkpoints(run: str | Path) -> list[Checkpoint]:
    """The base model and the saved checkpoints of a fine-tuning run, in step order
    (:meth:`ilpnb.runs.Run.checkpoints`, which must find a base model and a saved checkpoint).

    Raises:
        FileNotFoundError: ``run`` has no ``config.json``, names no model, or has no saved checkpoint.
    """
    run = Path(run)
    if not (run / "config.json").is_file():
        raise FileNotFoundError(f"{run}: not a fine-tuning run folder (no config.json)")
    reader = Run(run)
    if "model" not in reader.config:
        raise FileNotFoundError(f"{run}: config.json names no model; is this an `ilpnb sft` run?")
    found = reader.checkpoints()
    if len(found) < 2:
        raise FileNotFoundError(
            f"{run}: no saved checkpoints (checkpoints/point-*-step-*); fine-tune with "
            "checkpoints='points' (the default) and eval_every set to get some")
    return found


def select_checkpoints(checkpoints: Sequence[Checkpoint], steps: Sequence[int] | str | None) -> list[Checkpoint]:
    """The checkpoints at the given steps (the base model is always kept first).

    Args:
        checkpoints: Output of :func:`list_checkpoints`.
        steps: Steps (or ``"4,8,12"``); ``None`` keeps all.

    Raises:
        ValueError: A step with no checkpoint (the message lists the available steps).
    """
    if steps is None:
        return list(checkpoints)
    if isinstance(steps, str):
        try:
            steps = [int(s) for s in steps.replace(" ", "").split(",") if s]
        except ValueError as err:
            raise ValueError(f"--checkpoints must be comma-separated steps, got {steps!r}") from err
    by_step = {c.step: c for c in checkpoints}
    missing = [s for s in steps if s not in by_step]
    if missing:
        raise ValueError(f"no checkpoint at step(s) {missing}; available steps: {sorted(by_step)}")
    keep = sorted(set(steps) | {0})
    return [by_step[s] for s in keep]


@contextlib.contextmanager
def quiet_loading(quiet: bool = True) -> Iterator[None]:
    """Hide transformers' per-load progress bars and the harmless warnings of
    :mod:`ilpnb.quiet` (peft's deprecation note on LoRA loads) for the duration (restored after)."""
    from ilpnb.quiet import quiet as _quiet

    with _quiet() if quiet else contextlib.nullcontext():
        yield


def load_checkpoint(checkpoint: Checkpoint | str | Path, quiet: bool = True) -> tuple[Any, Any]:
    """Load a checkpoint as ``(model, tokenizer)`` in eval mode (LoRA adapters merged).

    Args:
        checkpoint: A :class:`Checkpoint`, or any model argument of
            :func:`ilpnb.models.registry.load_model_and_tokenizer`.
        quiet: Hide transformers' loading progress bars.
    """
    with quiet_loading(quiet):
        return _load(checkpoint)


def _load(checkpoint: Checkpoint | str | Path) -> tuple[Any, Any]:
    from ilpnb.models.registry import load_model_and_tokenizer

    if not isinstance(checkpoint, Checkpoint):
        return load_model_and_tokenizer(checkpoint)
    if checkpoint.lora and (Path(checkpoint.path) / "adapter_config.json").is_file():
        from peft import PeftModel
        from transformers import AutoTokenizer

        model = PeftModel.from_pretrained(_base_copy(checkpoint.base_model), checkpoint.path).merge_and_unload()
        return model.eval(), AutoTokenizer.from_pretrained(checkpoint.path)
    return load_model_and_tokenizer(checkpoint.path)


_BASE: dict[str, Any] = {}


def _base_copy(name: str) -> Any:
    """A fresh copy of a LoRA run's base model: loaded once per process (a packaged GGUF model is
    de-quantized on every load), copied for each checkpoint (merging changes the weights)."""
    import copy

    from ilpnb.models.registry import load_model_and_tokenizer

    if name not in _BASE:
        _BASE.clear()  # one base model kept at a time
        _BASE[name] = load_model_and_tokenizer(name)[0]
    return copy.deepcopy(_BASE[name])


def read_prompts(path: str | Path) -> list[SFTRecord]:
    """Held-out prompts from an SFT-record file (JSONL / Alpaca / chat; see DESIGN.md).

    Raises:
        RecordError: A bad line (file, line number and reason in the message).
        ValueError: An empty file.
    """
    records = read_records(path)
    if not records:
        raise ValueError(f"{path}: no prompts")
    return records


def _question(probe_prompt: str) -> str:
    m = _PROBE.match(probe_prompt)
    return m.group(1) if m else probe_prompt.strip()


def heldout_prompts(world: str | Path, n: int = 24, seed: int = 0, stated_only: bool = True) -> list[SFTRecord]:
    """Held-out questions of a world: facts the world knows that no SFT sample asks about.

    Every knowledge probe ``"Q: <question> A:"`` becomes a record with prompt ``<question>``
    and response the probe's answer, unless an SFT sample asks about the same subject and
    relation (a profile sample covers every relation of its subject; ``lives_in`` and
    ``country`` count as one relation). Facts stated in the pretraining corpus are taken
    first (the base model can know them); ``stated_only=False`` lets unstated facts fill up.
    The draw is round-robin over relations, shuffled with ``seed``.

    Args:
        world: The world folder (``probes.jsonl``, ``world.json``).
        n: How many prompts.
        seed: Seed of the draw.
        stated_only: Only facts stated in ``pretrain.txt``.

    Returns:
        Up to ``n`` records (``meta``: ``probe_id``, ``subject``, ``relation``, ``stated``).

    Raises:
        FileNotFoundError: The world folder lacks its files.
        ValueError: ``n < 1`` or no held-out fact.
    """
    world = Path(world)
    if n < 1:
        raise ValueError(f"the number of held-out prompts must be >= 1, got {n}")
    for name in ("probes.jsonl", "world.json"):
        if not (world / name).is_file():
            raise FileNotFoundError(f"{world}: no {name}; is this a world folder?")
    info = json.loads((world / "world.json").read_text())
    stated = {(f["subject"], f["relation"]): bool(f.get("stated", True)) for f in info.get("facts", [])}
    used: set[tuple[str, str]] = set()
    whole: set[str] = set()
    for s in info.get("samples", []):
        used.add((s["subject"], s["relation"]))
        if s["relation"] == "profile":
            whole.add(s["subject"])
        if s["relation"] in _LINKED:  # where one lives and its country: one question, two hops
            used.update((s["subject"], r) for r in _LINKED)
    by_rel: dict[str, list[dict[str, Any]]] = defaultdict(list)
    spare: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in (world / "probes.jsonl").read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        p = json.loads(line)
        key = (p["subject"], p["relation"])
        if key in used or p["subject"] in whole:
            continue
        (by_rel if stated.get(key, True) else spare)[p["relation"]].append(p)
    rng = random.Random(seed)
    picked = _round_robin(by_rel, n, rng)
    if not stated_only and len(picked) < n:
        picked += _round_robin(spare, n - len(picked), rng)
    if not picked:
        raise ValueError(f"{world}: every probed fact is asked about by an SFT sample; no held-out prompt")
    return [SFTRecord(id=f"heldout-{p['id']}", prompt=_question(p["prompt"]), response=str(p["answer"]),
                      options=list(p.get("options", [])),
                      meta={"probe_id": p["id"], "subject": p["subject"], "relation": p["relation"],
                            "stated": stated.get((p["subject"], p["relation"]), True)})
            for p in picked]


def _round_robin(groups: dict[str, list[dict[str, Any]]], n: int, rng: random.Random) -> list[dict[str, Any]]:
    pools = {k: rng.sample(v, len(v)) for k, v in sorted(groups.items())}
    out: list[dict[str, Any]] = []
    while len(out) < n and any(pools.values()):
        for k in sorted(pools):
            if pools[k] and len(out) < n:
                out.append(pools[k].pop())
    return out


def split_prompts(prompts: Sequence[SFTRecord], share: float = 0.5, seed: int = 0) -> dict[str, str]:
    """Each held-out prompt's split: ``"validation"`` (chooses the stopping step) or ``"test"``
    (reports it), disjoint.

    Records whose ``meta["split"]`` is ``validation`` or ``test`` keep it (a prompts file can fix
    the split); the others are drawn with ``seed``: ``round(share · n)`` of them (at least one,
    and at least one left for test when there are two or more) are validation prompts.

    Raises:
        ValueError: A ``meta["split"]`` other than validation / test.
    """
    fixed = {str(p.id): p.meta.get("split") for p in prompts if p.meta.get("split") is not None}
    bad = {k: v for k, v in fixed.items() if v not in SPLITS}
    if bad:
        raise ValueError(f"held-out prompts: meta 'split' must be one of {SPLITS}; got {bad}")
    free = sorted(str(p.id) for p in prompts if str(p.id) not in fixed)
    random.Random(seed).shuffle(free)
    n = len(free)
    k = min(max(1, round(share * n)), n - 1) if n >= 2 else n
    return {**fixed, **{i: ("validation" if j < k else "test") for j, i in enumerate(free)}}


def heldout_metrics(model: Any, tokenizer: Any, prompts: Sequence[SFTRecord], max_length: int | None = None,
                    batch_size: int = 32) -> dict[str, Any]:
    """Teacher-forced validation loss and accuracy on held-out prompts with gold answers.

    Returns:
        ``val_loss`` (mean over prompts of the mean NLL per response token, end-of-sequence
        included), ``heldout_acc`` (share reproduced exactly by greedy decoding),
        ``heldout_first_acc`` (share whose first answer token is the top token), and the
        per-prompt lists ``loss``, ``exact``, ``first`` (in prompt order).
    """
    from ilpnb.probe.scoring import score_continuations
    from ilpnb.train.format import encode_pair

    enc = [encode_pair(tokenizer, p.prompt, p.response, max_length) for p in prompts]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    scores = score_continuations(model, [(e.prompt_ids, e.response_ids) for e in enc], batch_size=batch_size,
                                 pad_id=pad, first_logprobs=True)
    first = np.array([int(np.argmax(scores.first_logprobs[i])) == e.response_ids[0] for i, e in enumerate(enc)])
    return {"val_loss": float(np.mean(scores.loss)), "heldout_acc": float(np.mean(scores.exact)),
            "heldout_first_acc": float(np.mean(first)), "loss": [float(x) for x in scores.loss],
            "exact": [bool(x) for x in scores.exact], "first": [bool(x) for x in first]}
