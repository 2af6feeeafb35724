"""Fixtures shared by the browser tests: one JupyterLab server per session, Chromium per module."""

from __future__ import annotations

import os

import pytest
from _lab import CHROMIUM, CHROMIUM_ARGS, JupyterLab
from playwright.sync_api import sync_playwright


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    server = JupyterLab(tmp_path_factory.mktemp("lab"))
    try:
        server.wait_until_up()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(
            f"the browser tests need Chromium at {CHROMIUM}, and it is missing: run "
            "`apt-get install -y chromium` (.ci/run does this); never `playwright install`",
            pytrace=False,
        )
    # Module scope: between calls, Playwright's sync API leaves its event loop marked as
    # running in this thread, which must not leak into the asyncio tests that follow.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
