"""`streamer eval`: the real bundled model on 20 gold_dev messages, compare mode, and bad input.

The model runs use gold_dev, never gold_test: the held-out split is for reported numbers only.
"""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from schemas import CONTRACT_FIELDS
from streamer.cli import main

GOLD_DEV = Path(__file__).resolve().parents[2] / "datasets" / "splits" / "gold_dev.jsonl"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SUMMARY_KEYS = {
    "n", "fields", "micro", "macro_f1", "exact_match", "exact_match_count", "valid_output_rate", "flag_rate",
    "flag_precision", "flag_recall", "silent_error_rate", "calibration", "latency_ms", "generated_tokens_per_s",
    "threshold_sweep", "review_for_silent_target", "by_tag",
}
FIELD_KEYS = {"tp", "fp", "fn", "tn", "scored", "support", "precision", "recall", "f1", "accuracy"}


def _outputs(out_dir: Path) -> tuple[dict, list[dict]]:
    payload = orjson.loads((out_dir / "eval.json").read_bytes())
    predictions = [orjson.loads(line) for line in (out_dir / "predictions.jsonl").read_bytes().splitlines()]
    return payload, predictions


def _assert_valid_png(path: Path) -> None:
    from PIL import Image

    assert path.read_bytes()[:8] == PNG_MAGIC
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.size[0] > 800 and image.size[1] > 400


def _assert_consistent(metrics: dict, predictions: list[dict]) -> None:
    """The JSON's numbers agree with the per-message rows they were computed from."""
    assert set(metrics) == SUMMARY_KEYS
    assert set(metrics["fields"]) == set(CONTRACT_FIELDS)
    assert all(set(scores) == FIELD_KEYS for scores in metrics["fields"].values())
    assert metrics["n"] == len(predictions)
    assert metrics["exact_match_count"] == sum(p["exact_match"] for p in predictions)
    assert metrics["flag_rate"] == pytest.approx(sum(p["flagged"] for p in predictions) / len(predictions))
    assert sum(b["count"] for b in metrics["calibration"]["bins"]) == metrics["calibration"]["n"]
    assert len(metrics["calibration"]["bins"]) == 10
    assert set(metrics["latency_ms"]) == {"p50", "p95", "mean"}


