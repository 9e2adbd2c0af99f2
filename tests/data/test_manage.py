"""Dataset management on small hand-made inputs: JSONL IO, splits, contamination, manifests."""

from __future__ import annotations

import hashlib

import orjson
import pytest

from streamer.data.manage import (
    DatasetError, contamination, file_manifest, jaccard, manifest, normalise_text, read_jsonl, read_texts,
    split_of, split_records, word_ngrams, write_jsonl,
)
from streamer.data.synth import synthesize


@pytest.mark.parametrize("text, expected", [
    ("Buy 10m Cable", "buy 10m cable"),
    ("  buy\t10m \n cable  ", "buy 10m cable"),
    ("EURUSD 1.0848/50", "eurusd 1.0848/50"),
    ("", ""),
])
def test_normalise_text(text, expected):
    assert normalise_text(text) == expected


# --- JSONL ----------------------------------------------------------------------------

def test_jsonl_round_trip_keeps_unicode(tmp_path):
    records = [{"text": "achète 10m eurusd 🙏", "n": 1}, {"text": "kaufe 10 Mio EURUSD", "n": 2}]
    path = tmp_path / "nested" / "out.jsonl"
    assert write_jsonl(path, records) == 2
    assert read_jsonl(path) == records
    assert path.read_bytes().count(b"\n") == 2


