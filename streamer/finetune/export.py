"""PEFT LoRA -> llama.cpp: a GGUF LoRA adapter, a merged quantized GGUF, and a parity check.

llama.cpp's converter stores Llama `attn_q`/`attn_k` weights with the rows of
each head interleaved differently from Hugging Face (`LlamaModel.permute` in
convert_hf_to_gguf.py), and transformers' GGUF loader undoes that on load. The
adapter was trained against the Hugging Face layout, so the output rows of the
q/k deltas, i.e. `lora_b`, get the same permutation here (as llama.cpp's
convert_lora_to_gguf.py does); `lora_a` acts on the input side and is left as is.
`check_parity` is what proves this: the parser (llama.cpp base + adapter) and
the PyTorch model must write the same Extraction.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from streamer.parsing.grammar import Extraction
from streamer.parsing.merged import (  # noqa: F401 - re-exported: the export's half of the merge
    QUANT_TYPES, LoraWeights, MergeError, merge_and_quantize, read_adapter_gguf,
)

# Hugging Face Llama module -> llama.cpp tensor name (blk.N.<name>.weight)
GGUF_NAMES = {
    "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k", "self_attn.v_proj": "attn_v",
    "self_attn.o_proj": "attn_output", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up", "mlp.down_proj": "ffn_down",
}
_PEFT_KEY = re.compile(r"(?:^|\.)layers\.(\d+)\.(self_attn\.[qkvo]_proj|mlp\.(?:gate|up|down)_proj)\.lora_([AB])(?:\.[^.]+)?\.weight$")


class ExportError(MergeError):
    """An adapter that cannot be written for llama.cpp (unknown layer, wrong architecture)."""


def permute_rows(weights, n_head: int, inverse: bool = False):
    """Hugging Face -> llama.cpp row order of a q/k projection (LlamaModel.permute), or back; numpy or torch."""
    shape = weights.shape
    half = shape[0] // n_head // 2
    split = (n_head, half, 2) if inverse else (n_head, 2, half)
    return weights.reshape(*split, *shape[1:]).swapaxes(1, 2).reshape(shape)


def _row_heads(name: str, config) -> int | None:
    """The head count a LoRA B of this llama.cpp tensor is permuted by: q by attention heads, k by kv heads."""
    if ".attn_q." in name:
        return config.num_attention_heads
    if ".attn_k." in name:
        return config.num_key_value_heads
    return None


def _gguf_name(peft_key: re.Match) -> str:
    return f"blk.{peft_key[1]}.{GGUF_NAMES[peft_key[2]]}.weight"


def lora_weights(peft_model) -> LoraWeights:
    """Collect the active adapter's A/B matrices from a PEFT model, renamed and permuted for llama.cpp."""
    from peft import get_peft_model_state_dict

    config = peft_model.peft_config[peft_model.active_adapter]
    base_config = peft_model.get_base_model().config
    if base_config.model_type != "llama":
        raise ExportError(f"only Llama-architecture models are supported, not {base_config.model_type!r}")
    halves: dict[str, dict[str, object]] = {}
    for key, tensor in get_peft_model_state_dict(peft_model).items():
        m = _PEFT_KEY.search(key)
        if not m:
            raise ExportError(f"adapter tensor {key!r} is not on a Llama linear layer llama.cpp can patch")
        halves.setdefault(_gguf_name(m), {})[m[3]] = tensor.detach().float().cpu().numpy()
    pairs = {}
    for name, ab in halves.items():
        heads = _row_heads(name, base_config)
        pairs[name] = (ab["A"], permute_rows(ab["B"], heads) if heads else ab["B"])
    return LoraWeights(alpha=float(config.lora_alpha), rank=int(config.r), pairs=pairs)