@pytest.mark.integration
def test_eval_on_20_gold_messages_with_the_real_model(tmp_path):
    result = CliRunner().invoke(main, [
        "eval", "--gold", str(GOLD_DEV), "--limit", "20", "--n-threads", "2", "--out-dir", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    payload, predictions = _outputs(tmp_path)
    (config,) = payload["configs"]
    metrics = config["metrics"]
    _assert_consistent(metrics, predictions)
    gold = [orjson.loads(line) for line in GOLD_DEV.read_bytes().splitlines()[:20]]
    assert [(p["id"], p["text"], p["expected"]) for p in predictions] == \
           [(g["id"], g["text"], g["expected"]) for g in gold]
    assert payload["gold"]["path"] == str(GOLD_DEV)
    assert config["parser"]["kind"] == "llm" and config["parser"]["model"].endswith(".gguf")
    assert payload["gold"]["n"] == 20
    assert metrics["valid_output_rate"] > 0            # the grammar makes the model answer in JSON
    assert metrics["latency_ms"]["p50"] > 0 and metrics["latency_ms"]["p95"] >= metrics["latency_ms"]["p50"]
    assert metrics["generated_tokens_per_s"] > 0
    _assert_valid_png(tmp_path / "eval.png")
    markdown = result.stdout
    assert "exact match" in markdown and "calibration ECE" in markdown
    for name in CONTRACT_FIELDS:
        assert f"| {name} |" in markdown
    assert (tmp_path / "eval.md").read_text() in markdown


def test_compare_mode_puts_configurations_side_by_side(tmp_path):
    gold = tmp_path / "gold.jsonl"
    gold.write_bytes(b"\n".join(orjson.dumps(r) for r in [
        {"id": "a", "text": "buy 10m cable 1w @ 1.2710", "timestamp": "2026-01-05T09:00:00Z",
         "expected": {"intent": "order", "side": "buy", "symbol": "GBPUSD", "quantity": 10000000, "tenor": "1W"}},
        {"id": "b", "text": "morning all", "expected": {"intent": "none", "symbol": None}},
        {"id": "c", "text": "px on sth odd", "expected": {"intent": "rfq"}, "ambiguous": True},
        # the gold timestamp must reach the parser: seen from 2026-01-05 (not from today) 30 April is 2026-04-30
        {"id": "d", "text": "buy 9m eurusd value 30 april", "timestamp": "2026-01-05T08:00:00Z",
         "expected": {"intent": "order", "tenor": "2026-04-30"}},
    ]))
    out = tmp_path / "out"
    result = CliRunner().invoke(main, [
        "eval", "--gold", str(gold), "--out-dir", str(out), "--config", "rules:baseline", "--compare", "again:baseline",
    ])
    assert result.exit_code == 0, result.output
    payload, predictions = _outputs(out)
    assert [c["name"] for c in payload["configs"]] == ["rules", "again"]
    assert [p["config"] for p in predictions] == ["rules"] * 4 + ["again"] * 4
    first, second = (c["metrics"] for c in payload["configs"])
    _assert_consistent(first, predictions[:4])
    assert [p["exact_match"] for p in predictions[:4]] == [True, True, False, True]   # "px on sth odd": no instrument
    assert first["exact_match_count"] == second["exact_match_count"] == 3
    assert first["fields"]["quantity"]["tp"] == 1 and first["fields"]["side"]["scored"] == 1
    assert "| field F1 | support | rules | again |" in result.stdout
    _assert_valid_png(out / "eval.png")


@pytest.mark.parametrize("args, gold_line, message", [
    (["--config", "x:adapter"], None, "expected KEY=VALUE"),
    (["--config", "x:temperature=0"], None, "expected KEY=VALUE"),
    (["--config", "x:threshold=high"], None, "threshold must be a number"),
    (["--config", "x:cross_check=maybe"], None, "cross_check must be on or off"),
    (["--config", "x:trust=high"], None, "trust must be a number"),
    (["--config", "x:scope=some"], None, "scope must be omissions or all"),
    (["--baseline", "--no-cross-check"], None, "--baseline runs no model; drop --cross-check"),
    (["--config", "bad name:baseline"], None, "NAME must be"),
    (["--config", "a:baseline", "--config", "a:adapter=none"], None, "must be unique"),
    (["--baseline", "--config", "a:baseline"], None, "do not mix"),
    (["--baseline", "--adapter", "none"], None, "--baseline runs no model; drop --adapter"),
    (["--limit", "0"], None, "--limit"),
    (["--baseline"], b'{"text": "buy 1 btc"}', "'expected' must be an object"),
    (["--baseline"], b'{"text": "x", "expected": {"intent": "order", "size": 1}}', "outside the contract: size"),
    (["--baseline"], b'{"text": "x", "expected": {"intent": "buy"}}', "intent"),
    (["--baseline"], b'{"text": "x", "expected": {"quantity": "10m"}}', "quantity"),
    (["--baseline"], b'{"text": "x", "expected": {}, "timestamp": "yesterday"}', "timestamp"),
    (["--baseline"], b"not json", "invalid JSON"),
    (["--baseline"], b"", "no examples"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, gold_line, message):
    gold = tmp_path / "gold.jsonl"
    gold.write_bytes(b'{"text": "morning all", "expected": {"intent": "none"}}\n' if gold_line is None
                     else gold_line + b"\n")
    result = CliRunner().invoke(main, ["eval", "--gold", str(gold), "--out-dir", str(tmp_path / "o"), *args])
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit)   # no traceback
    assert message in result.output
    if gold_line:
        assert f"{gold}:1:" in result.output or "no examples" in result.output


def test_missing_gold_file(tmp_path):
    result = CliRunner().invoke(main, ["eval", "--gold", str(tmp_path / "nope.jsonl"), "--baseline"])
    assert result.exit_code == 1
    assert "cannot read" in result.output and "nope.jsonl" in result.output


@pytest.mark.integration
def test_configurations_that_generate_alike_share_one_generation(tmp_path):
    result = CliRunner().invoke(main, [
        "eval", "--gold", str(GOLD_DEV), "--limit", "4", "--n-threads", "2", "--out-dir", str(tmp_path),
        "--config", "strict:scope=all", "--config", "model-only:cross_check=off", "--config", "base:adapter=none",
    ])
    assert result.exit_code == 0, result.output
    payload, predictions = _outputs(tmp_path)
    parsers = {c["name"]: c["parser"] for c in payload["configs"]}
    assert [parsers[n]["generations_from"] for n in ("strict", "model-only", "base")] == ["strict", "strict", "base"]
    rows = {name: [p for p in predictions if p["config"] == name] for name in parsers}
    # the same generation, judged twice: same extraction and latency, reasons from each configuration's own settings
    assert [(p["predicted"], p["latency_ms"]) for p in rows["strict"]] == \
           [(p["predicted"], p["latency_ms"]) for p in rows["model-only"]]
    assert not any(r["code"] == "rules_disagree" for p in rows["model-only"] for r in p["reasons"])
    assert [p["latency_ms"] for p in rows["base"]] != [p["latency_ms"] for p in rows["strict"]]
