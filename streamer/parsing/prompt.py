"""Prompts, versioned. The fixed part comes first so llama.cpp reuses its KV cache.

A prompt renders, through the model's own chat template, to
`prefix + message text + suffix`; the prefix (system text and few-shot turns)
is identical for every message, so only the message's tokens and the few
suffix tokens are evaluated per message. Fine-tuning renders through the same
function, so training sees exactly what the parser sends.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from jinja2.sandbox import ImmutableSandboxedEnvironment

_FIELDS_HELP = (
    "intent: order (firm instruction), rfq (asks for a price), quote (gives a price), cancel, none (no trade). "
    "side from the sender's view: buy (buy, mine, lift, paid, bid N at), sell (sell, yours, hit, given, offer N at), "
    "two_way, or null. asset_class: fx_spot, fx_forward, fx_swap, fx_option, equity, bond, rates_swap, future, "
    "crypto, commodity. symbol, quantity, currency, price, bid, ask, tenor, counterparty: copy the exact words "
    "from the message, or null. order_type: market, limit, stop or null. multiple_trades: true if the message "
    "holds more than one trade."
)

_FEW_SHOT = [
    ("buy 10m cable 1w @ 1.2710",
     '{"intent":"order","side":"buy","asset_class":"fx_forward","symbol":"cable","quantity":"10m","currency":null,'
     '"price":"1.2710","bid":null,"ask":null,"order_type":null,"tenor":"1w","counterparty":null,"multiple_trades":false}'),
    ("2 way in 50 usdjpy 6m pls",
     '{"intent":"rfq","side":"two_way","asset_class":"fx_forward","symbol":"usdjpy","quantity":"50","currency":null,'
     '"price":null,"bid":null,"ask":null,"order_type":null,"tenor":"6m","counterparty":null,"multiple_trades":false}'),
    ("sell 200 AAPL lmt 187.5 for GS",
     '{"intent":"order","side":"sell","asset_class":"equity","symbol":"AAPL","quantity":"200","currency":null,'
     '"price":"187.5","bid":null,"ask":null,"order_type":"limit","tenor":null,"counterparty":"GS","multiple_trades":false}'),
    ("eurusd 1.0848/50",
     '{"intent":"quote","side":"two_way","asset_class":"fx_spot","symbol":"eurusd","quantity":null,"currency":null,'
     '"price":null,"bid":"1.0848","ask":"50","order_type":null,"tenor":null,"counterparty":null,"multiple_trades":false}'),
    ("cable looking heavy into the close",
     '{"intent":"none","side":null,"asset_class":null,"symbol":null,"quantity":null,"currency":null,"price":null,'
     '"bid":null,"ask":null,"order_type":null,"tenor":null,"counterparty":null,"multiple_trades":false}'),
]


@dataclass(frozen=True)
class PromptSpec:
    version: str
    system: str
    examples: tuple[tuple[str, str], ...]


PROMPTS: dict[str, PromptSpec] = {
    # For base models: instructions plus worked examples.
    "fewshot-v1": PromptSpec(
        "fewshot-v1",
        "You read one trader chat message and write its trade as JSON. " + _FIELDS_HELP,
        tuple(_FEW_SHOT),
    ),
    # For fine-tuned adapters: the format is learnt, so the prompt stays short (short training sequences).
    "tuned-v1": PromptSpec("tuned-v1", "Extract the trade from this trader chat message as JSON.", ()),
}
DEFAULT_PROMPT_VERSION = "fewshot-v1"

_CHATML = (
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
_SENTINEL = "\u0000MESSAGE\u0000"


@dataclass(frozen=True)
class RenderedPrompt:
    """The fixed text around a message: `prefix + text + suffix`."""

    version: str
    prefix: str
    suffix: str

    def render(self, text: str) -> str:
        return self.prefix + text + self.suffix


def render_prompt(spec: PromptSpec, chat_template: str | None, bos_token: str = "", eos_token: str = "") -> RenderedPrompt:
    """Render `spec` through the model's chat template (ChatML when it has none)."""
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(chat_template or _CHATML)
    messages = [{"role": "system", "content": spec.system}]
    for user, assistant in spec.examples:
        messages += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
    messages.append({"role": "user", "content": _SENTINEL})
    text = template.render(messages=messages, add_generation_prompt=True, bos_token=bos_token, eos_token=eos_token)
    prefix, sep, suffix = text.partition(_SENTINEL)
    if not sep:
        raise ValueError("chat template dropped the user message")
    return RenderedPrompt(spec.version, prefix, suffix)


@dataclass(frozen=True)
class PromptTokens:
    """A prompt as llama.cpp token ids, `prefix + message + suffix`: the one tokenization path.

    The parser evaluates exactly these ids and fine-tuning trains on exactly
    these ids (`finetune/train.py`), so the two cannot drift apart. `llm` is a
    `llama_cpp.Llama`; a vocabulary-only one (`vocab_only=True`) gives the same
    ids. The message is tokenized without special tokens, so chat text cannot
    inject control tokens.
    """

    prompt: RenderedPrompt
    prefix: list[int]
    suffix: list[int]
    llm: object = field(repr=False, compare=False)

    @classmethod
    def for_model(cls, llm, spec: PromptSpec) -> PromptTokens:
        bos = llm.detokenize([llm.token_bos()], special=True).decode(errors="ignore") if llm.token_bos() >= 0 else ""
        eos = llm.detokenize([llm.token_eos()], special=True).decode(errors="ignore") if llm.token_eos() >= 0 else ""
        prompt = render_prompt(spec, llm.metadata.get("tokenizer.chat_template"), bos, eos)
        # the template may already start with the BOS text; a second BOS token would shift every position
        add_bos = llm.metadata.get("tokenizer.ggml.add_bos_token", "true") == "true" and not (
            bos and prompt.prefix.startswith(bos)
        )
        return cls(prompt, llm.tokenize(prompt.prefix.encode(), add_bos=add_bos, special=True),
                   llm.tokenize(prompt.suffix.encode(), add_bos=False, special=True), llm)

    def message_ids(self, text: str) -> list[int]:
        return self.llm.tokenize(text.encode(), add_bos=False, special=False)

    def prompt_ids(self, text: str) -> list[int]:
        return self.prefix + self.message_ids(text) + self.suffix
