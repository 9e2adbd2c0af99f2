"""Drafts for verified jump-forward: the output's likely continuation, checked by the model in the same decode.

Most of what the model writes is fixed by the format: the keys, quotes, colons
and commas, and `null` for the fields a message does not mention. One token per
`llama_decode` spends a whole step on each of them. So after every step the
decoder guesses the rest of the output from the template (`Draft.text`: the
current value ends here, every later field is empty) and evaluates the guess's
tokens in the same decode as the token it just chose. The model then checks the
guess position by position: a drafted token is kept only where it is exactly
what greedy, grammar-constrained decoding picks from that position's logits, and
the first position where the model picks something else gives the next token.

So the output and every token's log-probability (hence each field's confidence)
are those of plain step-by-step greedy decoding; a wrong guess costs only the
compute of its tokens. Guessing from text, rather than asking the grammar which
tokens it forces, keeps llama.cpp's full-vocabulary grammar pass out of the
loop and lets a guess run through `null` values the grammar does not force.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from pydantic import BaseModel

from streamer.parsing.grammar import Extraction, _literal_values


@dataclass(frozen=True)
class FieldShape:
    """One key of the output format: its text, its allowed literal values and its empty value."""

    key: str  # '{"intent":' for the first field, ',"side":' after
    values: tuple[str, ...]  # JSON texts of the enum or bool values, e.g. '"buy"', 'false'; () for a span
    empty: str | None  # 'null', 'false', or None when the field has no empty value (intent)


def field_shapes(model: type[BaseModel] = Extraction) -> tuple[FieldShape, ...]:
    shapes = []
    for i, (name, info) in enumerate(model.model_fields.items()):
        key = ("," if i else "{") + f'"{name}":'
        if info.annotation is bool:
            shapes.append(FieldShape(key, ("true", "false"), "false" if info.default is False else None))
            continue
        values, nullable = _literal_values(info.annotation)
        shapes.append(FieldShape(key, tuple(f'"{v}"' for v in values), "null" if nullable or not values else None))
    return tuple(shapes)


class Draft:
    """The template guess for an output prefix; `text(output)` is pure, so it is cached per output state."""

    def __init__(self, model: type[BaseModel] = Extraction):
        self.shapes = field_shapes(model)

    def next_key(self, index: int) -> str:
        """The text of field `index`'s key up to its closing quote, or the closing brace after the last field.

        The closing quote is left to the model: `":` and `":"` are different
        tokens, and which one it writes says whether the value is empty or a string.
        """
        return self.shapes[index].key[:-2] if index < len(self.shapes) else "}"

    @lru_cache(maxsize=4096)  # noqa: B019 - one Draft per decoder, and output states repeat across messages
    def guess(self, output: str) -> Guess:
        """How `output` goes on as far as the format fixes it; '' where the next text is the model's choice.

        That is: the rest of a literal value when it can only be one (forced) or
        when one value is complete (a guess), `null` or `false` (the empty value,
        a guess) right after a key whose value did not open with a quote, and then
        the next key's name (forced). `output` is a prefix of what the grammar
        admits: compact JSON, keys in order, spans without quotes, backslashes or
        braces. Inside a span there is no guess: the model decides where it ends.
        """
        pos = 0
        for index, shape in enumerate(self.shapes):
            rest = output[pos:]
            if len(rest) <= len(shape.key):
                if not shape.key.startswith(rest):
                    return NO_GUESS
                if len(rest) < len(shape.key) - 1:  # inside the key's name
                    return Guess(shape.key[len(rest):-2], 0)
                if len(rest) == len(shape.key) - 1 or not shape.empty:  # the model picks `":` or `":"`
                    return NO_GUESS
                return Guess(shape.empty + self.next_key(index + 1), len(shape.empty))
            if not rest.startswith(shape.key):
                return NO_GUESS
            pos += len(shape.key)
            rest = output[pos:]
            value = _leading_value(rest)
            if value is None:  # inside this value
                completion, forced = _completion(shape, rest)
                return Guess(completion + self.next_key(index + 1), 0 if forced else len(completion)) if completion else NO_GUESS
            if len(rest) == len(value):
                return Guess(self.next_key(index + 1), 0)
            pos += len(value)
        return NO_GUESS


class Guess(NamedTuple):
    """A draft: `text`, of which the first `checked` characters are a guess the model must confirm.

    The rest is what the grammar forces once those are right: it is appended
    without asking the model (jump-forward proper), and its tokens need no logits.
    """

    text: str
    checked: int


NO_GUESS = Guess("", 0)


def _leading_value(rest: str) -> str | None:
    """The complete JSON value `rest` starts with (a closed string or a literal), or None."""
    if rest.startswith('"'):
        end = rest.find('"', 1)
        return rest[:end + 1] if end > 0 else None
    return next((v for v in ("null", "true", "false") if rest.startswith(v)), None)


def _completion(shape: FieldShape, partial: str) -> tuple[str, bool]:
    """The rest of a literal value that starts with `partial` and whether the grammar forces it; '' if open."""
    if not partial.startswith('"'):
        candidates = dict.fromkeys(v for v in (*shape.values, shape.empty) if v and not v.startswith('"'))
        literals = [v for v in candidates if v.startswith(partial)]
    else:
        literals = [v for v in shape.values if v.startswith(partial)]
    if len(literals) == 1:
        return literals[0][len(partial):], True
    exact = partial + '"'
    return ('"', False) if exact in literals else ("", False)
