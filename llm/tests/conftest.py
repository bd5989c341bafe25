"""Fixtures for the provider layer's tests.

The stand-in fixtures (`gemini_standin`, `gemini_provider`, `gemini_provider_settings`) come from
`tests/fixtures_gemini.py`, which the root conftest loads as a plugin."""

from __future__ import annotations

import logging

import pytest


@pytest.fixture
def call_logs(caplog):
    """The `llm.calls` records written during the test."""
    caplog.set_level(logging.INFO, logger="llm.calls")

    def records() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.name == "llm.calls"]

    return records
