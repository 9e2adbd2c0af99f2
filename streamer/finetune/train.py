"""LoRA training with PEFT on the GGUF base model, in exactly the parser's prompt format.

transformers loads the GGUF file directly (dequantizing it to float32), so the
model trained here is the one llama.cpp runs. Sequences are tokenized with
llama.cpp's own vocabulary, piece by piece as `Parser` does (prefix, message,
suffix), so training sees the very token ids the parser sends; the target is
the compact `Extraction` JSON plus the template's end-of-turn token, and only
those tokens carry loss. Dev loss is measured as training goes and the best
adapter weights are kept. torch and friends are imported inside functions:
the runtime install does not have them.
"""

from __future__ import annotations

import math
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

from streamer.data.synth import cased
from streamer.finetune.targets import build_targets
from streamer.parsing.grammar import Extraction
from streamer.parsing.prompt import PROMPTS, PromptTokens

PROMPT_VERSION = "tuned-v1"
END_OF_TURN = "<|im_end|>"
IGNORE = -100  # label id that carries no loss (the prompt)
VARIANT_CASINGS = ("upper", "title")


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 8
    lr: float = 1e-3
    rank: int = 16
    alpha: float = 32.0
    dropout: float = 0.05
    eval_every: int = 25
    seed: int = 0
    dev_limit: int = 64
    max_seq_tokens: int = 256
    warmup_steps: int = 10
    time_limit_s: float | None = None
    # Continuing from an adapter: step 0 is that adapter, already chosen on this dev set, so its
    # loss is a reference, not a candidate (a minimum over many evaluations would stick); whether
    # the continued adapter is better is decided on held-out messages.
    start_is_candidate: bool = True
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 autocast where the hardware has bf16 matmuls, else fp32
    torch_threads: int | None = None  # None: 1 when the machine is busy, else all cores


@dataclass
class TrainResult:
    """What a run did; `history` feeds the loss curve and the model card."""

    config: dict
    device: str
    precision: str
    steps_done: int
    best_step: int
    best_dev_loss: float
    train_examples: int
    dev_examples: int
    train_seconds: float
    seconds_per_step: float
    skipped: dict[str, int]
    history: dict[str, list] = field(default_factory=lambda: {"step": [], "train_loss": [], "dev_step": [], "dev_loss": []})


def read_records(path: Path) -> list[dict]:
    """Annotated JSONL records; raises ValueError naming the first bad line (file:line)."""
    from streamer.data.manage import numbered_records

    records = []
    for number, record in numbered_records(path):
        if "text" not in record or "expected" not in record:
            raise ValueError(f"{path}:{number}: not an annotated record (needs 'text' and 'expected')")
        records.append(record)
    return records


class ParserTokens:
    """Token ids exactly as `Parser` builds them (`PromptTokens`), from llama.cpp's vocabulary (no weights loaded)."""

    def __init__(self, base_path: Path):
        from llama_cpp import Llama

        self.vocab = Llama(model_path=str(base_path), vocab_only=True, verbose=False)
        llm = self.vocab
        self.tokens = PromptTokens.for_model(llm, PROMPTS[PROMPT_VERSION])
        self.prompt, self.prefix, self.suffix = self.tokens.prompt, self.tokens.prefix, self.tokens.suffix
        end = llm.tokenize(END_OF_TURN.encode(), add_bos=False, special=True)
        self.end_of_turn = end[0] if len(end) == 1 else llm.token_eos()
        self.eos = llm.token_eos()

    def prompt_ids(self, text: str) -> list[int]:
        return self.tokens.prompt_ids(text)

    def text_ids(self, text: str) -> list[int]:
        return self.tokens.message_ids(text)

    def detokenize(self, ids: list[int]) -> str:
        return self.vocab.detokenize(ids).decode(errors="replace")

    def example(self, text: str, target_json: str) -> tuple[list[int], list[int]]:
        """(input ids, labels): loss only on the target JSON and the end-of-turn token."""
        prompt = self.prompt_ids(text)
        answer = self.text_ids(target_json) + [self.end_of_turn]
        return prompt + answer, [IGNORE] * len(prompt) + answer


