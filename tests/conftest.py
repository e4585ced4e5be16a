"""Shared pytest configuration for the gpuplan tests."""

from __future__ import annotations


def pytest_configure(config):
    """Silence PuLP's own deprecation notices about its 4.0 API (not gpuplan's concern here)."""
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:pulp.*")
