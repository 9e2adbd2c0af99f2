"""The `data` click group, driven through CliRunner: outputs, exit codes, one-line errors."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from schemas import TradeFields
from streamer.cli.data import data
from streamer.data.manage import manifest as build_manifest
from streamer.data.manage import read_jsonl, write_jsonl


def run(*args: str):
    return CliRunner().invoke(data, [str(a) for a in args])


def test_synth_writes_n_valid_records_deterministically(tmp_path):
    first, second = tmp_path / "a.jsonl", tmp_path / "sub" / "b.jsonl"
    result = run("synth", "--n", 120, "--seed", 9, "--out", first)
    assert result.exit_code == 0, result.output
    assert result.stdout == ""  # progress and summary go to stderr
    assert "wrote 120 records" in result.stderr
    records = read_jsonl(first)
    assert len(records) == 120 and records[0]["id"] == "s9-0"
    for record in records:
        TradeFields(**record["expected"])
    assert run("synth", "--n", 120, "--seed", 9, "--out", second).exit_code == 0
    assert first.read_bytes() == second.read_bytes()


def test_synth_never_writes_an_excluded_text(tmp_path):
    plain = tmp_path / "plain.jsonl"
    assert run("synth", "--n", 300, "--seed", 4, "--out", plain).exit_code == 0
    generated = read_jsonl(plain)
    held_out = tmp_path / "held_out.jsonl"  # every third text, in other case and spacing
    write_jsonl(held_out, [{"text": "  " + r["text"].upper()} for r in generated[::3]])
    excluded = tmp_path / "excluded.jsonl"
    result = run("synth", "--n", 300, "--seed", 4, "--out", excluded, "--exclude", held_out)
    assert result.exit_code == 0, result.output
    kept = read_jsonl(excluded)
    forbidden = {" ".join(r["text"].casefold().split()) for r in generated[::3]}
    assert len(kept) == 300
    assert not forbidden & {" ".join(r["text"].casefold().split()) for r in kept}


def test_split_writes_three_files_that_partition_the_input(tmp_path):
    source = tmp_path / "gold.jsonl"
    write_jsonl(source, [{"text": f"buy {n}m cable", "expected": {"intent": "order"}} for n in range(100)])
    result = run("split", source, "--out-dir", tmp_path / "out", "--dev", "0.2", "--test", "0.4")
    assert result.exit_code == 0, result.output
    parts = {name: read_jsonl(tmp_path / "out" / f"gold_{name}.jsonl") for name in ("train", "dev", "test")}
    texts = sorted(r["text"] for part in parts.values() for r in part)
    assert texts == sorted(r["text"] for r in read_jsonl(source))
    assert all(parts.values())
    for name, part in parts.items():
        assert f"{name}: {len(part)} ->" in result.stdout


def test_split_with_a_zero_fraction_writes_no_empty_file(tmp_path):
    source = tmp_path / "hand.jsonl"
    write_jsonl(source, [{"text": f"sell {n}m cable", "expected": {"intent": "order"}} for n in range(50)])
    result = run("split", source, "--out-dir", tmp_path / "out", "--dev", "0.2", "--test", "0")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["hand_dev.jsonl", "hand_train.jsonl"]
    assert "test:" not in result.stdout


def test_check_passes_on_disjoint_data_and_reports_counts(tmp_path):
    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    write_jsonl(train, [{"text": "buy 10m cable"}, {"text": "sell 5 eurusd"}])
    write_jsonl(test, [{"text": "px on 10 aussie?"}])
    result = run("check", "--train", train, "--test", test)
    assert result.exit_code == 0, result.output
    assert "train records: 2   test records: 1" in result.stdout
    assert "exact duplicates (lower-cased, whitespace collapsed): 0" in result.stdout


def test_check_fails_with_one_line_on_exact_contamination(tmp_path):
    train_a, train_b, test = tmp_path / "a.jsonl", tmp_path / "b.jsonl", tmp_path / "t.jsonl"
    write_jsonl(train_a, [{"text": "buy 10m cable"}])
    write_jsonl(train_b, [{"text": "Sell 5  EURUSD"}])
    write_jsonl(test, [{"text": "sell 5 eurusd"}, {"text": "px on 10 aussie?"}])
    result = run("check", "--train", train_a, "--train", train_b, "--test", test)
    assert result.exit_code == 1
    assert f"{test}:1" in result.stdout and f"{train_b}:1" in result.stdout
    assert result.stderr.strip().splitlines() == [
        "Error: contamination: 1 test records occur verbatim in training data"]


def test_manifest_writes_what_manage_computes(tmp_path):
    dataset = tmp_path / "d.jsonl"
    write_jsonl(dataset, [{"text": "buy 10m cable", "expected": {"intent": "order", "asset_class": "fx_spot"}}])
    out = tmp_path / "m" / "manifest.json"
    result = run("manifest", dataset, "--out", out)
    assert result.exit_code == 0, result.output
    assert orjson.loads(out.read_bytes()) == build_manifest([str(dataset)])


def _bad_json(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b'{"text": "buy 10m cable"}\n{"text": oops}\n')
    return path


def _no_text(tmp_path):
    path = tmp_path / "notext.jsonl"
    path.write_bytes(b'{"text": "a"}\n{"text": "b"}\n{"body": "c"}\n')
    return path


def _good(tmp_path):
    path = tmp_path / "good.jsonl"
    path.write_bytes(b'{"text": "a"}\n')
    return path


@pytest.mark.parametrize("make_args, message", [
    (lambda d: ["split", d / "missing.jsonl", "--out-dir", d / "o"], "missing.jsonl: no such file"),
    (lambda d: ["split", _bad_json(d), "--out-dir", d / "o"], "bad.jsonl:2: invalid JSON"),
    (lambda d: ["split", _no_text(d), "--out-dir", d / "o"], "notext.jsonl:3: record has no string 'text'"),
    (lambda d: ["split", d, "--out-dir", d / "o"], "is a directory"),
    (lambda d: ["split", _good(d), "--out-dir", d / "o", "--dev", "0.7", "--test", "0.5"],
     "--dev + --test must be at most 1"),
    (lambda d: ["check", "--train", _good(d), "--test", d / "missing.jsonl"], "missing.jsonl: no such file"),
    (lambda d: ["check", "--train", _bad_json(d), "--test", _good(d)], "bad.jsonl:2: invalid JSON"),
    (lambda d: ["manifest", _good(d), d / "missing.jsonl", "--out", d / "m.json"], "missing.jsonl: no such file"),
    (lambda d: ["manifest", _bad_json(d), "--out", d / "m.json"], "bad.jsonl:2: invalid JSON"),
    (lambda d: ["manifest", _good(d), "--out", d], "cannot write"),
    (lambda d: ["synth", "--n", "3", "--out", d], "is a directory"),
    (lambda d: ["synth", "--n", "3", "--out", f"{d}/x.jsonl", "--exclude", f"{d}/missing.jsonl"], "missing.jsonl"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, make_args, message):
    result = run(*make_args(tmp_path))
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)  # handled, no traceback
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and message in line, result.stderr
    assert result.stdout == ""


def test_group_lists_its_commands():
    result = run("--help")
    assert result.exit_code == 0
    for name in ("synth", "split", "check", "manifest"):
        assert name in result.stdout