def encode_records(records: list[dict], tokens: ParserTokens, max_seq_tokens: int) -> tuple[list, Counter]:
    """Training examples for annotated records, plus counted reasons for each record left out."""
    pairs, skipped = build_targets(records)
    examples, too_long = encode_pairs(pairs, tokens, max_seq_tokens)
    return examples, skipped + too_long


def encode_pairs(pairs: list[tuple[dict, Extraction]], tokens: ParserTokens,
                 max_seq_tokens: int) -> tuple[list, Counter]:
    """Training examples for (record, target) pairs; those over `max_seq_tokens` are counted as too_long."""
    examples, skipped = [], Counter()
    for record, target in pairs:
        ids, labels = tokens.example(record["text"], target.to_json_text())
        if len(ids) > max_seq_tokens:
            skipped["too_long"] += 1
            continue
        examples.append((ids, labels))
    return examples, skipped


def case_variants(records: list[dict], fraction: float, seed: int) -> tuple[list[tuple[dict, Extraction]], Counter]:
    """(record, target) for an UPPER or Title Case copy of a seeded `fraction` of `records`, and the counted skips.

    Capitalised terse lines ("SELL USDJPY 2W") lose fields that the model reads in lower case. A copy keeps
    `expected`, and its target comes from the cased text through `build_targets`, as every record's does, so
    copied spans carry the new casing. Each copy takes a seeded casing, the other one where that leaves the text
    as it was; skipped, by reason: "unchanged" (no casing changes the text) and any reason `build_targets` gives
    (a counterparty is kept as written, so a cased name no longer matches `expected`: "mismatch:counterparty").
    """
    if not 0 <= fraction <= 1:
        raise ValueError(f"case-variant fraction {fraction} is not between 0 and 1")
    rng = random.Random(seed)
    picked = sorted(rng.sample(range(len(records)), round(fraction * len(records))))
    variants, skipped = [], Counter()
    for index in picked:
        first = rng.choice(VARIANT_CASINGS)
        for casing in (first, *(c for c in VARIANT_CASINGS if c != first)):
            variant = cased_record(records[index], casing)
            if variant is not None:
                variants.append(variant)
                break
        else:
            skipped["unchanged"] += 1
    pairs, failures = build_targets(variants)
    return pairs, skipped + failures


def cased_record(record: dict, casing: str) -> dict | None:
    """`record` with its text cased, or None when the casing leaves the text as it was.

    Spans the record carries (synthetic ones) are cut from the cased text at their old offsets rather than cased
    on their own: Title Case depends on the character before a span ("(cable)" stays lower). A span not found in
    the text is dropped with the rest, so `build_targets` grounds them all in the cased text.
    """
    text = record.get("text") or ""
    new_text = cased(text, casing)
    if new_text == text:
        return None
    variant = {**record, "text": new_text}
    if "id" in record:
        variant["id"] = f"{record['id']}#{casing}"
    spans = record.get("spans")
    if isinstance(spans, dict):
        starts = {name: text.find(span) for name, span in spans.items() if span}
        if any(start < 0 for start in starts.values()):
            del variant["spans"]
        else:
            variant["spans"] = {name: new_text[starts[name]: starts[name] + len(span)] if span else span
                                for name, span in spans.items()}
    return variant


def pick_device(choice: str) -> str:
    import torch

    if choice == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if choice == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device")
    return choice


