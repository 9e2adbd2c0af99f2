"""Metric definitions against hand-computed cases (see streamer/evaluation/metrics.py)."""

from __future__ import annotations

import pytest

from streamer.evaluation.metrics import (
    EvalCase, by_tag, field_counts, is_exact_match, percentile, reliability, review_for_silent_target, summarize,
    threshold_sweep, values_match,
    wrong_fields,
)


@pytest.mark.parametrize("gold, predicted, same", [
    (1.2710, 1.271, True),
    (10000000, 1e7, True),                 # int gold, float prediction
    (1.0, 1.0 + 1e-10, True),              # inside relative 1e-9
    (1.0, 1.0 + 1e-8, False),              # outside
    (1e9, 1e9 + 0.5, True),                # relative, not absolute
    (0.0, 1e-12, False),                   # no absolute tolerance
    ("GBPUSD", "GBPUSD", True),
    ("GBPUSD", "gbpusd", False),           # strings exact, case included
    ("Citi", "Citi ", False),
    (None, None, True),
    (None, "GBPUSD", False),
    (5.0, None, False),
    ("1", 1, False),                       # a string is never a number
])
def test_values_match(gold, predicted, same):
    assert values_match(gold, predicted) is same


def _case(expected, predicted, flagged=False, **extra):
    return EvalCase(expected=expected, predicted=predicted, flagged=flagged, **extra)


# A: right intent and symbol, wrong quantity, spurious price.   B: a correct `none`.
# C: wrong intent, missed symbol, quantity not annotated.       D: no readable output.
FIELD_CASES = [
    _case({"intent": "order", "symbol": "GBPUSD", "quantity": 1e7, "price": None},
          {"intent": "order", "symbol": "GBPUSD", "quantity": 2e7, "price": 1.27}),
    _case({"intent": "none", "symbol": None}, {"intent": "none", "symbol": None}),
    _case({"intent": "rfq", "symbol": "EURUSD"}, {"intent": "quote", "symbol": None, "quantity": 5.0}),
    _case({"intent": "order", "symbol": "USDJPY"}, None, flagged=True),
]


@pytest.mark.parametrize("name, tp, fp, fn, tn, precision, recall, f1, accuracy", [
    ("intent", 2, 1, 2, 0, 2 / 3, 2 / 4, 4 / 7, 2 / 4),      # C counts as FP and FN, D as FN
    ("symbol", 1, 0, 2, 1, 1.0, 1 / 3, 2 / 4, 2 / 4),
    ("quantity", 0, 1, 1, 0, 0.0, 0.0, 0.0, 0.0),            # only A annotates it
    ("price", 0, 1, 0, 0, 0.0, None, 0.0, 0.0),              # gold null, predicted value: FP only
    ("side", 0, 0, 0, 0, None, None, None, None),            # nobody annotates it: not scored
])
def test_per_field_scores(name, tp, fp, fn, tn, precision, recall, f1, accuracy):
    scores = field_counts(FIELD_CASES)[name].scores()
    assert (scores["tp"], scores["fp"], scores["fn"], scores["tn"]) == (tp, fp, fn, tn)
    assert scores["support"] == tp + fn
    for key, want in (("precision", precision), ("recall", recall), ("f1", f1), ("accuracy", accuracy)):
        assert scores[key] == (None if want is None else pytest.approx(want)), key


def test_message_level_and_micro_scores():
    m = summarize(FIELD_CASES)
    assert [wrong_fields(c) for c in FIELD_CASES] == [
        ["quantity", "price"], [], ["intent", "symbol"], ["intent", "symbol"]]
    assert [is_exact_match(c) for c in FIELD_CASES] == [False, True, False, False]
    assert (m["n"], m["exact_match_count"], m["exact_match"]) == (4, 1, 0.25)
    assert m["valid_output_rate"] == 0.75
    assert (m["micro"]["tp"], m["micro"]["fp"], m["micro"]["fn"]) == (3, 3, 5)
    assert m["micro"]["precision"] == pytest.approx(0.5)
    assert m["micro"]["recall"] == pytest.approx(3 / 8)
    assert m["micro"]["f1"] == pytest.approx(3 / 7)
    assert m["macro_f1"] == pytest.approx((4 / 7 + 0.5 + 0 + 0) / 4)


