"""The LoRA adapter folded into the model's weights, requantized, built once and cached.

A runtime adapter costs every decode two extra small matrix products per layer
in float, outside llama.cpp's repacked quantized kernels; a Q4_0 file with the
adapter merged in runs those kernels alone (measured in docs/results/throughput).
The merge is deterministic and takes seconds: dequantize the base, add
`alpha / rank * B @ A` to each adapted tensor, write f32, quantize with
llama.cpp's own `llama_model_quantize`. So the project ships the base model and
the adapter, and each machine builds the merged file on first use into a cache,
named by what went into it, with a provenance card beside it.
"""

from __future__ import annotations

import ctypes
import hashlib
import logging
import os
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

import orjson

log = logging.getLogger(__name__)

QUANT_TYPES = {"q4_0": 2, "q4_1": 3, "q5_0": 8, "q8_0": 7, "iq4_nl": 25, "f16": 1, "q4_k_m": 15, "q5_k_m": 17}  # llama_ftype
MERGE_VERSION = 1  # bump when the merge itself changes, so cached files are rebuilt


class MergeError(RuntimeError):
    """An adapter that cannot be folded into this base (another model, unknown quantization)."""


@dataclass
class LoraWeights:
    """LoRA matrices by llama.cpp base tensor name, already in llama.cpp's row order."""

    alpha: float
    rank: int
    pairs: dict[str, tuple[object, object]]  # name -> (A [r, in], B [out, r]) numpy float32

    @property
    def scale(self) -> float:
        return self.alpha / self.rank


def read_adapter_gguf(path: Path) -> LoraWeights:
    """The A/B matrices of a llama.cpp LoRA adapter file (e.g. the shipped one)."""
    import gguf
    import numpy as np

    reader = gguf.GGUFReader(str(path))
    if reader.fields.get("general.type") is None or reader.fields["general.type"].contents() != "adapter":
        raise MergeError(f"{path} is not a GGUF LoRA adapter")
    halves: dict[str, dict[str, object]] = {}
    for tensor in reader.tensors:
        base, _, half = tensor.name.rpartition(".lora_")
        shape = [int(n) for n in reversed(tensor.shape)]
        halves.setdefault(base, {})[half] = np.asarray(tensor.data, dtype=np.float32).reshape(shape)
    rank = next(iter(halves.values()))["a"].shape[0]
    alpha = float(reader.fields["adapter.lora.alpha"].contents())
    return LoraWeights(alpha=alpha, rank=rank, pairs={n: (ab["a"], ab["b"]) for n, ab in halves.items()})


def merge_and_quantize(base_path: Path, weights: LoraWeights, out_path: Path, quant: str = "q4_0", n_threads: int = 2) -> None:
    """One GGUF with the adapter folded in: dequantize the base, add scale * B @ A, write f32, quantize.

    The intermediate f32 file (~0.6 GB for 135M) lives in a temporary folder
    beside `out_path` and is removed afterwards.
    """
    import gguf
    import llama_cpp
    import numpy as np
    from gguf.quants import dequantize

    if quant not in QUANT_TYPES:
        raise MergeError(f"unknown quantization {quant!r}; one of {', '.join(QUANT_TYPES)}")
    reader = gguf.GGUFReader(str(base_path))
    arch = reader.fields["general.architecture"].contents()
    missing = set(weights.pairs) - {t.name for t in reader.tensors}
    if missing:
        raise MergeError(f"base model has no tensor {sorted(missing)[0]!r}: the adapter is for another model")
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent) as tmp:
        merged_f32 = Path(tmp) / "merged-f32.gguf"
        writer = gguf.GGUFWriter(str(merged_f32), arch=arch)
        for name, fld in reader.fields.items():
            if name.startswith("GGUF.") or name in ("general.architecture", "general.file_type", "general.alignment"):
                continue
            vtype = fld.types[0]
            sub = fld.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
            writer.add_key_value(name, fld.contents(), vtype, sub)
        writer.add_file_type(gguf.LlamaFileType.ALL_F32)
        for tensor in reader.tensors:
            data = dequantize(tensor.data, tensor.tensor_type).astype(np.float32)
            data = data.reshape([int(n) for n in reversed(tensor.shape)])
            if tensor.name in weights.pairs:
                a, b = weights.pairs[tensor.name]
                data = data + weights.scale * (b.astype(np.float32) @ a.astype(np.float32))
            writer.add_tensor(tensor.name, np.ascontiguousarray(data))
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_tensors_to_file()
        writer.close()
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = QUANT_TYPES[quant]
        params.nthread = n_threads
        status = llama_cpp.llama_model_quantize(str(merged_f32).encode(), str(out_path).encode(), ctypes.byref(params))
        if status != 0:
            raise MergeError(f"llama.cpp quantize failed with status {status}")


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/tradechat-streamer (~/.cache/tradechat-streamer)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "tradechat-streamer"


def merged_model(base: Path, base_sha256: str, adapter: Path, adapter_id: str, quant: str, cache_dir: Path,
                 n_threads: int = 2) -> Path:
    """The cached merged GGUF for (base, adapter, quant), built now if missing; its card is `<file>.json`.

    Workers starting together may each build it; each writes to a temporary
    name and renames, so a reader never sees half a file.
    """
    adapter_sha256 = hashlib.sha256(adapter.read_bytes()).hexdigest()
    key = hashlib.sha256(f"{base_sha256}:{adapter_sha256}:{quant}:{MERGE_VERSION}".encode()).hexdigest()[:12]
    path = cache_dir / f"{adapter_id}-merged-{quant}-{key}.gguf"
    if path.is_file():
        return path
    log.info("merging adapter %s into %s as %s: %s (once per machine)", adapter_id, base.name, quant, path)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".building-", suffix=".gguf", delete=False) as tmp:
        building = Path(tmp.name)
    try:
        merge_and_quantize(base, read_adapter_gguf(adapter), building, quant, n_threads=n_threads)
        card = {
            "file": path.name, "sha256": hashlib.sha256(building.read_bytes()).hexdigest(),
            "base_model": base.name, "base_model_sha256": base_sha256,
            "adapter": adapter_id, "adapter_path": str(adapter), "adapter_sha256": adapter_sha256,
            "merge": {"quantization": quant, "merge_version": MERGE_VERSION, "by": "streamer.parsing.merged",
                      "llama_cpp_python": version("llama-cpp-python"), "gguf": version("gguf")},
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        path.with_suffix(".json").write_bytes(orjson.dumps(card, option=orjson.OPT_INDENT_2) + b"\n")
        os.replace(building, path)
    finally:
        building.unlink(missing_ok=True)
    return path