def use_bf16(precision: str, device: str) -> bool:
    """bf16 autocast: measured 8 s vs 11 s per batch-8 step on this 2-core EPYC (avx512_bf16), same loss."""
    import torch

    if precision != "auto":
        return precision == "bf16"
    if device == "cuda":
        return torch.cuda.is_bf16_supported()
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def set_torch_threads(threads: int | None) -> int:
    """Threads for PyTorch on CPU: by default all cores but one (at least one).

    OpenMP threads spin against other processes: on this shared 2-core machine a
    batch-8 step took 9.8 s with one thread (load ~6) but 25.5 s with two (load ~4),
    and a run that picked two threads while the machine was idle got 96 steps
    done in 40 minutes instead of 220 in 36.
    """
    import os

    import torch

    if threads is None:
        threads = max(1, (os.cpu_count() or 1) - 1)
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def load_base_model(base_path: Path, device: str = "cpu"):
    """The GGUF base as a float32 transformers model (dequantized by transformers' GGUF loader)."""
    import torch
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    model = AutoModelForCausalLM.from_pretrained(str(base_path.parent), gguf_file=base_path.name, dtype=torch.float32)
    return model.to(device)


def add_lora(model, config: TrainConfig):
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.rank, lora_alpha=config.alpha, lora_dropout=config.dropout,
        target_modules="all-linear", task_type="CAUSAL_LM", bias="none",
    )
    return get_peft_model(model, lora)


def _batch(examples, pad_id: int, device: str):
    import torch

    width = max(len(ids) for ids, _ in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, (x, y) in enumerate(examples):
        ids[row, : len(x)] = torch.tensor(x)
        labels[row, : len(y)] = torch.tensor(y)
        mask[row, : len(x)] = 1
    return ids.to(device), labels.to(device), mask.to(device)


def _answer_loss(model, examples, pad_id: int, device: str):
    """Mean cross-entropy over answer tokens of the batch (sum / count, so batches weigh by tokens)."""
    import torch.nn.functional as F

    ids, labels, mask = _batch(examples, pad_id, device)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    target = labels[:, 1:]
    total = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1), ignore_index=IGNORE, reduction="sum")
    return total, int((target != IGNORE).sum())


def dev_loss(model, examples, batch_size: int, pad_id: int, device: str, bf16: bool = False) -> float:
    import torch

    model.eval()
    total, count = 0.0, 0
    with torch.no_grad(), torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
        for i in range(0, len(examples), batch_size):
            loss, n = _answer_loss(model, examples[i: i + batch_size], pad_id, device)
            total, count = total + float(loss), count + n
    model.train()
    return total / max(count, 1)


