"""Scoring parser results against manual annotations: fields, messages, flags, calibration, speed.

Field matching (is one field of one message right?):
- numbers are equal within a relative 1e-9 (`math.isclose(rel_tol=1e-9, abs_tol=0)`),
  so 1.2710 == 1.271 and 10000000 == 1e7;
- strings are equal exactly, case included: gold is written in contract form and
  predictions come out of `streamer.parsing.normalize`, so no further folding;
- null equals null;
- a field absent from an example's `expected` is not scored for that example (it is
  in no count, no denominator).

Per field a "positive" is a non-null value:
- TP: predicted non-null and equal to a non-null gold value;
- FP: predicted non-null and gold null or different;
- FN: gold non-null and predicted null or different;
- TN: both null.
A wrong non-null value is therefore one FP and one FN. precision = TP/(TP+FP),
recall = TP/(TP+FN), F1 = 2TP/(2TP+FP+FN), accuracy = (TP+TN)/scored; each is
None when its denominator is 0. Micro scores sum TP/FP/FN over all fields;
macro F1 is the mean of the defined per-field F1s.

Per message:
- valid output: the parser returned a readable trade (a `Trade`, or a
  `LowConfidence` carrying one). Otherwise every field counts as predicted null
  and the message is never an exact match.
- exact match: every annotated field right.
- flagged: the result went to review (`LowConfidence`). A flag is deserved when
  the message is not an exact match, or gold marks it `ambiguous` or
  `multiple_trades` (the parser is meant to send those to review whatever it
  extracted). flag precision = deserved flags / flags; flag recall = deserved
  flags / messages deserving a flag; silent error rate = messages published as a
  `Trade` that are not exact matches / all messages (the costly failure).
- calibration: the result's confidence against exact-match correctness; 10 equal
  bins over [0, 1] (the last one includes 1.0); ECE = sum over bins of
  n_bin/N * |accuracy_bin - mean confidence_bin|. Messages with no result (a
  `ParseError`) have no confidence and are left out.
- threshold sweep: the flag numbers had `confidence_threshold` been t instead,
  for t = 0.0, 0.1, ..., 0.9. At t a message goes to review when it was flagged
  for a named reason other than low confidence (those do not depend on t), or
  had no result, or its confidence is below t: the parser's own rule.
- review for the silent target: the least flag rate that keeps silent errors at
  or under 0.5% of messages (issue 18's precision target), found over the same
  rule as the sweep at every threshold that changes a decision (just above each
  message's confidence); reported with that threshold. It says what review rate
  the target would cost with this configuration's confidence.
- by tag: for each of the gold lines' `tags`, exact match, flag rate and silent
  errors over the lines that carry it (a line with two tags counts in both).
- speed: latency p50/p95 of `provenance.latency_ms` (linear interpolation between
  ranks, numpy's default); generated tokens per second = sum of
  `generated_tokens` / sum of latency seconds, None when nothing was generated.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

from schemas import CONTRACT_FIELDS

RELATIVE_TOLERANCE = 1e-9
CALIBRATION_BINS = 10
SWEEP_THRESHOLDS = tuple(i / 10 for i in range(10))
SILENT_TARGET = 0.005  # at most 0.5% of messages published wrong (issue 18)


@dataclass(frozen=True)
class EvalCase:
    """One gold message and what a parser made of it, in plain values."""

    expected: Mapping[str, object]
    predicted: Mapping[str, object] | None  # None: no readable output
    flagged: bool
    confidence: float | None = None
    ambiguous: bool = False
    multiple_trades: bool = False
    latency_ms: float | None = None
    generated_tokens: int | None = None
    tags: tuple[str, ...] = ()  # the gold line's free-form tags (datasets/ANNOTATION.md)
    flagged_for_reason: bool = False  # a named reason besides low confidence, or no result: flagged at any threshold

    @property
    def valid(self) -> bool:
        return self.predicted is not None

    @property
    def deserves_flag(self) -> bool:
        return self.ambiguous or self.multiple_trades or not is_exact_match(self)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def values_match(gold: object, predicted: object) -> bool:
    """The field-matching rule above: numbers within 1e-9 relative, strings exact, null == null."""
    if gold is None or predicted is None:
        return gold is None and predicted is None
    if _is_number(gold) and _is_number(predicted):
        return math.isclose(float(gold), float(predicted), rel_tol=RELATIVE_TOLERANCE, abs_tol=0.0)
    if _is_number(gold) or _is_number(predicted):
        return False
    return type(gold) is type(predicted) and gold == predicted


def predicted_value(case: EvalCase, name: str) -> object:
    return None if case.predicted is None else case.predicted.get(name)


def wrong_fields(case: EvalCase) -> list[str]:
    """Annotated fields the prediction got wrong, in contract order."""
    return [name for name in _scored_fields(case) if not values_match(case.expected[name], predicted_value(case, name))]


def is_exact_match(case: EvalCase) -> bool:
    return case.valid and not wrong_fields(case)


def _scored_fields(case: EvalCase) -> list[str]:
    return [name for name in CONTRACT_FIELDS if name in case.expected]


@dataclass
class FieldCounts:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    tn: int = 0
    scored: int = 0

    def add(self, gold: object, predicted: object) -> None:
        self.scored += 1
        if gold is None and predicted is None:
            self.tn += 1
        elif values_match(gold, predicted):
            self.tp += 1
        else:
            self.fp += predicted is not None
            self.fn += gold is not None

    def scores(self) -> dict[str, float | int | None]:
        return {
            "tp": self.tp, "fp": self.fp, "fn": self.fn, "tn": self.tn, "scored": self.scored,
            "support": self.tp + self.fn,
            "precision": _ratio(self.tp, self.tp + self.fp),
            "recall": _ratio(self.tp, self.tp + self.fn),
            "f1": _ratio(2 * self.tp, 2 * self.tp + self.fp + self.fn),
            "accuracy": _ratio(self.tp + self.tn, self.scored),
        }


def _ratio(numerator: float, denominator: float) -> float | None:
    return numerator / denominator if denominator else None


def field_counts(cases: Sequence[EvalCase]) -> dict[str, FieldCounts]:
    """TP/FP/FN/TN per contract field, over the cases that annotate it."""
    counts = {name: FieldCounts() for name in CONTRACT_FIELDS}
    for case in cases:
        for name in _scored_fields(case):
            counts[name].add(case.expected[name], predicted_value(case, name))
    return counts


def percentile(values: Sequence[float], q: float) -> float | None:
    """q-th percentile (0-100), linear between closest ranks; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass
