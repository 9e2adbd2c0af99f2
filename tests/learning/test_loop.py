"""The whole continuous-learning loop at tiny scale, on the embedded broker with the real model and a real (two-step)
fine-tune: corrections published -> collect -> train -> blend with production -> gate promotes -> a running worker
switches version mid-stream (to the blend, an adapter of twice the rank), with no message lost or parsed twice.

The two steps use a tiny learning rate, so the candidate parses like production and the gate's "no drop" checks
hold by construction: this test is about the loop's mechanics; docs/learning.md is the real run.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from streamer.cli import main
from streamer.learning.registry import Registry

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "streaming"))
from streaming_helpers import WorkerProcess, fresh_stream_settings, outputs_by_source, produce_raw, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.finetune]

LABELLED = [  # new lines, written for this test, in the annotation conventions
    ("Mine 15 Eurusd 1W Fwd", {"intent": "order", "side": "buy", "asset_class": "fx_forward", "symbol": "EURUSD",
                                "quantity": 15e6, "currency": "EUR", "tenor": "1W"}),
    ("SELL 40 AUDUSD 2M", {"intent": "order", "side": "sell", "asset_class": "fx_forward", "symbol": "AUDUSD",
                           "quantity": 40e6, "currency": "AUD", "tenor": "2M"}),
    ("Px On 25 Usdcad 6M?", {"intent": "rfq", "side": "two_way", "asset_class": "fx_forward", "symbol": "USDCAD",
                             "quantity": 25e6, "currency": "USD", "tenor": "6M"}),
    ("Buy 8 Nzdusd 3M Outright", {"intent": "order", "side": "buy", "asset_class": "fx_forward", "symbol": "NZDUSD",
                                  "quantity": 8e6, "currency": "NZD", "tenor": "3M"}),
    ("YOURS 12 GBPUSD 1M", {"intent": "order", "side": "sell", "asset_class": "fx_forward", "symbol": "GBPUSD",
                            "quantity": 12e6, "currency": "GBP", "tenor": "1M"}),
    ("Sell 30 Eurchf 2W", {"intent": "order", "side": "sell", "asset_class": "fx_forward", "symbol": "EURCHF",
                           "quantity": 30e6, "currency": "EUR", "tenor": "2W"}),
    ("thx all, fwds quiet today", {"intent": "none"}),
    ("BUY 50 USDJPY 9M", {"intent": "order", "side": "buy", "asset_class": "fx_forward", "symbol": "USDJPY",
                          "quantity": 50e6, "currency": "USD", "tenor": "9M"}),
]
FIELDS = ("intent", "side", "asset_class", "symbol", "quantity", "currency", "price", "bid", "ask", "order_type",
          "tenor", "counterparty")
STREAM = ["buy 10m cable", "sell 200 AAPL lmt 187.5", "eurusd 1.0848/50", "bid 5m eurjpy at 162.10"]


def write_jsonl(path: Path, lines: list[tuple[str, dict]], prefix: str) -> Path:
    path.write_text("".join(json.dumps({"id": f"{prefix}{i}", "text": text,
                                        "expected": {name: fields.get(name) for name in FIELDS}}) + "\n"
                            for i, (text, fields) in enumerate(lines)))
    return path


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def chat(text: str) -> tuple[bytes, bytes]:
    return b"fx-1", orjson.dumps({"text": text, "channel": "fx-1"})


def versions(outputs: dict, positions) -> list[str]:
    return [outputs[p][0].json()["provenance"]["model_version"] for p in positions]


def test_corrections_to_a_promoted_model_that_a_running_worker_swaps_to(default_settings, broker, tmp_path,
                                                                          monkeypatch):
    registry = Registry.init(tmp_path / "registry", by="test")
    settings = fresh_stream_settings(default_settings, broker, tmp_path)
    settings = settings.model_copy(update={"registry_dir": registry.path, "registry_poll_s": 0.5,
                                           "corrections_topic": f"{settings.input_topic}.corrections"})
    for name, value in settings.to_env().items():  # the CLI steps read the same settings
        monkeypatch.setenv(name, value)
    labelled = write_jsonl(tmp_path / "labelled.jsonl", LABELLED, "t")
    small = write_jsonl(tmp_path / "small_set.jsonl", LABELLED[:3], "s")  # stands in for the blind and old sets

    worker = WorkerProcess(settings, tmp_path / "worker.log").start()
    try:
        early = produce_raw(settings, [chat(text) for text in STREAM[:2]])
        wait_until(lambda: set(early) <= outputs_by_source(settings).keys(), worker, "v0's outputs")

        invoke("learn", "feed", str(labelled), "--reviewer", "ann", "--no-model-output")
        (tmp_path / "frozen.jsonl").write_text(json.dumps({"text": "a frozen line no correction shares"}) + "\n")
        invoke("learn", "collect", "--out", str(tmp_path / "c1"), "--frozen", str(tmp_path / "frozen.jsonl"))
        manifest = json.loads((tmp_path / "c1" / "manifest.json").read_text())
        assert manifest["counts"]["examples"] == len(LABELLED) and manifest["counts"]["bad"] == 0

        invoke("learn", "train", "--corrections", str(tmp_path / "c1"), "--out", str(tmp_path / "cand"),
               "--steps", "2", "--lr", "1e-7", "--replay", str(small), "--case-variants", "0")
        invoke("learn", "blend", "--candidate", str(tmp_path / "cand"), "--out", str(tmp_path / "blend"),
               "--weights", "0.5", "--dev", str(small))
        assert json.loads((tmp_path / "blend" / "adapter.json").read_text())["blend"]["weight"] == 0.5
        invoke("learn", "gate", "--candidate", str(tmp_path / "blend"), "--corrections", str(tmp_path / "c1"),
               "--by", "ann", "--blind", str(small), "--forgetting", str(small))
        assert registry.current().version == "v1" and registry.get("v1").parent == "v0"
        assert (registry.path / "v1" / "gate.png").is_file()

        wait_until(lambda: "model swap: v1 is ready" in worker.log_path.read_text(), worker, "v1 to load")
        late = produce_raw(settings, [chat(text) for text in STREAM[2:]])
        outputs = wait_until(lambda: (found := outputs_by_source(settings)) and set(early + late) <= found.keys()
                             and found, worker, "every output")
    finally:
        worker.stop()
    assert all(len(records) == 1 for records in outputs.values()), "a message parsed twice"
    assert set(outputs) == set(early + late), "an output without its input"
    assert versions(outputs, early) == ["v0", "v0"] and versions(outputs, late) == ["v1", "v1"]