def _trainable_state(model) -> dict:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def train_lora(model, train_examples, dev_examples, config: TrainConfig, device: str, progress=None) -> TrainResult:
    """Train LoRA weights in place; on return the model holds the best-on-dev weights."""
    import torch

    torch.manual_seed(config.seed)
    rng = random.Random(config.seed)
    pad_id = 0
    dev = dev_examples[: config.dev_limit] if config.dev_limit else dev_examples
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=config.lr, weight_decay=0.0)

    def lr_at(step: int) -> float:
        """Linear warm-up, then cosine decay to 10% over whichever budget (steps or --time-limit) ends first."""
        if step < config.warmup_steps:
            return (step + 1) / config.warmup_steps
        progress_frac = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
        if config.time_limit_s:
            progress_frac = max(progress_frac, (time.perf_counter() - started) / config.time_limit_s)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress_frac)))

    started = time.perf_counter()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_at)
    bf16 = use_bf16(config.precision, device)
    result = TrainResult(
        config=asdict(config), device=device, precision="bf16-autocast" if bf16 else "fp32", steps_done=0, best_step=0, best_dev_loss=float("inf"),
        train_examples=len(train_examples), dev_examples=len(dev), train_seconds=0.0, seconds_per_step=0.0, skipped={},
    )
    order: list[int] = []
    best_state = None
    task = progress.add_task("training", total=config.steps, loss="", dev="") if progress else None
    model.train()

    def evaluate(step: int) -> None:
        nonlocal best_state
        if not dev:
            return
        loss = dev_loss(model, dev, config.batch_size, pad_id, device, bf16)
        result.history["dev_step"].append(step)
        result.history["dev_loss"].append(loss)
        if loss < result.best_dev_loss and (step > 0 or config.start_is_candidate):
            result.best_dev_loss, result.best_step, best_state = loss, step, _trainable_state(model)
        if progress:
            best = f"{result.best_dev_loss:.4f} @ {result.best_step}" if best_state is not None else "none yet"
            progress.update(task, dev=f"dev {loss:.4f} (best {best})")
            if not progress.console.is_terminal:  # logs and CI: a line per evaluation instead of a live bar
                recent = result.history["train_loss"][-config.eval_every:]
                train = f"train loss {sum(recent) / len(recent):.4f}, " if recent else ""
                progress.console.print(
                    f"step {step}/{config.steps}: {train}dev loss {loss:.4f} (best {best}), "
                    f"{time.perf_counter() - started:.0f} s", highlight=False)

    evaluate(0)
    for step in range(1, config.steps + 1):
        if len(order) < config.batch_size:
            fresh = list(range(len(train_examples)))
            rng.shuffle(fresh)
            order += fresh
        batch = [train_examples[i] for i in order[: config.batch_size]]
        del order[: config.batch_size]
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=bf16):
            loss_sum, count = _answer_loss(model, batch, pad_id, device)
        loss = loss_sum / max(count, 1)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        result.steps_done = step
        result.history["step"].append(step)
        result.history["train_loss"].append(float(loss.detach()))
        if progress:
            progress.update(task, completed=step, loss=f"loss {float(loss.detach()):.4f}")
        out_of_time = config.time_limit_s is not None and time.perf_counter() - started > config.time_limit_s
        if step % config.eval_every == 0 or step == config.steps or out_of_time:
            evaluate(step)
        if out_of_time:
            break
    result.train_seconds = time.perf_counter() - started
    result.seconds_per_step = result.train_seconds / max(1, result.steps_done)
    if best_state is not None:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if name in best_state:
                    p.copy_(best_state[name])
    model.eval()
    return result


def plot_loss_curve(result: TrainResult, path: Path) -> None:
    """Training loss (raw and smoothed) and dev loss per step, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps, losses = result.history["step"], result.history["train_loss"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    if steps:
        ax.plot(steps, losses, color="#9ecae1", linewidth=0.8, label="train (per step)")
        window = max(1, len(losses) // 25)
        smooth = [sum(losses[max(0, i - window + 1): i + 1]) / len(losses[max(0, i - window + 1): i + 1]) for i in range(len(losses))]
        ax.plot(steps, smooth, color="#3182bd", linewidth=1.6, label=f"train (mean of {window})")
    if result.history["dev_step"]:
        ax.plot(result.history["dev_step"], result.history["dev_loss"], "o-", color="#e6550d", label="dev")
        ax.axvline(result.best_step, color="#e6550d", linestyle=":", linewidth=1, label=f"best (step {result.best_step})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("answer-token cross-entropy")
    ax.set_title("LoRA fine-tune: loss on the Extraction JSON tokens")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def perplexity(model, token_lists: list[list[int]], device: str) -> float:
    """Per-token perplexity of `model` over independent sequences (the forgetting check)."""
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for ids in token_lists:
            if len(ids) < 2:
                continue
            x = torch.tensor([ids], device=device)
            logits = model(input_ids=x).logits[0, :-1]
            total += float(F.cross_entropy(logits.float(), x[0, 1:], reduction="sum"))
            count += len(ids) - 1
    return math.exp(total / max(count, 1))


def english_sample() -> list[str]:
    path = Path(__file__).with_name("english_sample.txt")
    return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def forgetting_check(peft_model, tokens: ParserTokens, device: str) -> dict[str, float]:
    """Perplexity on plain English with the adapter disabled (base) and enabled (tuned)."""
    sample = [tokens.text_ids(s) for s in english_sample()]
    with peft_model.disable_adapter():
        before = perplexity(peft_model, sample, device)
    after = perplexity(peft_model, sample, device)
    return {"base": round(before, 3), "tuned": round(after, 3), "sentences": len(sample)}
