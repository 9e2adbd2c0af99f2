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
    ({"STREAMER_CONFIDENCE_THRESHOLD": ""}, "confidence_threshold", 0.6),
    ({"STREAMER_N_GPU_LAYERS": "-1"}, "n_gpu_layers", -1),
    ({"STREAMER_INPUT_TOPIC": "desk.chat"}, "input_topic", "desk.chat"),
    ({"STREAMER_CONFIDENCE_THRESHOLD": "0.5"}, "confidence_threshold", 0.5),
])
def test_settings_from_environment(monkeypatch, env, field, expected):
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert getattr(Settings(), field) == expected


def test_flags_override_environment(monkeypatch):
    monkeypatch.setenv("STREAMER_GROUP_ID", "from-env")
    assert Settings(group_id="from-flag").group_id == "from-flag"


@pytest.mark.parametrize("overrides", [
    {},
    {"model_path": Path("/models/x.gguf"), "n_threads": 4, "cpu_extra_buffers": "off", "rules_cross_check": False},
    {"cross_check_trust": 0.99, "parser_factory": "pkg.mod:build", "max_parse_crashes": 3, "data_dir": Path("/d")},
])
def test_to_env_reads_back_as_the_same_settings(monkeypatch, overrides):
    """`streamer dev` hands its settings to the worker it starts through these variables."""
    settings = Settings(**overrides)
    for name in Settings.model_fields:
        monkeypatch.delenv(f"STREAMER_{name.upper()}", raising=False)
    for name, value in settings.to_env().items():
        monkeypatch.setenv(name, value)
    assert Settings() == settings


@pytest.mark.parametrize("value", ["sometimes", "ON ", ""])
def test_cpu_extra_buffers_takes_auto_on_off(monkeypatch, value):
    monkeypatch.setenv("STREAMER_CPU_EXTRA_BUFFERS", value)
    if value == "":
        assert Settings().cpu_extra_buffers == "auto"
    else:
        with pytest.raises(ValueError, match="auto"):
            Settings()
