"""Models: the registry and loading (hub name, local folder, packaged model), the tiny models of real
architectures, their tokenizer, and the base-model pretraining on a world's corpus."""

from __future__ import annotations

from ilpnb._lazy import exported_names, lazy_exports

#: module -> the public names it provides (imported on first use, so this package imports nothing heavy)
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".registry": (
        "MODELS", "PackagedModel", "ModelNotFoundError", "resolve_model", "load_model_and_tokenizer",
        "default_cache_dir",
    ),
    ".tiny": ("ARCHS", "build_tiny_model", "tiny_model_config"),
    ".tokenizer": ("train_tokenizer",),
    ".pretrain": ("pretrain_base_model",),
}
__all__ = exported_names(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