class CalibrationBin:
    lower: float
    upper: float
    count: int = 0
    confidence_sum: float = 0.0
    correct: int = 0

    def as_dict(self) -> dict[str, float | int | None]:
        return {
            "lower": self.lower, "upper": self.upper, "count": self.count,
            "mean_confidence": _ratio(self.confidence_sum, self.count),
            "accuracy": _ratio(self.correct, self.count),
        }


def reliability(pairs: Sequence[tuple[float, bool]], bins: int = CALIBRATION_BINS) -> tuple[list[dict], float | None]:
    """(reliability table, expected calibration error) for (confidence, correct) pairs."""
    table = [CalibrationBin(round(i / bins, 10), round((i + 1) / bins, 10)) for i in range(bins)]
    for confidence, correct in pairs:
        slot = table[min(int(confidence * bins), bins - 1)]
        slot.count += 1
        slot.confidence_sum += confidence
        slot.correct += bool(correct)
    total = len(pairs)
    if not total:
        return [b.as_dict() for b in table], None
    ece = sum(b.count / total * abs(b.correct / b.count - b.confidence_sum / b.count) for b in table if b.count)
    return [b.as_dict() for b in table], ece


def flag_scores(cases: Sequence[EvalCase], flagged: Sequence[bool]) -> dict[str, float | None]:
    """flag rate / precision / recall and silent error rate for one choice of which cases go to review."""
    n = len(cases)
    deserved = sum(c.deserves_flag for c, f in zip(cases, flagged) if f)
    silent = sum(1 for c, f in zip(cases, flagged) if not f and c.valid and not is_exact_match(c))
    return {
        "flag_rate": _ratio(sum(flagged), n),
        "flag_precision": _ratio(deserved, sum(flagged)),
        "flag_recall": _ratio(deserved, sum(c.deserves_flag for c in cases)),
        "silent_error_rate": _ratio(silent, n),
    }


