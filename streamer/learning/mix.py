"""What `streamer learn train` trains on: the new corrections, repeated, plus a replay sample of earlier data.

Continuing an adapter on a few hundred corrections alone teaches it those lines
and unteaches the rest (catastrophic forgetting); mixing in a seeded sample of
the data it was trained on keeps the old behaviour in every batch.
"""

from __future__ import annotations

import random
from pathlib import Path

from streamer.data.manage import file_manifest, normalise_text, read_jsonl, split_of, write_jsonl
from streamer.learning.collect import HELDOUT_FRACTION

# when the production adapter's card does not name its training files: the hand-written and gold training splits
REPLAY_FILES = (
    Path("datasets/splits/gold_train.jsonl"), Path("datasets/splits/hand_train.jsonl"),
    Path("datasets/splits/hand_classes_train.jsonl"), Path("datasets/splits/hand_round2_train.jsonl"),
)


def replay_files_of(adapter: Path) -> list[Path] | None:
    """The files the adapter was trained on, repeats kept (so a replay sample follows its mix), from its card.

    None when the card (adapter.json beside the adapter) names none or one of
    them is gone, e.g. a candidate's mix deleted after promotion.
    """
    import json

    try:
        names = json.loads(adapter.with_name("adapter.json").read_text())["training"]["train_files"]
    except (OSError, KeyError, TypeError, ValueError):
        return None
    files = [Path(name) for name in names]
    return files if files and all(path.is_file() for path in files) else None


# of all corrections: the slice of the training side whose loss picks the best step (never trained on); the
# held-out part the gate scores lies below `collect`'s held-out fraction of the same hash, so the two never meet
SELECTION_FRACTION = 0.1


def selection_split(train: list[dict], heldout_fraction: float = HELDOUT_FRACTION,
                    fraction: float = SELECTION_FRACTION) -> tuple[list[dict], list[dict]]:
    """(train, selection): the records whose text hashes just above the held-out part pick the checkpoint.

    Choosing the best step by the held-out corrections' loss would tune on the
    set the gate then scores; this slice is the training side's own dev set.
    """
    kept, selection = [], []
    for record in train:
        (selection if split_of(record["text"], dev=heldout_fraction + fraction, test=0.0) == "dev" else kept).append(record)
    return kept, selection


def without_texts(records: list[dict], texts: set[str]) -> list[dict]:
    """`records` minus those whose normalised text is in `texts` (a replayed line never teaches a held-out one)."""
    return [record for record in records if normalise_text(record["text"]) not in texts]


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


def write_training_mix(corrections: list[dict], replay_files: list[Path], out: Path, repeat: int = 3,
                       replay_share: float = 0.5, seed: int = 0, exclude: list[dict] = ()) -> dict:
    """Write the mix as JSONL; returns its manifest (counts and every input's sha256) for the adapter card.

    Replay records with the text of a correction (whose label may have changed)
    or of an `exclude` record (the held-out and selection corrections) are left out.
    """
    replay = [record for path in replay_files for record in read_jsonl(path)]
    kept = without_texts(replay, {normalise_text(record["text"]) for record in [*corrections, *exclude]})
    mix = training_mix(corrections, kept, repeat, replay_share, seed)
    write_jsonl(out, mix)
    return {
        "mix": file_manifest(out), "corrections": len(corrections), "repeat": repeat,
        "replay": [file_manifest(path) for path in replay_files], "replay_share": replay_share,
        "replay_records": len(mix) - repeat * len(corrections), "replay_left_out": len(replay) - len(kept),
        "seed": seed,
    }