def load_lora_weights(peft_model, weights: LoraWeights) -> None:
    """Set a PEFT model's LoRA matrices from an adapter file's (the inverse of `lora_weights`).

    This is how training continues from a shipped adapter: new hand lines cost
    an hour on top of it rather than a full run from fresh weights.
    """
    import torch

    config = peft_model.peft_config[peft_model.active_adapter]
    if int(config.r) != weights.rank:
        raise ExportError(f"the adapter has rank {weights.rank}, the model {config.r}: pass --rank {weights.rank}")
    base_config = peft_model.get_base_model().config
    missing = set(weights.pairs)
    with torch.no_grad():
        for key, parameter in peft_model.named_parameters():
            m = _PEFT_KEY.search(key)
            if not m:
                continue
            name = _gguf_name(m)
            if name not in weights.pairs:
                raise ExportError(f"the adapter has no {name} for {key}")
            a, b = weights.pairs[name]
            heads = _row_heads(name, base_config)
            if m[3] == "B" and heads:
                b = permute_rows(b, heads, inverse=True)
            value = torch.as_tensor(a if m[3] == "A" else b, dtype=parameter.dtype)
            if value.shape != parameter.shape:
                raise ExportError(f"{name}.lora_{m[3].lower()} is {tuple(value.shape)}, the model wants {tuple(parameter.shape)}")
            parameter.copy_(value)
            missing.discard(name)
    if missing:
        raise ExportError(f"the model has no layer for {len(missing)} adapter tensors, e.g. {sorted(missing)[0]}")


def write_adapter_gguf(weights: LoraWeights, path: Path, base_name: str, dtype: str = "f16") -> None:
    """The llama.cpp LoRA adapter file: general.type=adapter, adapter.type=lora, alpha, `<tensor>.lora_a/.lora_b`."""
    import gguf
    import numpy as np

    np_type = {"f16": np.float16, "f32": np.float32}[dtype]
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, weights.alpha)
    writer.add_name(f"LoRA for {base_name}")
    for name in sorted(weights.pairs, key=_tensor_order):
        a, b = weights.pairs[name]
        # numpy [r, in] is GGUF ne [in, r] and [out, r] is ne [r, out]: what llama.cpp's loader checks against the base.
        writer.add_tensor(name + ".lora_a", np.ascontiguousarray(a, dtype=np_type))
        writer.add_tensor(name + ".lora_b", np.ascontiguousarray(b, dtype=np_type))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def _tensor_order(name: str) -> tuple[int, str]:
    m = re.match(r"blk\.(\d+)\.(.*)", name)
    return (int(m[1]), m[2]) if m else (-1, name)


# --- parity ------------------------------------------------------------------------


# llama.cpp multiplies Q4_1 weights with 8-bit-rounded activations, so its log-probabilities differ from
# PyTorch's by up to ~0.3 (measured: 0.11-0.30 on correct exports, 3.5 with the q/k permutation missing).
# A greedy choice PyTorch makes by less than this margin may legitimately flip.
NEAR_TIE_MARGIN = 0.5
EXPORT_ERROR_LOGPROB_DIFF = 1.0


@dataclass
class ParityResult:
    """PyTorch (model + LoRA) against llama.cpp (base + GGUF adapter) on the same messages."""

    messages: list[dict] = field(default_factory=list)  # text, torch, parser, torch_valid, same, flip_margins
    teacher_forced_top1: float = 0.0  # share of answer positions where both pick the same next token
    teacher_forced_max_logprob_diff: float = 0.0

    @property
    def near_ties(self) -> int:
        """Differing messages whose every flipped token was a PyTorch near-tie (within quantization noise)."""
        return sum(1 for m in self.messages if not m["same"] and m["torch_valid"] and m["flip_margins"]
                   and max(m["flip_margins"]) < NEAR_TIE_MARGIN)

    @property
    def ok(self) -> bool:
        """Same Extraction on every message, except near-ties; and log-probabilities within quantization noise."""
        differing = sum(1 for m in self.messages if not m["same"])
        return differing == self.near_ties and self.teacher_forced_max_logprob_diff < EXPORT_ERROR_LOGPROB_DIFF

    def as_dict(self) -> dict:
        return {
            "messages": len(self.messages), "same_extraction": sum(m["same"] for m in self.messages),
            "near_ties": self.near_ties,
            "teacher_forced_top1_agreement": round(self.teacher_forced_top1, 4),
            "teacher_forced_max_logprob_diff": round(self.teacher_forced_max_logprob_diff, 4),
        }