def test_flag_metrics():
    right, wrong = {"intent": "none"}, {"intent": "order"}
    cases = [
        _case(right, right),                              # exact, published
        _case(right, right, flagged=True, ambiguous=True),  # deserved: ambiguous
        _case(right, wrong, flagged=True),                # deserved: wrong
        _case(right, right, flagged=True),                # undeserved
        _case(right, wrong),                              # silent error
        _case(right, None, flagged=True),                 # invalid output, flagged: deserved
        _case(right, wrong),                              # silent error
    ]
    m = summarize(cases)
    assert m["flag_rate"] == pytest.approx(4 / 7)
    assert m["flag_precision"] == pytest.approx(3 / 4)
    assert m["flag_recall"] == pytest.approx(3 / 5)
    assert m["silent_error_rate"] == pytest.approx(2 / 7)
    assert m["valid_output_rate"] == pytest.approx(6 / 7)


# (confidence, right?, flagged for a named reason): the sweep re-decides only the confidence part.
SWEEP_CASES = [
    _case({"intent": "none"}, {"intent": "none"}, confidence=0.95),
    _case({"intent": "none"}, {"intent": "none"}, confidence=0.35),
    _case({"intent": "none"}, {"intent": "order"}, confidence=0.25),
    _case({"intent": "none"}, {"intent": "order"}, confidence=0.75),
    _case({"intent": "none"}, {"intent": "order"}, flagged=True, confidence=0.9, flagged_for_reason=True),
    _case({"intent": "none"}, None, flagged=True),
]


@pytest.mark.parametrize("threshold, flag_rate, flag_precision, flag_recall, silent", [
    (0.0, 2 / 6, 2 / 2, 2 / 4, 2 / 6),
    (0.3, 3 / 6, 3 / 3, 3 / 4, 1 / 6),
    (0.4, 4 / 6, 3 / 4, 3 / 4, 1 / 6),
    (0.8, 5 / 6, 4 / 5, 4 / 4, 0.0),
    (0.9, 5 / 6, 4 / 5, 4 / 4, 0.0),
])
def test_threshold_sweep(threshold, flag_rate, flag_precision, flag_recall, silent):
    (row,) = threshold_sweep(SWEEP_CASES, [threshold])
    assert row == pytest.approx({"threshold": threshold, "flag_rate": flag_rate, "flag_precision": flag_precision,
                                 "flag_recall": flag_recall, "silent_error_rate": silent})


def test_summary_carries_the_sweep_at_every_tenth():
    sweep = summarize(SWEEP_CASES)["threshold_sweep"]
    assert [r["threshold"] for r in sweep] == pytest.approx([i / 10 for i in range(10)])


@pytest.mark.parametrize("target, threshold, flag_rate, silent", [
    (0.5, 0.0, 2 / 6, 2 / 6),          # met with no threshold: only the reason and the missing result go to review
    (1 / 6, 0.2501, 3 / 6, 1 / 6),     # just above the wrong 0.25: the wrong 0.75 is still published
    (0.005, 0.7501, 5 / 6, 0.0),       # both wrong ones flagged, and the right 0.35 with them
    (0.0, 0.7501, 5 / 6, 0.0),
])
def test_review_for_silent_target_is_the_least_review_that_meets_it(target, threshold, flag_rate, silent):
    row = review_for_silent_target(SWEEP_CASES, target)
    assert (row["target"], row["threshold"]) == pytest.approx((target, threshold))
    assert (row["flag_rate"], row["silent_error_rate"]) == pytest.approx((flag_rate, silent))


def test_review_for_silent_target_defaults_to_half_a_percent_and_needs_cases():
    assert summarize(SWEEP_CASES)["review_for_silent_target"]["target"] == 0.005
    assert review_for_silent_target([]) is None


