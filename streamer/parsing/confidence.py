"""How sure the parser is, and why not: token probabilities plus validation.

Each contract field gets the lowest model probability among the tokens that
chose its value (an enum, a copied span or `null`). Validation problems from
the normalizer (ungrounded spans, unknown pairs, unparseable values), fields an
intent requires but lacks, and several trades in one message are named
reasons; a field with a problem scores 0. The overall confidence is the lowest
field score, and anything under the threshold, or with a reason, goes to review.
A second opinion (the rule-based parser) that reads a field differently is a
problem too (`rules_disagree`): token probabilities of a small model are
over-confident on its systematic mistakes, and the rules make different ones.
By default only omissions count (the rules find a value the model left empty):
where both read a value, or only the model does, the rules are more often the
ones missing a phrasing (docs/evaluation.md). An optional trust level lets a
near-certain model overrule the rules.
"""

from __future__ import annotations

import math
from typing import Mapping

from schemas import CONTRACT_FIELDS, Reason
from streamer.settings import CrossCheckScope

# What an intent needs before a trade is actionable.
REQUIRED_FIELDS: dict[str, tuple[str, ...]] = {
    "order": ("side", "asset_class", "symbol", "quantity"),
    "rfq": ("side", "asset_class", "symbol"),
    "quote": ("side", "asset_class", "symbol"),
    "cancel": (),
    "none": (),
}

# Contract fields whose value comes from another extraction field.
_DERIVED_FROM = {"currency": ("currency", "symbol", "quantity")}


def value_spans(output: bytes, keys: tuple[str, ...]) -> dict[str, tuple[int, int]]:
    """Byte range of each key's value in the compact JSON the grammar produces.

    The range starts at the value's first byte (the opening quote, or the `n` of
    null), which is where the model made its choice.
    """
    spans: dict[str, tuple[int, int]] = {}
    for i, key in enumerate(keys):
        marker = f'"{key}":'.encode()
        start = output.find(marker)
        if start < 0:
            continue
        start += len(marker)
        if i + 1 < len(keys):
            end = output.find(f',"{keys[i + 1]}":'.encode(), start)
        else:
            end = output.rfind(b"}")
        spans[key] = (start, end if end >= 0 else len(output))
    return spans


def span_probabilities(
    token_ranges: list[tuple[int, int]], token_logprobs: list[float], spans: dict[str, tuple[int, int]]
) -> dict[str, float]:
    """Lowest token probability overlapping each value range."""
    probs: dict[str, float] = {}
    for key, (start, end) in spans.items():
        lowest = 0.0
        for (t0, t1), lp in zip(token_ranges, token_logprobs):
            if t1 > start and t0 < max(end, start + 1):
                lowest = min(lowest, lp)
        probs[key] = math.exp(lowest)
    return probs


def field_confidence(
    intent: str, extraction_probs: dict[str, float], failed_fields: set[str],
    derived_from: dict[str, tuple[str, ...]] | None = None,
) -> dict[str, float]:
    """Per contract field; `none` messages are scored on the intent alone.

    A field the normalizer decided from other fields (FX asset class from the
    pair, spot/forward from the tenor) scores the tokens of those fields.
    """
    fields = ("intent",) if intent == "none" else CONTRACT_FIELDS
    sources_of = {**_DERIVED_FROM, **(derived_from or {})}
    scores: dict[str, float] = {}
    for name in fields:
        sources = sources_of.get(name, (name,))
        known = [extraction_probs[s] for s in sources if s in extraction_probs]
        score = min(known) if known else 0.0
        scores[name] = 0.0 if name in failed_fields else round(score, 4)
    return scores


def missing_required(intent: str, values: dict[str, object]) -> list[Reason]:
    """Fields the intent needs; a roll (an FX swap with no direction) has no side by convention."""
    reasons = [
        Reason(code="missing_required_field", field=name, detail=f"{intent} needs {name}")
        for name in REQUIRED_FIELDS.get(intent, ())
        if values.get(name) is None and not (name == "side" and values.get("asset_class") == "fx_swap")
    ]
    if intent == "quote" and values.get("price") is None and values.get("bid") is None and values.get("ask") is None:
        reasons.append(Reason(code="missing_required_field", field="price", detail="quote needs a price or bid/ask"))
    return reasons


def low_confidence_reasons(scores: dict[str, float], threshold: float, already: set[str]) -> list[Reason]:
    return [
        Reason(code="low_confidence", field=name, detail=f"p={score:.2f} < {threshold:.2f}")
        for name, score in scores.items()
        if score < threshold and name not in already
    ]


def doubted(disagreements: list[Reason], values: Mapping[str, object], scores: Mapping[str, float],
            trust: float | None, already: set[str], scope: CrossCheckScope = "omissions") -> list[Reason]:
    """The disagreements that count: omissions or all of them, and (with a `trust`) fields the model is less sure of.

    An omission (the model left a field empty that the rules fill) is more
    often a real error than any other disagreement, where the rules are often
    the ones missing a phrasing the model knows; a trust level trades silent
    errors for fewer flags. The measurements: docs/evaluation.md.
    A field that already failed keeps its first reason.
    """
    return [r for r in disagreements
            if r.field not in already
            and (scope == "all" or values.get(r.field) is None)  # intent is never empty, so never an omission
            and (trust is None or scores.get(r.field, 0.0) < trust)]


def same_value(a: object, b: object) -> bool:
    """Contract values equal: numbers within a relative 1e-9 (1.2710 == 1.271), anything else exactly."""
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def disagreements(values: Mapping[str, object], second: Mapping[str, object], code: str = "rules_disagree",
                  who: str = "rules") -> list[Reason]:
    """A `code` reason per field the second opinion (`who`) reads differently; a different intent is one reason."""
    def reason(name: str) -> Reason:
        return Reason(code=code, field=name, detail=f"model {values.get(name)!r}, {who} {second.get(name)!r}")

    if values.get("intent") != second.get("intent"):
        return [reason("intent")]
    return [reason(name) for name in CONTRACT_FIELDS if not same_value(values.get(name), second.get(name))]
