"""The training forward pass computes logits only from the batch's first response position
on (``logits_to_keep``): the loss and its gradient equal those of the full pass."""

from __future__ import annotations

import torch
from sft_helpers import Smoke

from ilpnb.models.registry import load_model_and_tokenizer
from ilpnb.train.trainer import accepts_logits_to_keep, collate, response_start


def test_response_start_is_one_before_the_earliest_supervised_label() -> None:
    labels = torch.full((3, 9), -100)
    labels[0, 5:8] = 1
    labels[1, 3:6] = 2
    assert response_start(labels) == 2
    assert response_start(torch.full((2, 4), -100)) == 0  # nothing supervised: keep every position
    labels[2, 0:2] = 3  # a label at position 0 has no logit before it: start stays at 0
    assert response_start(labels) == 0


def test_trimmed_pass_gives_the_same_loss_and_gradient(smoke: Smoke) -> None:
    model, tok = load_model_and_tokenizer(str(smoke.model))
    assert accepts_logits_to_keep(model)
    features = []
    for prompt, response, n_prompt in (([5, 6, 7, 8, 9], [10, 11, 12], 5), ([5, 6, 7], [13, 14], 3),
                                       ([5, 6, 7, 8, 9, 10, 11], [15], 7)):
        ids = prompt + response
        features.append({"input_ids": ids, "labels": [-100] * n_prompt + response})
    batch = collate(features, tok.pad_token_id or 0)
    start = response_start(batch["labels"])
    assert start == 2

    def loss_and_grad(**kw: object) -> tuple[float, torch.Tensor]:
        model.zero_grad()
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], **kw)
        out.loss.backward()
        grad = torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None])
        return float(out.loss.detach()), grad

    full_loss, full_grad = loss_and_grad(labels=batch["labels"])
    cut_loss, cut_grad = loss_and_grad(labels=batch["labels"][:, start:],
                                       logits_to_keep=batch["labels"].shape[1] - start)
    assert abs(full_loss - cut_loss) < 1e-5
    assert torch.allclose(full_grad, cut_grad, atol=1e-6)
