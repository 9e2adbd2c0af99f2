"""The gate's promotion rule and the training mix, table-tested (no model)."""

from __future__ import annotations

import pytest

from streamer.learning.gate import GateRule, decide, render_table
from streamer.learning.mix import (
    replay_count, replay_files_of, selection_split, training_mix, without_texts, write_training_mix,
)


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


@pytest.mark.parametrize("candidate, forgetting, promote, failed", [
    ((178, 12), True, True, []),                                    # an old dev set: silent errors within the margin
    ((178, 13), True, False, ["blind: silent errors"]),             # 3 more: beyond the margin (2 of 200)
    ((177, 10), True, False, ["blind: exact match"]),
    ((180, 11), False, False, ["blind: silent errors"]),            # a blind set: not even one more
])
def test_the_old_dev_sets_allow_bounded_drift_the_blind_sets_none(candidate, forgetting, promote, failed):
    decision = decide(scores((180, 10), candidate), {"production": 76.0, "candidate": 76.0}, GateRule(),
                      forgetting=["blind"] if forgetting else [])
    assert decision.promote is promote
    assert [check.name for check in decision.checks if not check.passed] == failed


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


TEXTS = [f"buy {n}m eurusd at 1.08{n:02d}" for n in range(200)]


def test_the_selection_slice_never_meets_the_heldout_part():
    from streamer.learning.collect import split_heldout

    train, heldout = split_heldout([{"text": text} for text in TEXTS])
    kept, selection = selection_split(train)
    assert {r["text"] for r in kept} | {r["text"] for r in selection} == {r["text"] for r in train}
    assert not {r["text"] for r in selection} & {r["text"] for r in heldout}
    assert 0.05 < len(selection) / len(TEXTS) < 0.16  # about SELECTION_FRACTION of all corrections
    assert selection_split(list(reversed(train)))[1] == list(reversed(selection))  # by text, not by position


@pytest.mark.parametrize("replay_texts, excluded, left", [
    (["buy 5m cable", "sell 2 eur"], ["Buy 5M  cable"], ["sell 2 eur"]),   # equal once normalised
    (["buy 5m cable"], ["buy 5m cable please"], ["buy 5m cable"]),          # near is not equal
    (["a", "b"], [], ["a", "b"]),
])
def test_replay_leaves_out_lines_of_the_corrections(replay_texts, excluded, left):
    from streamer.data.manage import normalise_text

    records = [{"text": text} for text in replay_texts]
    assert [r["text"] for r in without_texts(records, {normalise_text(t) for t in excluded})] == left


def test_the_written_mix_replays_no_heldout_or_correction_text(tmp_path):
    from streamer.data.manage import read_jsonl, write_jsonl

    replay = tmp_path / "replay.jsonl"
    write_jsonl(replay, [{"id": f"r{i}", "text": f"line {i}"} for i in range(40)])
    corrections = [{"id": "c0", "text": "line 1"}]
    manifest = write_training_mix(corrections, [replay], tmp_path / "mix.jsonl", repeat=1, replay_share=0.9,
                                  exclude=[{"text": "LINE 2"}])
    mix = read_jsonl(tmp_path / "mix.jsonl")
    assert manifest["replay_left_out"] == 2 and manifest["corrections"] == 1
    assert not {"r1", "r2"} & {record["id"] for record in mix} and sum(r["id"] == "c0" for r in mix) == 1


@pytest.mark.parametrize("card, expected", [
    ({"training": {"train_files": ["a.jsonl", "a.jsonl", "b.jsonl"]}}, ["a.jsonl", "a.jsonl", "b.jsonl"]),  # repeats kept
    ({"training": {"train_files": ["a.jsonl", "gone.jsonl"]}}, None),   # a file is gone: the caller's default
    ({"training": {}}, None),
    (None, None),                                                       # no card
])
def test_replay_follows_the_production_adapters_own_mix(tmp_path, monkeypatch, card, expected):
    import json

    monkeypatch.chdir(tmp_path)
    for name in ("a.jsonl", "b.jsonl"):
        (tmp_path / name).write_text("")
    if card is not None:
        (tmp_path / "adapter.json").write_text(json.dumps(card))
    files = replay_files_of(tmp_path / "adapter.gguf")
    assert (None if files is None else [str(path) for path in files]) == expected
