"""What `streamer learn train` trains on: the new corrections, repeated, plus a replay sample of earlier data.

Continuing an adapter on a few hundred corrections alone teaches it those lines
and unteaches the rest (catastrophic forgetting); mixing in a seeded sample of
the data it was trained on keeps the old behaviour in every batch.
"""

from __future__ import annotations

import random
from pathlib import Path

from streamer.data.manage import file_manifest, read_jsonl, write_jsonl

# the hand-written and gold training splits the shipped adapter learned from (synth_train is mostly learned already)
REPLAY_FILES = (
    Path("datasets/splits/gold_train.jsonl"), Path("datasets/splits/hand_train.jsonl"),
    Path("datasets/splits/hand_classes_train.jsonl"), Path("datasets/splits/hand_round2_train.jsonl"),
)


def replay_count(corrections: int, repeat: int, replay_share: float) -> int:
    """Replay records so that they are `replay_share` of the mix (0.5 = as many as the repeated corrections)."""
    if not 0 <= replay_share < 1:
        raise ValueError(f"replay share must be in [0, 1): {replay_share}")
    return round(corrections * repeat * replay_share / (1 - replay_share))


def training_mix(corrections: list[dict], replay: list[dict], repeat: int, replay_share: float,
                 seed: int = 0) -> list[dict]:
    """The corrections `repeat` times and a seeded sample of `replay` (with replacement only if it is too small)."""
    rng = random.Random(seed)
    wanted = replay_count(len(corrections), repeat, replay_share)
    if wanted <= len(replay):
        sample = rng.sample(replay, wanted)
    else:
        sample = [rng.choice(replay) for _ in range(wanted)] if replay else []
    mix = [record for _ in range(repeat) for record in corrections] + sample
    rng.shuffle(mix)
    return mix


def write_training_mix(corrections_file: Path, replay_files: list[Path], out: Path, repeat: int = 3,
                       replay_share: float = 0.5, seed: int = 0) -> dict:
    """Write the mix as JSONL; returns its manifest (counts and every input's sha256) for the adapter card."""
    corrections = read_jsonl(corrections_file)
    replay = [record for path in replay_files for record in read_jsonl(path)]
    mix = training_mix(corrections, replay, repeat, replay_share, seed)
    write_jsonl(out, mix)
    return {
        "mix": file_manifest(out), "corrections": file_manifest(corrections_file), "repeat": repeat,
        "replay": [file_manifest(path) for path in replay_files], "replay_share": replay_share,
        "replay_records": len(mix) - repeat * len(corrections), "seed": seed,
    }
