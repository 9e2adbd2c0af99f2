"""The model's output format and the GBNF grammar derived from it.

`Extraction` is what the model writes: enum fields chosen from the contract's
values and verbatim spans copied from the message. The grammar is generated
from this model once, at start-up, so llama.cpp can only sample valid JSON in
exactly this key order with no whitespace (fewer tokens, fixed layout, which
lets `confidence.py` find each value's tokens).
"""

from __future__ import annotations

from typing import Literal, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field

from schemas import AssetClass, Intent, OrderType, Side

SPAN_MAX_CHARS = 48
Span = str  # a verbatim piece of the message


class Extraction(BaseModel):
    """Raw model output; key order here is the generation order."""

    model_config = ConfigDict(extra="forbid")

    intent: Intent
    side: Side | None = None
    asset_class: AssetClass | None = None
    symbol: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    quantity: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    currency: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    price: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    bid: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    ask: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    order_type: OrderType | None = None
    tenor: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    counterparty: Span | None = Field(default=None, max_length=SPAN_MAX_CHARS)
    multiple_trades: bool = False

    def to_json_text(self) -> str:
        """The exact text the grammar admits for this extraction (training targets)."""
        import orjson

        return orjson.dumps(self.model_dump(mode="json")).decode()


EXTRACTION_FIELDS: tuple[str, ...] = tuple(Extraction.model_fields)


def _literal_values(annotation) -> tuple[tuple[str, ...], bool]:
    """Enum values of `Literal[...] | None` and whether null is allowed."""
    values: list[str] = []
    nullable = False
    for arg in get_args(annotation) or (annotation,):
        if arg is type(None):
            nullable = True
        elif get_origin(arg) is Literal:
            values.extend(get_args(arg))
    if get_origin(annotation) is Literal:
        values = list(get_args(annotation))
    return tuple(values), nullable


def build_gbnf(model: type[BaseModel] = Extraction) -> str:
    """GBNF for `model`: one rule per field, compact JSON, spans as bounded strings."""
    rules: dict[str, str] = {}
    parts: list[str] = []
    for i, (name, info) in enumerate(model.model_fields.items()):
        sep = '"," ' if i else ""
        rule = name.replace("_", "-")
        annotation = info.annotation
        if annotation is bool:
            rules[rule] = '"true" | "false"'
        else:
            values, nullable = _literal_values(annotation)
            if values:
                alts = " | ".join(f'"\\"{v}\\""' for v in values)
                rules[rule] = f"{alts} | \"null\"" if nullable else alts
            else:
                rules[rule] = "span"
        parts.append(f'{sep}"\\"{name}\\":" {rule}')
    lines = ['root ::= "{" ' + " ".join(parts) + ' "}"']
    lines += [f"{rule} ::= {body}" for rule, body in rules.items() if body != "span"]
    lines += [
        f'span ::= "\\"" char{{1,{SPAN_MAX_CHARS}}} "\\"" | "null"',
        'char ::= [^"\\\\{}\\x00-\\x1f]',
    ]
    for rule in rules:
        if rules[rule] == "span":
            lines.append(f"{rule} ::= span")
    return "\n".join(lines) + "\n"
