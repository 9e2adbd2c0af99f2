"""Dataset hygiene: JSONL IO, deterministic splits, train/test contamination, manifests.

Splits are decided by a hash of the normalised text, not by position or a
random draw, so a message lands in the same split however the file is ordered
or grown, and copies of one message can never straddle train and test.
`contamination` is the check that a test number means what it says: exact
copies of test messages in training data are an error; near copies (word
3-gram Jaccard >= 0.8) are reported so a person can judge them.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

import orjson

SPLITS: tuple[str, ...] = ("train", "dev", "test")
NEAR_DUPLICATE_JACCARD = 0.8


class DatasetError(ValueError):
    """A dataset file that cannot be used; the message names the file (and line)."""


# --- JSONL ---------------------------------------------------------------------------


def numbered_records(path: str | Path) -> list[tuple[int, dict]]:
    """(line number, record) for each non-blank line; each must be a JSON object."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise DatasetError(f"{path}: is a directory, not a JSONL file") from None
    except OSError as err:
        raise DatasetError(f"{path}: cannot read ({err.strerror})") from None
    records = []
    for number, line in enumerate(data.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as err:
            raise DatasetError(f"{path}:{number}: invalid JSON ({err})") from None
        if not isinstance(record, dict):
            raise DatasetError(f"{path}:{number}: expected a JSON object, got {type(record).__name__}")
        records.append((number, record))
    return records


def read_jsonl(path: str | Path) -> list[dict]:
    """Records of a JSONL file; blank lines are skipped, anything else must be a JSON object."""
    return [record for _, record in numbered_records(path)]


def read_texts(path: str | Path) -> list[tuple[str, dict]]:
    """('path:line', record) for records that must carry a string `text` (splits, contamination)."""
    located = []
    for number, record in numbered_records(path):
        if not isinstance(record.get("text"), str):
            raise DatasetError(f"{path}:{number}: record has no string 'text'")
        located.append((f"{path}:{number}", record))
    return located


def write_jsonl(path: str | Path, records: Iterable[Mapping]) -> int:
    """Write one compact JSON object per line (parents created); returns the count."""
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        count = 0
        with target.open("wb") as out:
            for record in records:
                out.write(orjson.dumps(record) + b"\n")
                count += 1
    except OSError as err:
        raise DatasetError(f"{path}: cannot write ({err.strerror})") from None
    return count


# --- splits --------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    """What counts as 'the same message': case and runs of whitespace do not."""
    return " ".join(text.casefold().split())


def split_of(text: str, dev: float, test: float) -> str:
    """The split a message belongs to: a stable hash of its normalised text picks a point in [0, 1)."""
    digest = hashlib.sha256(normalise_text(text).encode()).digest()
    point = int.from_bytes(digest[:8], "big") / 2**64
    if point < test:
        return "test"
    if point < test + dev:
        return "dev"
    return "train"


def split_records(records: Iterable[Mapping], dev: float = 0.2, test: float = 0.4) -> dict[str, list]:
    """Records grouped into train/dev/test (order kept within each)."""
    if dev < 0 or test < 0 or dev + test > 1:
        raise ValueError(f"fractions must be >= 0 and dev + test <= 1, got dev={dev} test={test}")
    splits: dict[str, list] = {name: [] for name in SPLITS}
    for record in records:
        splits[split_of(record["text"], dev, test)].append(record)
    return splits


# --- contamination -------------------------------------------------------------------


def word_ngrams(text: str, n: int = 3) -> frozenset[tuple[str, ...]]:
    """Word n-grams of the normalised text; a message shorter than n words is one gram of all its words."""
    words = normalise_text(text).split()
    if len(words) < n:
        return frozenset([tuple(words)]) if words else frozenset()
    return frozenset(tuple(words[i:i + n]) for i in range(len(words) - n + 1))


def jaccard(a: frozenset, b: frozenset) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


@dataclass(frozen=True)
class Overlap:
    """A test record and the training record that overlaps it most."""

    test_where: str
    test_text: str
    train_where: str
    train_text: str
    score: float  # 1.0 for exact duplicates
    matches: int  # how many training records overlap this test record


@dataclass
class ContaminationReport:
    train_count: int
    test_count: int
    threshold: float
    exact: list[Overlap] = field(default_factory=list)
    near: list[Overlap] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        """Near duplicates are reported, not failed: synthetic templates make some inevitable."""
        return not self.exact

    def render(self, examples: int = 5) -> str:
        lines = [
            f"train records: {self.train_count}   test records: {self.test_count}",
            f"exact duplicates (lower-cased, whitespace collapsed): {len(self.exact)} test records",
            f"near duplicates (word 3-gram Jaccard >= {self.threshold}): {len(self.near)} test records",
        ]
        for title, overlaps in (("exact", self.exact), ("near", self.near)):
            for o in overlaps[:examples]:
                lines.append(f"  {title} {o.score:.2f}  test {o.test_where}: {o.test_text!r}")
                more = f" (+{o.matches - 1} more)" if o.matches > 1 else ""
                lines.append(f"{' ' * (len(title) + 10)}train {o.train_where}: {o.train_text!r}{more}")
        return "\n".join(lines)


def _where(record: Mapping, index: int) -> str:
    return str(record.get("where") or record.get("id") or f"#{index}")


def contamination(train: Sequence[Mapping], test: Sequence[Mapping],
                  threshold: float = NEAR_DUPLICATE_JACCARD) -> ContaminationReport:
    """Test records that also occur in training data, exactly or nearly.

    Records are mappings with `text` (and `where` or `id` to name them in the
    report). Each test record is reported once, with its closest training match
    and how many training records match. Exact: equal after `normalise_text`.
    Near: not exact, word 3-gram Jaccard >= `threshold`; found through an
    inverted index of grams, so cost grows with shared grams, not train x test.
    """
    report = ContaminationReport(len(train), len(test), threshold)
    exact_index: dict[str, list[int]] = defaultdict(list)
    gram_index: dict[tuple[str, ...], list[int]] = defaultdict(list)
    train_grams = []
    for i, record in enumerate(train):
        exact_index[normalise_text(record["text"])].append(i)
        grams = word_ngrams(record["text"])
        train_grams.append(grams)
        for gram in grams:
            gram_index[gram].append(i)

    for j, record in enumerate(test):
        text = record["text"]
        key = normalise_text(text)
        if key in exact_index:
            hits = exact_index[key]
            first = train[hits[0]]
            report.exact.append(Overlap(_where(record, j), text, _where(first, hits[0]), first["text"], 1.0, len(hits)))
            continue
        grams = word_ngrams(text)
        shared: Counter = Counter()
        for gram in grams:
            shared.update(gram_index.get(gram, ()))
        best, best_score, matches = None, 0.0, 0
        for i, common in shared.items():
            score = common / (len(grams) + len(train_grams[i]) - common)
            if score >= threshold:
                matches += 1
                if score > best_score or (score == best_score and best is not None and i < best):
                    best, best_score = i, score
        if best is not None:
            report.near.append(Overlap(_where(record, j), text, _where(train[best], best), train[best]["text"],
                                       best_score, matches))
    report.near.sort(key=lambda o: -o.score)
    return report


# --- manifest ------------------------------------------------------------------------


def file_manifest(path: str | Path) -> dict:
    """Line count, content hash, and label counts of one JSONL dataset."""
    records = read_jsonl(path)
    intents: Counter = Counter()
    asset_classes: Counter = Counter()
    for record in records:
        expected = record.get("expected")
        if not isinstance(expected, dict):
            intents["unlabelled"] += 1
            continue
        intents[str(expected.get("intent"))] += 1
        asset_classes[str(expected.get("asset_class") or "null")] += 1
    return {
        "lines": len(records),
        "sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest(),
        "intents": dict(sorted(intents.items())),
        "asset_classes": dict(sorted(asset_classes.items())),
    }


def manifest(paths: Iterable[str | Path]) -> dict:
    """Manifest of several dataset files, keyed by the path as given (no timestamps: reruns are identical)."""
    return {"files": {str(path): file_manifest(path) for path in paths}}
