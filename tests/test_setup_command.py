"""The README's test command is what CI runs, installs what the tests need, and a missing browser fails."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_command(marker: str) -> str:
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {marker} -->\n```bash\n(.+)\n```", text)
    assert found, f"README.md has no command after <!-- {marker} -->"
    return found.group(1)


def test_ci_runs_the_readme_test_command_which_installs_chromium_first():
    assert readme_command("test-command") == "bash tools/setup_tests.sh && python -m pytest -q"
    ci = (ROOT / ".ci" / "run").read_text()
    assert "<!-- test-command -->" in ci and 'bash -c "$test_command"' in ci
    setup = (ROOT / "tools" / "setup_tests.sh").read_text()
    assert 'pip install -q -e ".[jupyter,dev]"' in setup
    assert "apt-get install -y -qq chromium" in setup


def run_browser_test(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_profiling.py"),
            "-k",
            "renders_in_chromium",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PLAIT_CHROMIUM": "/nonexistent/chromium", **env},
        timeout=300,
    )


def test_a_missing_browser_fails_with_the_fix_instead_of_skipping():
    done = run_browser_test()
    assert done.returncode == 1, done.stdout
    assert "1 failed" in done.stdout
    assert "needs Chromium at /nonexistent/chromium" in done.stdout
    assert "bash tools/setup_tests.sh" in done.stdout


def test_skipping_the_browser_tests_takes_an_explicit_opt_in():
    done = run_browser_test(PLAIT_ALLOW_NO_BROWSER="1")
    assert done.returncode == 0, done.stdout
    assert "1 skipped" in done.stdout
