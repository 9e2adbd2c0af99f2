"""The parser: one llama.cpp model per process, grammar-constrained, KV-cached prefix.

Stages for one message: tokens = fixed prefix + message + suffix -> greedy,
grammar-constrained generation recording each token's probability -> JSON
`Extraction` -> deterministic normalization -> confidence and reasons ->
`Trade` or `LowConfidence`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from datetime import datetime, timezone

import orjson
from pydantic import ValidationError

from schemas import ChatMessage, LowConfidence, ParseResult, Provenance, Reason, SourcePosition, Trade
from streamer.parsing import confidence, rules
from streamer.parsing.batch import BatchDecoder
from streamer.parsing.grammar import EXTRACTION_FIELDS, Extraction, build_gbnf
from streamer.parsing.instructions import instruction_reasons
from streamer.parsing.limits import load_limits
from streamer.parsing.model import LoadedModel, load_model
from streamer.parsing.normalize import normalize_extraction
from streamer.parsing.prompt import DEFAULT_PROMPT_VERSION, PROMPTS, PromptTokens
from streamer.parsing.second_opinion import SecondOpinion
from streamer.settings import Settings


log = logging.getLogger(__name__)


class ParseError(RuntimeError):
    """A message the parser cannot attempt at all (e.g. longer than the context)."""


# Settings that change what the model generates; the others only change how a generation is judged.
GENERATION_SETTINGS = ("model_path", "adapter_path", "adapter_merge", "prompt_version", "n_ctx", "n_batch", "n_gpu_layers",
                       "max_tokens", "second_opinion")


class Parser:
    """Holds the model, compiled grammar and tokenized prompt prefix; reuse it.

    Not for concurrent use from several threads at once (llama.cpp contexts are
    not); calls are serialized by a lock, so give each worker thread its own
    Parser if you want parallel parsing, or (better) one process per core group.
    """

    def __init__(self, settings: Settings | None = None, model: LoadedModel | None = None):
        self.settings = settings or Settings()
        self.limits = load_limits(self.settings.limits_path)  # a bad file fails at start-up (LimitsError), first
        self.model = model or load_model(self.settings)
        llm = self.model.llm
        self.prompt_version = (
            self.settings.prompt_version or self.model.adapter_card.get("prompt_version") or DEFAULT_PROMPT_VERSION
        )
        if self.model.adapter is not None and not self.settings.prompt_version and not self.model.adapter_card:
            # an adapter copied without its card silently gets the few-shot prompt it was not trained on
            log.warning("adapter %s has no card (%s); using prompt %s, set --prompt-version if it was trained on "
                        "another", self.model.adapter, self.model.adapter.with_suffix(".json").name, self.prompt_version)
        if self.prompt_version not in PROMPTS:
            raise ValueError(f"unknown prompt version {self.prompt_version!r}; known: {', '.join(PROMPTS)}")
        self.tokens = PromptTokens.for_model(llm, PROMPTS[self.prompt_version])
        self.prompt = self.tokens.prompt
        self._lock = threading.Lock()
        self._generations: dict[str, tuple] | None = None
        adapter = self.model.adapter
        self.adapter_id = self.model.adapter_card.get("id") or (adapter.parent.name if adapter else None)
        # the fixed prefix is evaluated here, once, so even the first message reuses it
        self._decoder = BatchDecoder(llm, self.tokens.prefix, build_gbnf(), self.settings.batch_max_messages,
                                     self.settings.n_threads, self.settings.max_tokens, self.settings.n_ctx,
                                     max_draft=self.settings.max_draft_tokens)
        self.second = SecondOpinion.load(self.settings, self.model.merged_from or self.model.path)

    def close(self) -> None:
        """Free the batch contexts (a model goes with its `Llama` object)."""
        self._decoder.close()
        if self.second is not None:
            self.second.close()

    def describe(self) -> str:
        """One line for logs: model, adapter, prompt and the CPU buffer choice."""
        adapter = f"adapter {self.adapter_id}" if self.adapter_id else "no adapter"
        if self.model.merged_from:
            adapter += f" merged into {self.model.merged_from.name}"
        second = f"second opinion {self.second.adapter_id}" if self.second else "no second opinion"
        return (f"{self.model.path.name}, {adapter}, prompt {self.prompt_version}, {second}, "
                f"llama.cpp extra CPU buffer types {self.model.extra_buffers}")

    @property
    def prefix_token_count(self) -> int:
        return len(self.tokens.prefix)

    def sharing_generations(self, settings: Settings) -> Parser:
        """A parser on this one's model that reuses its generations and judges them with other settings.

        Greedy generation depends only on the model, adapter, prompt and limits, so
        configurations that differ in threshold or cross-check (streamer eval) need
        not generate again. Both parsers remember every generation from now on: for
        a fixed set of messages, not for a worker.
        """
        differ = [name for name in GENERATION_SETTINGS if getattr(settings, name) != getattr(self.settings, name)]
        if differ:
            raise ValueError(f"cannot share generations: {', '.join(differ)} differ")
        if self._generations is None:
            self._generations = {}
        twin = copy.copy(self)
        twin.settings = settings
        return twin

    def parse(self, message: ChatMessage | str, source: SourcePosition | None = None) -> ParseResult:
        """Parse one message into a `Trade`, or a `LowConfidence` with its reasons; `ParseError` if it cannot."""
        result = self.parse_batch([message], [source])[0]
        if isinstance(result, ParseError):
            raise result
        return result

    def parse_batch(self, messages: list[ChatMessage | str],
                    sources: list[SourcePosition | None] | None = None) -> list[ParseResult | ParseError]:
        """Parse messages together (up to `batch_max_messages` per llama.cpp decode), one result each, in order.

        A message the parser cannot attempt gets its `ParseError` in its place,
        so one bad message never costs the others. Each result's latency is the
        wall time of the decode group it was generated in.
        """
        messages = [ChatMessage(text=m) if isinstance(m, str) else m for m in messages]
        sources = sources or [None] * len(messages)
        results: list[ParseResult | ParseError | None] = [None] * len(messages)
        generations: dict[int, tuple] = {}
        pending: list[int] = []
        for index, message in enumerate(messages):
            remembered = self._generations.get(message.text) if self._generations is not None else None
            if remembered is not None:
                generations[index] = remembered
            else:
                pending.append(index)
        bodies: dict[int, list[int]] = {}
        second_bodies: dict[int, list[int] | None] = {}
        for index in pending:
            body = self.tokens.message_ids(messages[index].text)
            second_bodies[index] = self.second.body(messages[index].text) if self.second else None
            too_long = len(self.tokens.prefix) + len(body) + len(self.tokens.suffix) + self.settings.max_tokens > self.settings.n_ctx
            if too_long or (self.second is not None and second_bodies[index] is None):
                results[index] = ParseError(
                    f"message is {len(body)} tokens; with the prompt it exceeds n_ctx={self.settings.n_ctx}")
            else:
                bodies[index] = body + self.tokens.suffix
        if bodies:
            order = list(bodies)
            started = time.perf_counter()
            with self._lock:
                generated = self._decoder.generate([bodies[i] for i in order])
                second = (self.second.generate([second_bodies[i] for i in order]) if self.second
                          else [None] * len(order))
            latency_ms = (time.perf_counter() - started) * 1000
            for index, generation, second_output in zip(order, generated, second):
                generations[index] = (generation.output, generation.ranges, generation.logprobs, generation.evaluated,
                                      latency_ms, second_output)
                if self._generations is not None:
                    self._generations[messages[index].text] = generations[index]
        for index, (output, ranges, logprobs, evaluated, latency_ms, second_output) in generations.items():
            provenance = Provenance(
                model=self.model.path.name,
                model_sha256=self.model.sha256,
                adapter=self.adapter_id,
                prompt_version=self.prompt_version,
                latency_ms=round(latency_ms, 2),
                prompt_tokens_evaluated=evaluated,
                generated_tokens=len(ranges),
                model_version=self.settings.model_version,
                second_opinion=self.second.adapter_id if second_output is not None else None,
            )
            results[index] = self._decide(messages[index], output, ranges, logprobs, provenance, sources[index],
                                          second_output)
        return results

    # -- generation ---------------------------------------------------------------

    def _generate(self, text: str) -> tuple[bytes, list[tuple[int, int]], list[float], int]:
        """The raw model output for one message (bytes, token byte ranges, log-probabilities, tokens evaluated)."""
        body = self.tokens.message_ids(text)
        if len(self.tokens.prefix) + len(body) + len(self.tokens.suffix) + self.settings.max_tokens > self.settings.n_ctx:
            raise ParseError(f"message is {len(body)} tokens; with the prompt it exceeds n_ctx={self.settings.n_ctx}")
        with self._lock:
            [generation] = self._decoder.generate([body + self.tokens.suffix])
        return generation.output, generation.ranges, generation.logprobs, generation.evaluated

    # -- decision -----------------------------------------------------------------

    def _decide(self, message, output, ranges, logprobs, provenance, source, second_output=None) -> ParseResult:
        threshold = self.settings.confidence_threshold
        instruction = instruction_reasons(message.text)  # from the text alone: the model's reading cannot hide it
        try:
            extraction = Extraction.model_validate(orjson.loads(output))
        except (orjson.JSONDecodeError, ValidationError) as err:
            detail = str(err).splitlines()[0]
            return LowConfidence(
                message_id=message.message_id, message=message, trade=None, confidence=0.0,
                reasons=[Reason(code="invalid_model_output", detail=f"{detail}: {output[:200]!r}"), *instruction],
                provenance=provenance, source=source,
            )
        reference = (message.timestamp or datetime.now(timezone.utc)).date()
        normalized = normalize_extraction(extraction.model_dump(), message.text, reference)
        values = normalized.fields
        reasons = [Reason(code=c, field=f, detail=d) for c, f, d in normalized.reasons]
        reasons += confidence.missing_required(values["intent"], values)
        reasons += instruction
        if extraction.multiple_trades:
            reasons.append(Reason(code="multiple_trades", detail="one message holds several trades"))
        probs = confidence.span_probabilities(ranges, logprobs, confidence.value_spans(output, EXTRACTION_FIELDS))
        failed = {r.field for r in reasons if r.field}
        scores = confidence.field_confidence(values["intent"], probs, failed, normalized.derived_from)
        if self.settings.rules_cross_check:
            second = rules.second_opinion(message.text, reference)
            doubted = confidence.doubted(confidence.disagreements(values, second), values, scores,
                                         self.settings.cross_check_trust, failed, self.settings.cross_check_scope)
            for reason in doubted:
                scores[reason.field] = 0.0
            reasons += doubted
            failed |= {r.field for r in doubted}
        if second_output is not None:
            theirs = self.second.read(second_output, message.text, reference)
            if theirs is None:
                doubted = [Reason(code="models_disagree", detail=f"{self.second.adapter_id} wrote no readable output")]
            else:
                doubted = [r for r in confidence.disagreements(values, theirs, "models_disagree", self.second.adapter_id)
                           if r.field not in failed]
            for reason in doubted:
                if reason.field:
                    scores[reason.field] = 0.0
            reasons += doubted
            failed |= {r.field for r in doubted if r.field}
        if extraction.multiple_trades:
            scores["multiple_trades"] = 0.0
        reasons += confidence.low_confidence_reasons(scores, threshold, failed)
        if self.limits is not None and values["intent"] not in ("none", "cancel"):  # the parse may be right: scores stand
            reasons += [Reason(code="limit_exceeded", field=f, detail=d) for f, d in self.limits.exceeded(values)]
        overall = min(scores.values()) if scores else 0.0
        trade = Trade(
            **values, message_id=message.message_id, confidence=overall, field_confidence=scores,
            provenance=provenance, source=source,
        )
        if reasons or overall < threshold:
            return LowConfidence(
                message_id=message.message_id, message=message, trade=trade, confidence=overall,
                reasons=reasons, provenance=provenance, source=source,
            )
        return trade


