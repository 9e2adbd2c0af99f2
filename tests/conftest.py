"""Shared fixtures: the real default model (loaded once per test session)."""

from __future__ import annotations

import pytest

from streamer.settings import Settings


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    """The bundled SmolLM2 with no adapter: what the untuned model does (alone: no second opinion)."""
    return Settings(adapter_path="none", second_opinion="none", n_threads=2)


@pytest.fixture(scope="session")
def default_settings() -> Settings:
    """The shipped default configuration (bundled model + bundled adapter when present)."""
    return Settings(n_threads=2)


@pytest.fixture(scope="session")
def base_parser(base_settings):
    """The untuned model with the few-shot prompt (a long shared prefix)."""
    from streamer.parsing import Parser

    return Parser(base_settings)


@pytest.fixture(scope="session")
def default_parser(default_settings):
    from streamer.parsing import Parser

    return Parser(default_settings)


@pytest.fixture(scope="session")
def broker():
    """The embedded Tansu broker on a free localhost port, for the whole session (memory only)."""
    from streamer.streaming.broker import free_port, start_broker

    embedded = start_broker(port=free_port())
    yield embedded
    embedded.stop()
