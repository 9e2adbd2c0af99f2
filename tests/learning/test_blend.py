"""Blending a retrained adapter with production (weight-space), and the rule that picks the weight; no model."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from streamer.cli import main
from streamer.learning.blend import WeightScore, blend_adapters, choose_weight, passes_dev_rule
from streamer.learning.gate import GateRule
from streamer.parsing.merged import LoraWeights, MergeError

NAMES = ("blk.0.attn_q.weight", "blk.0.ffn_down.weight")


def adapter(rank: int, alpha: float, seed: int, out: int = 6, inp: int = 5, names=NAMES) -> LoraWeights:
    rng = np.random.default_rng(seed)
    return LoraWeights(alpha=alpha, rank=rank, pairs={
        name: (rng.normal(size=(rank, inp)).astype(np.float32), rng.normal(size=(out, rank)).astype(np.float32))
        for name in names})


def delta(weights: LoraWeights, name: str) -> np.ndarray:
    a, b = weights.pairs[name]
    return weights.scale * b @ a


@pytest.mark.parametrize("weight", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("ranks", [((4, 8.0), (4, 8.0)), ((2, 2.0), (6, 24.0))])
def test_the_blend_is_the_weighted_sum_of_the_two_deltas(weight, ranks):
    (rank_c, alpha_c), (rank_p, alpha_p) = ranks
    candidate, production = adapter(rank_c, alpha_c, seed=1), adapter(rank_p, alpha_p, seed=2)
    blended = blend_adapters(candidate, production, weight)
    assert blended.rank == rank_c + rank_p and blended.scale == 1.0
    for name in NAMES:
        expected = weight * delta(candidate, name) + (1 - weight) * delta(production, name)
        np.testing.assert_allclose(delta(blended, name), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("production, error", [
    (adapter(4, 8.0, seed=2, names=NAMES[:1]), MergeError),        # patches other tensors
    (adapter(4, 8.0, seed=2, out=7), MergeError),                  # another base's shapes
])
def test_adapters_of_different_bases_are_refused(production, error):
    with pytest.raises(error):
        blend_adapters(adapter(4, 8.0, seed=1), production, 0.5)


@pytest.mark.parametrize("weight", [-0.1, 1.5])
def test_a_weight_outside_0_1_is_refused(weight):
    with pytest.raises(ValueError):
        blend_adapters(adapter(4, 8.0, seed=1), adapter(4, 8.0, seed=2), weight)


def counts(exact: int, silent: int, n: int) -> dict:
    return {"exact": exact, "silent": silent, "review": 0, "n": n}


PRODUCTION = {"hand_dev": counts(334, 23, 367), "gold_dev": counts(76, 0, 76), "selection": counts(30, 5, 40)}


@pytest.mark.parametrize("hand_dev, gold_dev, passes", [
    ((334, 23), (76, 0), True),
    ((331, 23), (75, 0), True),      # within the margin (3 of 367, 1 of 76)
    ((330, 23), (76, 0), False),     # 4 lines down on hand_dev
    ((340, 26), (76, 0), True),      # three more wrong trades published: the margin
    ((340, 27), (76, 0), False),     # four
    ((334, 23), (74, 0), False),
    ((334, 23), (76, 2), False),
])
def test_the_dev_rule_is_the_gates_rule(hand_dev, gold_dev, passes):
    scores = {"hand_dev": counts(*hand_dev, 367), "gold_dev": counts(*gold_dev, 76), "selection": counts(0, 40, 40)}
    assert passes_dev_rule(scores, PRODUCTION, GateRule(), skip=("selection",)) is passes


def scored(weight: float, hand_dev: tuple[int, int], selection: int) -> WeightScore:
    return WeightScore(weight, {"hand_dev": counts(*hand_dev, 367), "gold_dev": counts(76, 0, 76),
                                "selection": counts(selection, 0, 40)})


@pytest.mark.parametrize("tried, chosen, passing", [
    # the most of the class among the weights that keep the old sets
    ([scored(0.25, (334, 23), 31), scored(0.5, (333, 23), 34), scored(1.0, (329, 26), 37)], 0.5, [0.25, 0.5]),
    # ties on the class: fewer dev-set errors, then the larger weight
    ([scored(0.25, (333, 23), 33), scored(0.5, (334, 23), 33), scored(0.75, (334, 23), 33)], 0.75, [0.25, 0.5, 0.75]),
    # the candidate as it is, when it keeps the old sets
    ([scored(0.5, (334, 23), 33), scored(1.0, (335, 22), 36)], 1.0, [0.5, 1.0]),
    # nothing keeps the old sets: nothing to gate
    ([scored(0.5, (320, 23), 33), scored(1.0, (334, 30), 36)], None, []),
    # silent errors on a dev set may rise by the margin (3 of 367) like exact match may drop
    ([scored(0.5, (333, 26), 33), scored(1.0, (334, 27), 36)], 0.5, [0.5]),
])
def test_the_weight_is_chosen_on_dev_data(tried, chosen, passing):
    best, passed = choose_weight(tried, PRODUCTION, "selection")
    assert (best.weight if best else None) == chosen and passed == passing


@pytest.mark.parametrize("weights", ["abc", "0", "1.5", ","])
def test_bad_weights_are_a_one_line_error(tmp_path, weights):
    result = CliRunner().invoke(main, ["learn", "blend", "--candidate", str(tmp_path), "--out", str(tmp_path / "b"),
                                       "--weights", weights])
    assert result.exit_code != 0 and "--weights" in result.output and "Traceback" not in result.output
