"""Fixtures of the e2e tier: one headless Chromium per test module (``browser``), shared by its tests, each
of which opens and closes its own context or page (``helpers.browser.Watched``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's Chromium, headless, driven by Playwright; closed after the module's last test. Fails (never
    skips) when Chromium is missing."""
    from helpers.browser import chromium  # here: the xdist controller loads this file and runs no test
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium(), headless=True, args=["--disable-gpu"])
        try:
            yield b
        finally:
            b.close()
