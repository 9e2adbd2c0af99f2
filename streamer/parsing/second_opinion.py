"""A second adapter that reads every message too: where the two read a field differently, a person looks.

A small model's token probabilities are over-confident on its systematic
mistakes, and the rule-based cross-check, right less often than the model,
mostly flags right answers when it disagrees on a value. A second adapter,
trained on the same contract but to a different point, makes many of its
mistakes elsewhere: on the development sets, flagging the fields the two read
differently halved the silent errors (docs/evaluation.md, "Second opinion").
It runs on the same base model and decodes with the same batch decoder, its own
prompt (from its card) and its own KV cache; the cost is a second generation
per message.
"""

from __future__ import annotations

import logging
from datetime import date
from pathlib import Path

import orjson
from pydantic import ValidationError

from streamer.parsing.batch import BatchDecoder
from streamer.parsing.grammar import Extraction, build_gbnf
from streamer.parsing.model import LoadedModel, check_gguf, load_model, resolve_second_opinion_path
from streamer.parsing.normalize import normalize_extraction
from streamer.parsing.prompt import DEFAULT_PROMPT_VERSION, PROMPTS, PromptTokens
from streamer.settings import Settings

log = logging.getLogger(__name__)


class SecondOpinion:
    """The second adapter's model, prompt and decoder; `read` turns its output into contract fields."""

    def __init__(self, settings: Settings, model: LoadedModel):
        self.model = model
        card = model.adapter_card
        self.adapter_id = card.get("id") or (model.adapter.parent.name if model.adapter else "second")
        self.prompt_version = card.get("prompt_version") or DEFAULT_PROMPT_VERSION
        if self.prompt_version not in PROMPTS:
            raise ValueError(f"second opinion {self.adapter_id}: unknown prompt version {self.prompt_version!r}")
        self.tokens = PromptTokens.for_model(model.llm, PROMPTS[self.prompt_version])
        self.decoder = BatchDecoder(model.llm, self.tokens.prefix, build_gbnf(), settings.batch_max_messages,
                                    settings.n_threads, settings.max_tokens, settings.n_ctx,
                                    max_draft=settings.max_draft_tokens)

    @classmethod
    def load(cls, settings: Settings, model_path: Path) -> SecondOpinion | None:
        """The configured second opinion on `model_path`, or None when there is none (a bad file: ModelLoadError)."""
        adapter = resolve_second_opinion_path(settings, model_path)
        if adapter is None:
            return None
        check_gguf(adapter, "second-opinion adapter")
        model = load_model(settings.model_copy(update={"adapter_path": str(adapter), "model_path": model_path}))
        return cls(settings, model)

    def body(self, text: str) -> list[int] | None:
        """The tokens to decode for `text` (message + prompt suffix), or None when they do not fit the context."""
        body = self.tokens.message_ids(text) + self.tokens.suffix
        fits = len(self.tokens.prefix) + len(body) + self.decoder.max_tokens <= self.decoder.n_ctx_per_message
        return body if fits else None

    def generate(self, bodies: list[list[int]]) -> list[bytes]:
        """The second adapter's raw output for each body (from `body`), in order."""
        return [generation.output for generation in self.decoder.generate(bodies)]

    @staticmethod
    def read(output: bytes, text: str, reference: date) -> dict[str, object] | None:
        """Contract fields from the second adapter's output (the same normalizer as the main one); None if unreadable."""
        try:
            extraction = Extraction.model_validate(orjson.loads(output))
        except (orjson.JSONDecodeError, ValidationError):
            return None
        return normalize_extraction(extraction.model_dump(), text, reference).fields

    def close(self) -> None:
        self.decoder.close()
