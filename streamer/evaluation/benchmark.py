"""Parser speed and memory, measured: what `streamer bench` prints (numbers, never asserted in tests)."""

from __future__ import annotations

import resource
import statistics
import time
from pathlib import Path

import orjson

from schemas import ChatMessage

SAMPLE = [
    "buy 10m cable 1w @ 1.2710", "2 way in 50 usdjpy 6m pls", "sell 200 AAPL lmt 187.5", "eurusd 1.0848/50",
    "yours 25 aussie", "cxl my eurusd order", "px on 5 btc?", "mine 3 ESZ5 at 5012.25", "morning all, cable looking bid",
    "offer 10 bucks fiber spot at 1.0855 for Citi",
]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


PREFILL_TOKENS = 256


def prefill_tokens_per_s(llm, repeats: int = 3) -> float:
    """The machine's batched prompt-evaluation rate for this model: best of `repeats` evaluations of 256 tokens.

    Measured in the same run as the parse loop, so the parse numbers can be read
    against what this CPU does with one batch; it clears the KV cache, so it runs last.
    """
    text = " ".join(SAMPLE) * 8
    tokens = llm.tokenize(text.encode(), add_bos=False, special=False)[:PREFILL_TOKENS]
    best = 0.0
    for _ in range(repeats):
        llm.reset()
        started = time.perf_counter()
        llm.eval(tokens)
        best = max(best, len(tokens) / (time.perf_counter() - started))
    llm.reset()
    return best


def load_texts(path: Path | None, n: int) -> list[ChatMessage]:
    if path is None:
        texts = [SAMPLE[i % len(SAMPLE)] for i in range(n)]
        return [ChatMessage(text=t) for t in texts]
    messages = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            data = orjson.loads(line) if line.lstrip().startswith(b"{") else {"text": line.decode()}
            messages.append(ChatMessage(text=data["text"], timestamp=data.get("timestamp")))
        if len(messages) >= n:
            break
    return messages


def run_benchmark(parser, messages: list[ChatMessage], load_s: float) -> dict[str, object]:
    """Parse `messages` in batches of `batch_max_messages`, then measure batched prefill; ordered report rows.

    Throughput is also given as a ratio to the same run's batched prefill rate
    (tokens the model evaluates per second in one 256-token batch): what this
    CPU can do with this model, so runs on different or busy machines compare.
    """
    batch = parser.settings.batch_max_messages
    decoder = parser._decoder
    checked, full = decoder.checked_tokens, decoder.full_grammar_passes
    drafted, forced, rejected = decoder.drafted_tokens, decoder.forced_tokens, decoder.rejected_draft_tokens
    latencies, evaluated, generated, kinds, errors = [], [], [], {"trade": 0, "low_confidence": 0}, 0
    wall = time.perf_counter()
    for start in range(0, len(messages), batch):
        for result in parser.parse_batch(messages[start:start + batch]):
            if isinstance(result, Exception):
                errors += 1
                continue
            kinds[result.kind] += 1
            latencies.append(result.provenance.latency_ms)
            evaluated.append(result.provenance.prompt_tokens_evaluated)
            generated.append(result.provenance.generated_tokens)
    wall = time.perf_counter() - wall
    prefill = prefill_tokens_per_s(parser.model.llm)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    checked, full = decoder.checked_tokens - checked, decoder.full_grammar_passes - full
    drafted, forced = decoder.drafted_tokens - drafted, decoder.forced_tokens - forced
    rejected = decoder.rejected_draft_tokens - rejected
    evaluated_per_s = (sum(evaluated) + sum(generated) + rejected) / wall
    n = len(messages)
    rows = {
        "model": parser.model.path.name, "adapter": parser.adapter_id or "none", "prompt": parser.prompt_version,
        "n_threads": parser.settings.n_threads or "all", "n_gpu_layers": parser.settings.n_gpu_layers,
        "cpu_extra_buffers": parser.model.extra_buffers,
        "batch_max_messages": batch,
        "messages": len(messages), "load_s": round(load_s, 2),
        "throughput_msg_s": round(len(messages) / wall, 2),
        "latency_ms_p50": round(percentile(latencies, 0.5), 1), "latency_ms_p95": round(percentile(latencies, 0.95), 1),
        "prompt_prefix_tokens": parser.prefix_token_count,
        "prompt_tokens_per_message": round(statistics.mean(evaluated), 1),
        "output_tokens_per_message": round(statistics.mean(generated), 1),
        "sampled_tokens_per_message": round((sum(generated) - drafted - forced) / n, 1),
        "forced_tokens_per_message (jump-forward, no logits)": round(forced / n, 1),
        "drafted_tokens_per_message (guessed, confirmed)": round(drafted / n, 1),
        "rejected_draft_tokens_per_message": round(rejected / n, 1),
        "max_draft_tokens": decoder.max_draft,
        "grammar_full_passes_pct": round(100 * full / checked, 2) if checked else 0.0,
        "generated_tokens_per_s": round(sum(generated) / wall, 1),
        "evaluated_tokens_per_s (prompt + output + rejected drafts)": round(evaluated_per_s, 1),
        f"prefill_tokens_per_s ({PREFILL_TOKENS} in one batch)": round(prefill),
        "ratio_to_prefill": round(evaluated_per_s / prefill, 3) if prefill else 0.0,
        "trades": kinds["trade"], "review": kinds["low_confidence"], "errors": errors,
        "peak_rss_mb": round(rss_mb, 1),
    }
    return rows
