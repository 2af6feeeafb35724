"""The committed widget bundles are exactly what ``plait_jupyter/js/src`` builds.

``tools/setup_tests.sh`` installs the pinned toolchain with ``npm ci`` (from
``package-lock.json``); this test checks the installed packages are the locked
ones, rebuilds into a temporary directory with ``build.mjs`` and compares
every file byte for byte with ``plait_jupyter/static``. The bundles are not
minified, so a review of a change to them reads like a review of the source.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
JS = ROOT / "plait_jupyter" / "js"
STATIC = ROOT / "plait_jupyter" / "static"
BUILT = ("graph_view.js", "progress.js", "review.js", "THIRD_PARTY_LICENSES.txt")
SETUP = "run `npm ci` in plait_jupyter/js (bash tools/setup_tests.sh does)"


def _installed_toolchain() -> None:
    modules = JS / "node_modules"
    assert shutil.which("node"), "node is not on PATH: install Node.js (>= 18) to build the widgets"
    assert modules.is_dir(), f"the widget toolchain is not installed: {SETUP}"
    locked = json.loads((JS / "package-lock.json").read_text(encoding="utf-8"))["packages"]
    for key, meta in locked.items():
        if not key.startswith("node_modules/"):
            continue
        manifest = JS / key / "package.json"
        if not manifest.exists():
            assert meta.get("optional"), f"{key} is missing: {SETUP}"
            continue  # another platform's esbuild binary
        version = json.loads(manifest.read_text(encoding="utf-8"))["version"]
        assert version == meta["version"], f"{key} is {version}, locked {meta['version']}: {SETUP}"


@pytest.fixture(scope="module")
def rebuilt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    _installed_toolchain()
    out = tmp_path_factory.mktemp("static")
    done = subprocess.run(
        ["node", "build.mjs", str(out)], cwd=JS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return out


@pytest.mark.parametrize("name", BUILT)
def test_committed_bundle_is_what_the_sources_build(rebuilt: Path, name: str):
    committed = (STATIC / name).read_text(encoding="utf-8")
    built = (rebuilt / name).read_text(encoding="utf-8")
    assert built == committed, (
        f"plait_jupyter/static/{name} is not what plait_jupyter/js/src builds: "
        "run `npm run build` in plait_jupyter/js and commit the result"
    )


def test_bundles_are_readable():
    # Not minified: source-sized lines, with the source files named in esbuild's comments.
    for name in ("graph_view.js", "progress.js", "review.js"):
        text = (STATIC / name).read_text(encoding="utf-8")
        assert "// src/dom.js" in text, name
        long_lines = [line for line in text.splitlines() if len(line) > 1000]
        assert not long_lines, f"{name} has {len(long_lines)} minified-looking lines"
