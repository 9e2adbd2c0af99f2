"""The gate's promotion rule and the training mix, table-tested (no model)."""

from __future__ import annotations

import pytest

from streamer.learning.gate import GateRule, decide, render_table
from streamer.learning.mix import replay_count, training_mix


def scores(production: tuple[int, int], candidate: tuple[int, int], n: int = 200) -> dict:
    return {"blind": {"production": {"exact": production[0], "silent": production[1], "review": 10, "n": n},
                      "candidate": {"exact": candidate[0], "silent": candidate[1], "review": 10, "n": n}}}


@pytest.mark.parametrize("production, candidate, perplexity, promote, failed", [
    ((180, 10), (185, 8), (76.0, 77.0), True, []),
    ((180, 10), (178, 10), (76.0, 76.0), True, []),                   # within the margin: 2 of 200
    ((180, 10), (177, 10), (76.0, 76.0), False, ["blind: exact match"]),
    ((180, 10), (190, 11), (76.0, 76.0), False, ["blind: silent errors"]),  # better exact, but one more silent error
    ((180, 10), (180, 10), (76.0, 80.0), False, ["English perplexity"]),     # 5.3% drift
    ((180, 10), (180, 10), (76.0, None), False, ["English perplexity"]),     # not measured: no promotion
])
def test_promotion_needs_every_check(production, candidate, perplexity, promote, failed):
    decision = decide(scores(production, candidate), dict(zip(("production", "candidate"), perplexity)), GateRule())
    assert decision.promote is promote
    assert [check.name for check in decision.checks if not check.passed] == failed
    assert ("**promote**" if promote else "**reject**") in render_table(decision)


@pytest.mark.parametrize("n, allowed", [(10, 1), (99, 1), (200, 2), (367, 3)])
def test_the_noise_margin_is_at_least_one_message(n, allowed):
    assert GateRule().allowed_drop(n) == allowed


@pytest.mark.parametrize("corrections, repeat, share, replay", [(100, 3, 0.5, 300), (100, 1, 0.0, 0), (10, 2, 0.75, 60)])
def test_replay_share_of_the_mix(corrections, repeat, share, replay):
    assert replay_count(corrections, repeat, share) == replay


def test_the_mix_is_seeded_and_holds_every_correction_repeat_times():
    corrections = [{"id": f"c{i}"} for i in range(5)]
    replay = [{"id": f"r{i}"} for i in range(50)]
    mix = training_mix(corrections, replay, repeat=2, replay_share=0.5, seed=3)
    assert mix == training_mix(corrections, replay, repeat=2, replay_share=0.5, seed=3)
    ids = [record["id"] for record in mix]
    assert all(ids.count(f"c{i}") == 2 for i in range(5)) and sum(i.startswith("r") for i in ids) == 10
    assert len(set(i for i in ids if i.startswith("r"))) == 10  # sampled without replacement when there is enough
    with pytest.raises(ValueError):
        replay_count(1, 1, 1.0)