def torch_extraction_text(peft_model, tokens, text: str, max_new_tokens: int = 160) -> tuple[str, list[int]]:
    """Greedy, unconstrained PyTorch decoding up to the first '}' (where the parser stops too)."""
    import torch

    ids = tokens.prompt_ids(text)
    x = torch.tensor([ids], device=peft_model.device)
    generated: list[int] = []
    out = ""
    past = None
    with torch.no_grad():
        for _ in range(max_new_tokens):
            result = peft_model(input_ids=x, past_key_values=past, use_cache=True)
            past = result.past_key_values
            token = int(result.logits[0, -1].argmax())
            if token in (tokens.eos, tokens.end_of_turn):
                break
            generated.append(token)
            piece = tokens.detokenize([token])
            out += piece
            if "}" in piece:
                break
            x = torch.tensor([[token]], device=peft_model.device)
    return out, generated


def _canonical(output: str | bytes) -> str | None:
    import orjson
    from pydantic import ValidationError

    try:
        return Extraction.model_validate(orjson.loads(output)).to_json_text()
    except (orjson.JSONDecodeError, ValidationError):
        return None


def check_parity(peft_model, tokens, base_path: Path, adapter_path: Path, texts: list[str], n_threads: int | None = None) -> ParityResult:
    """Do the parser (llama.cpp + GGUF adapter) and PyTorch (+ LoRA) write the same Extraction?

    Two views: the greedy Extraction JSON for each message (must be equal, unless
    the token that flipped was a near-tie for PyTorch itself: `NEAR_TIE_MARGIN`),
    and a teacher-forced comparison over the PyTorch answer tokens (share of
    positions where both models' top token agrees, and the largest
    log-probability gap), which exposes an export error even when greedy outputs
    happen to agree.
    """
    import numpy as np
    import torch

    from streamer.parsing import Parser
    from streamer.parsing.model import open_llama
    from streamer.settings import Settings

    result = ParityResult()
    settings = Settings(model_path=base_path, adapter_path=str(adapter_path), n_threads=n_threads, prompt_version=None,
                        second_opinion="none")  # parity compares one adapter's raw output with torch's
    parser = Parser(settings)
    sequences = []
    for text in texts:
        torch_text, generated = torch_extraction_text(peft_model, tokens, text)
        parser_raw = parser._generate(text)[0]  # raw model output: what the grammar let llama.cpp write
        torch_json, parser_json = _canonical(torch_text), _canonical(parser_raw)
        result.messages.append({
            "text": text, "torch": torch_json or torch_text, "parser": parser_json or parser_raw.decode(errors="replace"),
            "torch_valid": torch_json is not None, "same": torch_json is not None and torch_json == parser_json,
        })
        sequences.append((tokens.prompt_ids(text), generated))
    del parser

    llm, _ = open_llama(base_path, lora_path=str(adapter_path), n_ctx=1024, n_threads=n_threads,
                        logits_all=True, verbose=False, seed=0)
    agree, total, worst = 0, 0, 0.0
    for message, (prompt, generated) in zip(result.messages, sequences):
        ids = prompt + generated
        message["flip_margins"] = []
        if not generated:
            continue
        llm.reset()
        llm.eval(ids)
        cpp = np.array(llm.scores[len(prompt) - 1: len(ids) - 1], dtype=np.float64)
        with torch.no_grad():
            logits = peft_model(input_ids=torch.tensor([ids], device=peft_model.device)).logits[0]
        pt = logits[len(prompt) - 1: len(ids) - 1].double().cpu().numpy()
        cpp_lp = cpp - np.logaddexp.reduce(cpp, axis=1, keepdims=True)
        pt_lp = pt - np.logaddexp.reduce(pt, axis=1, keepdims=True)
        rows = np.arange(len(generated))
        flipped = cpp.argmax(1) != pt.argmax(1)
        top2 = np.sort(pt_lp, axis=1)[:, -2:]
        message["flip_margins"] = [round(float(m), 4) for m in (top2[:, 1] - top2[:, 0])[flipped]]
        agree += int((~flipped).sum())
        total += len(generated)
        worst = max(worst, float(np.abs(cpp_lp[rows, generated] - pt_lp[rows, generated]).max()))
    llm.close()
    result.teacher_forced_top1 = agree / total if total else 0.0
    result.teacher_forced_max_logprob_diff = worst
    return result
