"""`--config NAME:SPEC` parsing, table-style (no model is loaded)."""

from __future__ import annotations

from pathlib import Path

import pytest

from streamer.cli.evaluation import EvalConfig, parse_config


@pytest.mark.parametrize("text, config", [
    ("rules:baseline", EvalConfig("rules", baseline=True)),
    ("default", EvalConfig("default")),
    ("base:adapter=none,cross_check=off", EvalConfig("base", overrides={"adapter_path": "none",
                                                                        "rules_cross_check": False})),
    ("lenient:threshold=0.6, trust=0.99", EvalConfig("lenient", overrides={"confidence_threshold": 0.6,
                                                                            "cross_check_trust": 0.99})),
    ("big:model=models/x.gguf", EvalConfig("big", overrides={"model_path": Path("models/x.gguf")})),
    ("strict:scope=all", EvalConfig("strict", overrides={"cross_check_scope": "all"})),
])
def test_parse_config(text, config):
    assert parse_config(text) == config
