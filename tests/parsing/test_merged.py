"""The adapter merged into the weights: built once from the shipped files, cached by content, provenance beside it."""

from __future__ import annotations

import logging

import orjson
import pytest

from streamer.parsing.merged import merged_model
from streamer.parsing.model import BUNDLED_ADAPTER, bundled_model_path, merged_or_none, sha256_file
from streamer.settings import Settings


@pytest.fixture(scope="module")
def base():
    path = bundled_model_path()
    return path, sha256_file(path)


@pytest.mark.integration
def test_merged_model_is_built_once_with_its_provenance(tmp_path, base):
    path, sha = base
    built = merged_model(path, sha, BUNDLED_ADAPTER, "trades", "q4_0", tmp_path)
    card = orjson.loads(built.with_suffix(".json").read_bytes())
    assert built.read_bytes()[:4] == b"GGUF"
    assert card["sha256"] == sha256_file(built)
    assert (card["base_model"], card["base_model_sha256"]) == (path.name, sha)
    assert card["adapter_sha256"] == sha256_file(BUNDLED_ADAPTER)
    assert card["merge"]["quantization"] == "q4_0"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".building")] == []

    mtime = built.stat().st_mtime_ns
    assert merged_model(path, sha, BUNDLED_ADAPTER, "trades", "q4_0", tmp_path) == built
    assert built.stat().st_mtime_ns == mtime  # the cache, not a rebuild


@pytest.mark.integration
def test_another_quantization_is_another_file(tmp_path, base):
    path, sha = base
    a = merged_model(path, sha, BUNDLED_ADAPTER, "trades", "q4_0", tmp_path)
    b = merged_model(path, sha, BUNDLED_ADAPTER, "trades", "q8_0", tmp_path)
    assert a != b and "q8_0" in b.name and b.stat().st_size > a.stat().st_size


def test_merging_off_applies_the_adapter_at_run_time(tmp_path, base):
    path, sha = base
    settings = Settings(adapter_merge="off", model_cache_dir=tmp_path)
    assert merged_or_none(settings, path, sha, BUNDLED_ADAPTER) is None
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_cache_falls_back_to_the_runtime_adapter_with_a_warning(tmp_path, base, caplog):
    path, sha = base
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    settings = Settings(adapter_merge="q4_0", model_cache_dir=blocker)
    with caplog.at_level(logging.WARNING):
        assert merged_or_none(settings, path, sha, BUNDLED_ADAPTER) is None
    assert "applying it at run time instead" in caplog.text