TAGGED_CASES = [
    _case({"intent": "order"}, {"intent": "order"}, tags=("exit_phrasing", "fx")),                 # right
    _case({"intent": "order"}, {"intent": "rfq"}, tags=("exit_phrasing",)),                       # silent error
    _case({"intent": "order"}, {"intent": "rfq"}, flagged=True, tags=("fx", "fx")),               # flagged, once
    _case({"intent": "none"}, {"intent": "none"}),                                                 # no tag
]


@pytest.mark.parametrize("tag, n, exact, flag_rate, silent", [
    ("exit_phrasing", 2, 1 / 2, 0.0, 1 / 2),
    ("fx", 2, 1 / 2, 1 / 2, 0.0),       # a tag written twice on a line counts the line once
])
def test_by_tag(tag, n, exact, flag_rate, silent):
    scores = by_tag(TAGGED_CASES)[tag]
    assert (scores["n"], scores["exact_match"], scores["flag_rate"], scores["silent_error_rate"]) == pytest.approx(
        (n, exact, flag_rate, silent))


def test_summary_carries_every_tag_and_no_untagged_bucket():
    assert sorted(summarize(TAGGED_CASES)["by_tag"]) == ["exit_phrasing", "fx"]


def test_multiple_trades_deserves_a_flag_even_when_the_first_trade_is_right():
    case = _case({"intent": "order"}, {"intent": "order"}, flagged=True, multiple_trades=True)
    assert summarize([case])["flag_precision"] == 1.0


def test_reliability_table_and_ece():
    pairs = [(0.05, False), (0.15, True), (0.95, True), (0.95, False), (1.0, True)]
    table, ece = reliability(pairs)
    assert len(table) == 10
    filled = {round(b["lower"], 1): b for b in table if b["count"]}
    assert sorted(filled) == [0.0, 0.1, 0.9]             # 1.0 falls in the last bin
    assert filled[0.9]["count"] == 3
    assert filled[0.9]["mean_confidence"] == pytest.approx((0.95 + 0.95 + 1.0) / 3)
    assert filled[0.9]["accuracy"] == pytest.approx(2 / 3)
    # (1 * |0 - .05| + 1 * |1 - .15| + 3 * |2/3 - 2.9/3|) / 5
    assert ece == pytest.approx((0.05 + 0.85 + 0.9) / 5)


@pytest.mark.parametrize("confidence, bin_lower", [(0.0, 0.0), (0.1, 0.1), (0.3, 0.3), (0.7, 0.7), (0.999, 0.9)])
def test_bin_edges_are_lower_inclusive(confidence, bin_lower):
    table, _ = reliability([(confidence, True)])
    assert [b["lower"] for b in table if b["count"]] == [pytest.approx(bin_lower)]


def test_calibration_leaves_out_messages_without_a_result():
    m = summarize([_case({"intent": "none"}, {"intent": "none"}, confidence=0.9), _case({"intent": "none"}, None)])
    assert m["calibration"]["n"] == 1
    assert m["calibration"]["ece"] == pytest.approx(0.1)
    assert reliability([])[1] is None


@pytest.mark.parametrize("values, q, want", [
    ([1, 2, 3, 4], 50, 2.5),
    ([4, 1, 3, 2], 95, 3.85),
    ([10, 20, 30, 40, 50], 95, 48.0),
    ([7], 95, 7),
    ([], 50, None),
])
def test_percentile_linear_between_ranks(values, q, want):
    assert percentile(values, q) == (None if want is None else pytest.approx(want))


def test_latency_and_tokens_per_second():
    cases = [_case({"intent": "none"}, {"intent": "none"}, latency_ms=ms, generated_tokens=ms // 10)
             for ms in (100, 200, 300, 400)]
    m = summarize(cases)
    assert m["latency_ms"]["p50"] == pytest.approx(250)
    assert m["latency_ms"]["p95"] == pytest.approx(385)
    assert m["generated_tokens_per_s"] == pytest.approx(100 / 1.0)
    no_tokens = summarize([_case({"intent": "none"}, {"intent": "none"}, latency_ms=1.0, generated_tokens=0)])
    assert no_tokens["generated_tokens_per_s"] is None
