"""The Tracker's multiple-choice columns, with the distractors scored on the key/value cache of
each sample's own pass, equal scoring every (prompt, option) pair on its own."""

from __future__ import annotations

import numpy as np
from sft_helpers import Smoke

from ilpnb.data.records import read_records
from ilpnb.models.registry import load_model_and_tokenizer
from ilpnb.probe.scoring import option_probabilities, score_continuations
from ilpnb.train.tracking import Tracker


def test_tracker_options_equal_unshared_scoring(smoke: Smoke) -> None:
    model, tok = load_model_and_tokenizer(str(smoke.model))
    records = read_records(smoke.data)[:40]
    tracker = Tracker(tok, records, 128, batch_size=8)
    table = tracker.measure(model, {"point": 0}, options=True)
    assert tracker.has_options and table["mc_p_gold"].notna().all()
    ref = []
    for it in tracker.items:
        pairs = [(it.enc.prompt_ids, it.enc.response_ids)] + [(o.prompt_ids, o.response_ids) for o in it.options]
        ref.append(option_probabilities(score_continuations(model, pairs, 1, tracker.pad_id).logprob[None, :])[0])
    np.testing.assert_allclose(table["mc_p_gold"], [r[0] for r in ref], atol=1e-5)
    np.testing.assert_allclose(table["mc_top_p"], [r.max() for r in ref], atol=1e-5)
    assert table["mc_p_gold"].std() > 1e-3  # the probabilities differ between samples: a real comparison
