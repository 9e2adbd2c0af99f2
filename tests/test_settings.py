"""Settings come from STREAMER_* variables; empty ones mean unset."""

from pathlib import Path

import pytest

from streamer.settings import Settings


@pytest.mark.parametrize("env, field, expected", [
    ({"STREAMER_MODEL_PATH": ""}, "model_path", None),
    ({"STREAMER_MODEL_PATH": "/models/x.gguf"}, "model_path", Path("/models/x.gguf")),
    ({"STREAMER_N_THREADS": ""}, "n_threads", None),
    ({"STREAMER_ADAPTER_PATH": ""}, "adapter_path", "bundled"),
    ({"STREAMER_N_GPU_LAYERS": ""}, "n_gpu_layers", 0),
    ({"STREAMER_CONFIDENCE_THRESHOLD": ""}, "confidence_threshold", 0.5),
    ({"STREAMER_N_GPU_LAYERS": "-1"}, "n_gpu_layers", -1),
    ({"STREAMER_INPUT_TOPIC": "desk.chat"}, "input_topic", "desk.chat"),
    ({"STREAMER_CONFIDENCE_THRESHOLD": "0.7"}, "confidence_threshold", 0.7),
])
def test_settings_from_environment(monkeypatch, env, field, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert getattr(Settings(), field) == expected


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("STREAMER_GROUP_ID", "from-env")
    assert Settings(group_id="from-flag").group_id == "from-flag"