def threshold_sweep(cases: Sequence[EvalCase], thresholds: Sequence[float] = SWEEP_THRESHOLDS) -> list[dict]:
    """Flag scores had the confidence threshold been each t (see the module docstring)."""
    rows = []
    for t in thresholds:
        flagged = [c.flagged_for_reason or c.confidence is None or c.confidence < t for c in cases]
        rows.append({"threshold": t, **flag_scores(cases, flagged)})
    return rows


def review_for_silent_target(cases: Sequence[EvalCase], target: float = SILENT_TARGET) -> dict | None:
    """The lowest threshold whose silent error rate is at most `target`, with its flag scores (None for no cases).

    Raising the threshold only adds flags, so silent errors only fall: a binary
    search over the thresholds that change a decision (0, and 1e-4 above each
    confidence, which are rounded to 4 decimals) finds the least review. Above
    every confidence nothing is published, so one always exists.
    """
    if not cases:
        return None
    candidates = sorted({0.0} | {round(c.confidence + 1e-4, 6) for c in cases if c.confidence is not None})

    def scores(t: float) -> dict:
        return {"target": target, "threshold": t, **threshold_sweep(cases, [t])[0]}

    low, high = 0, len(candidates) - 1
    while low < high:
        middle = (low + high) // 2
        if scores(candidates[middle])["silent_error_rate"] <= target:
            high = middle
        else:
            low = middle + 1
    return scores(candidates[low])


def by_tag(cases: Sequence[EvalCase]) -> dict[str, dict]:
    """Per gold tag: messages, exact match and the flag scores of the lines that carry it (a line counts once per tag)."""
    tagged: dict[str, list[EvalCase]] = {}
    for case in cases:
        for tag in dict.fromkeys(case.tags):
            tagged.setdefault(tag, []).append(case)
    return {tag: {"n": len(group), "exact_match": _ratio(sum(is_exact_match(c) for c in group), len(group)),
                  **flag_scores(group, [c.flagged for c in group])}
            for tag, group in sorted(tagged.items())}


def summarize(cases: Sequence[EvalCase]) -> dict:
    """Every number of one evaluation run, JSON-ready (see the module docstring for definitions)."""
    n = len(cases)
    counts = field_counts(cases)
    per_field = {name: c.scores() for name, c in counts.items()}
    total = FieldCounts(
        tp=sum(c.tp for c in counts.values()), fp=sum(c.fp for c in counts.values()),
        fn=sum(c.fn for c in counts.values()), tn=sum(c.tn for c in counts.values()),
        scored=sum(c.scored for c in counts.values()),
    ).scores()
    defined_f1 = [s["f1"] for s in per_field.values() if s["f1"] is not None]

    exact = [is_exact_match(c) for c in cases]
    flags = flag_scores(cases, [c.flagged for c in cases])

    pairs = [(c.confidence, ok) for c, ok in zip(cases, exact) if c.confidence is not None]
    table, ece = reliability(pairs)
    latencies = [c.latency_ms for c in cases if c.latency_ms is not None]
    generated = sum(c.generated_tokens or 0 for c in cases if c.latency_ms is not None)
    seconds = sum(latencies) / 1000

    return {
        "n": n,
        "fields": per_field,
        "micro": {k: total[k] for k in ("tp", "fp", "fn", "precision", "recall", "f1")},
        "macro_f1": sum(defined_f1) / len(defined_f1) if defined_f1 else None,
        "exact_match": _ratio(sum(exact), n),
        "exact_match_count": sum(exact),
        "valid_output_rate": _ratio(sum(c.valid for c in cases), n),
        **flags,
        "calibration": {"ece": ece, "n": len(pairs), "bins": table},
        "threshold_sweep": threshold_sweep(cases),
        "review_for_silent_target": review_for_silent_target(cases),
        "latency_ms": {"p50": percentile(latencies, 50), "p95": percentile(latencies, 95),
                       "mean": _ratio(sum(latencies), len(latencies))},
        "generated_tokens_per_s": _ratio(generated, seconds) if generated else None,
        "by_tag": by_tag(cases),
    }