@pytest.mark.parametrize("content, message", [
    (None, "no such file"),
    (b'{"text": "a"}\n{"text": \n', ":2: invalid JSON"),
    (b'{"text": "a"}\n\n[1, 2]\n', ":3: expected a JSON object, got list"),
    (b'"just a string"\n', ":1: expected a JSON object, got str"),
])
def test_read_jsonl_errors_name_file_and_line(tmp_path, content, message):
    path = tmp_path / "data.jsonl"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DatasetError) as err:
        read_jsonl(path)
    assert str(err.value).startswith(str(path))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_read_jsonl_skips_blank_lines(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n   \n{"text": "b"}\n')
    assert [r["text"] for r in read_jsonl(path)] == ["a", "b"]


def test_read_texts_gives_file_and_line_and_requires_text(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n{"text": "b"}\n')
    assert [where for where, _ in read_texts(path)] == [f"{path}:1", f"{path}:3"]
    path.write_bytes(b'{"text": "a"}\n{"txt": "b"}\n')
    with pytest.raises(DatasetError, match=r":2: record has no string 'text'"):
        read_texts(path)


# --- splits ---------------------------------------------------------------------------

TEXTS = [f"buy {n}m cable @ 1.27{n:02d}" for n in range(200)]


@pytest.mark.parametrize("dev, test, only", [
    (0.0, 0.0, "train"),
    (0.0, 1.0, "test"),
    (1.0, 0.0, "dev"),
])
def test_degenerate_fractions_put_everything_in_one_split(dev, test, only):
    assert {split_of(t, dev, test) for t in TEXTS} == {only}


def test_split_ignores_case_spacing_and_order():
    records = [{"text": t} for t in TEXTS]
    forward = split_records(records, dev=0.2, test=0.4)
    backward = split_records(list(reversed(records)), dev=0.2, test=0.4)
    for name in ("train", "dev", "test"):
        assert sorted(r["text"] for r in forward[name]) == sorted(r["text"] for r in backward[name])
    for text in TEXTS[:20]:
        assert split_of(text, 0.2, 0.4) == split_of("  " + text.upper().replace(" ", "   "), 0.2, 0.4)


def test_split_fractions_are_roughly_honoured():
    records = synthesize(3000, seed=4)
    splits = split_records(records, dev=0.2, test=0.4)
    assert sum(len(v) for v in splits.values()) == 3000
    unique = {normalise_text(r["text"]) for r in records}
    for name, share in (("train", 0.4), ("dev", 0.2), ("test", 0.4)):
        texts = {normalise_text(r["text"]) for r in splits[name]}
        assert abs(len(texts) / len(unique) - share) < 0.04, name


def test_split_leaves_no_exact_overlap_between_train_and_test():
    splits = split_records(synthesize(2000, seed=8), dev=0.1, test=0.3)
    assert contamination(splits["train"], splits["test"]).exact == []


@pytest.mark.parametrize("dev, test", [(-0.1, 0.2), (0.2, -0.1), (0.6, 0.5)])
def test_split_rejects_bad_fractions(dev, test):
    with pytest.raises(ValueError):
        split_records([{"text": "a"}], dev=dev, test=test)


# --- contamination ----------------------------------------------------------------------

@pytest.mark.parametrize("text, grams", [
    ("a b c d", {("a", "b", "c"), ("b", "c", "d")}),
    ("A  b C", {("a", "b", "c")}),
    ("a b", {("a", "b")}),
    ("", set()),
])
def test_word_ngrams(text, grams):
    assert word_ngrams(text) == grams


@pytest.mark.parametrize("a, b, score", [
    ({1, 2, 3}, {1, 2, 3}, 1.0),
    ({1, 2, 3, 4}, {1, 2, 3}, 0.75),
    ({1}, {2}, 0.0),
    (set(), set(), 0.0),
])
def test_jaccard(a, b, score):
    assert jaccard(frozenset(a), frozenset(b)) == score


LONG = "pls buy 10m cable at 1.2710 for citi value spot thanks a lot mate"  # 14 words, 12 grams
ONE_WORD_CHANGED = LONG.replace("mate", "pal")  # shares 11 of 13 grams: 0.846
TWO_WORDS_CHANGED = LONG.replace("mate", "pal").replace("pls", "plz")  # shares 10 of 14: 0.714


@pytest.mark.parametrize("train, test, exact, near", [
    (["Buy 10m  Cable"], ["buy 10m cable"], 1, 0),
    ([LONG], [ONE_WORD_CHANGED], 0, 1),
    ([LONG], [TWO_WORDS_CHANGED], 0, 0),
    ([LONG, LONG.upper()], [LONG], 1, 0),
    (["cxl that"], ["cxl this"], 0, 0),
    (["eurusd 1.0848/50"], ["gbpusd 1.2710/15", "EURUSD 1.0848/50"], 1, 0),
    ([], [LONG], 0, 0),
])
def test_contamination(train, test, exact, near):
    report = contamination([{"text": t} for t in train], [{"text": t} for t in test])
    assert (len(report.exact), len(report.near)) == (exact, near)
    assert report.clean == (exact == 0)
    assert (report.train_count, report.test_count) == (len(train), len(test))


def test_near_duplicate_score_and_names():
    report = contamination([{"text": "unrelated words here", "id": "t0"}, {"text": LONG, "id": "t1"}],
                           [{"text": ONE_WORD_CHANGED, "where": "gold.jsonl:7"}])
    (overlap,) = report.near
    assert overlap.score == pytest.approx(11 / 13)
    assert (overlap.test_where, overlap.train_where, overlap.matches) == ("gold.jsonl:7", "t1", 1)


def test_threshold_is_configurable():
    pair = ([{"text": LONG}], [{"text": TWO_WORDS_CHANGED}])
    assert len(contamination(*pair, threshold=0.7).near) == 1
    assert len(contamination(*pair, threshold=0.8).near) == 0


def test_exact_overlap_counts_every_training_copy():
    report = contamination([{"text": "morning all"}] * 3, [{"text": "Morning  all"}])
    assert report.exact[0].matches == 3


def test_report_render_has_counts_and_examples():
    report = contamination([{"text": "Buy 10m Cable", "id": "s1-4"}, {"text": LONG, "id": "s1-9"}],
                           [{"text": "buy 10m cable", "where": "gold.jsonl:3"}, {"text": ONE_WORD_CHANGED}])
    text = report.render()
    assert "exact duplicates (lower-cased, whitespace collapsed): 1 test records" in text
    assert "near duplicates (word 3-gram Jaccard >= 0.8): 1 test records" in text
    assert "gold.jsonl:3" in text and "s1-4" in text and "s1-9" in text and "#1" in text


# --- manifest -----------------------------------------------------------------------------

def _labelled(intent, asset_class=None):
    return {"text": "x", "expected": {"intent": intent, "asset_class": asset_class}}


@pytest.mark.parametrize("records, intents, asset_classes", [
    ([_labelled("order", "fx_spot"), _labelled("order", "equity"), _labelled("none")],
     {"none": 1, "order": 2}, {"equity": 1, "fx_spot": 1, "null": 1}),
    ([{"text": "raw chat"}, _labelled("rfq", "bond")], {"rfq": 1, "unlabelled": 1}, {"bond": 1}),
    ([], {}, {}),
])
def test_file_manifest(tmp_path, records, intents, asset_classes):
    path = tmp_path / "d.jsonl"
    write_jsonl(path, records)
    entry = file_manifest(path)
    assert entry == {"lines": len(records), "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                     "intents": intents, "asset_classes": asset_classes}


def test_manifest_keys_files_as_given_and_is_reproducible(tmp_path):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write_jsonl(a, synthesize(50, seed=1))
    write_jsonl(b, synthesize(30, seed=2))
    first = manifest([a, str(b)])
    assert list(first["files"]) == [str(a), str(b)]
    assert first["files"][str(a)]["lines"] == 50
    assert sum(first["files"][str(b)]["intents"].values()) == 30
    assert orjson.dumps(first) == orjson.dumps(manifest([a, str(b)]))


def test_manifest_of_a_missing_file_names_it(tmp_path):
    with pytest.raises(DatasetError, match="missing.jsonl: no such file"):
        manifest([tmp_path / "missing.jsonl"])
