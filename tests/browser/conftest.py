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
        message = (
            f"the browser tests need Chromium at {CHROMIUM}, and it is missing: run "
            "`bash tools/setup_tests.sh` (it installs Debian's chromium; never "
            "`playwright install`), or set PLAIT_ALLOW_NO_BROWSER=1 to skip them on purpose"
        )
        if os.environ.get("PLAIT_ALLOW_NO_BROWSER") == "1":
            pytest.skip(message)
        pytest.fail(message, pytrace=False)
    # Module scope: between calls, Playwright's sync API leaves its event loop marked as
    # running in this thread, which must not leak into the asyncio tests that follow.
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
