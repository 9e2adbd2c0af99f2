"""Shared fixtures: the real default model (loaded once per test session)."""

from __future__ import annotations

import pytest

from streamer.settings import Settings


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The bundled SmolLM2 with no adapter: what the untuned model does."""
    return Settings(adapter_path="none", n_threads=2)


@pytest.fixture(scope="session")
def default_settings() -> Settings:
    """The shipped default configuration (bundled model + bundled adapter when present)."""
    return Settings(n_threads=2)


@pytest.fixture(scope="session")
def default_parser(default_settings):
    from streamer.parsing import Parser

    return Parser(default_settings)
