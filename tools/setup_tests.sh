#!/usr/bin/env bash
# Install everything the test suite needs on a fresh machine: the package with its
# test extras, and Debian's Chromium for the real-browser tests (never a downloaded
# browser). The README's test command runs this, then pytest; .ci/run runs that command.
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

pip install -q -e ".[jupyter,dev,ray]"

# Arize Phoenix, for the OpenTelemetry round-trip test (tests/test_otel_phoenix.py), pins many
# packages of its own: it lives in its own venv, and the test starts `phoenix serve` from there.
# If it cannot be installed the test skips, unless PLAIT_REQUIRE_PHOENIX=1 (CI) makes that fatal.
if [ ! -x .venv-phoenix/bin/phoenix ]; then
  if python -m venv .venv-phoenix && .venv-phoenix/bin/pip install -q "arize-phoenix>=20.26,<21"; then
    :
  elif [ "${PLAIT_REQUIRE_PHOENIX:-}" = 1 ]; then
    echo "setup_tests: installing arize-phoenix into .venv-phoenix failed" >&2
    exit 1
  else
    echo "setup_tests: arize-phoenix could not be installed; the Phoenix round-trip test will skip" >&2
  fi
fi

if ! command -v chromium >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_tests: chromium is missing and apt-get is not available; install Chromium" \
         "so that /usr/bin/chromium exists (the browser tests need it)" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium >/dev/null
fi

# valgrind: bench/dynamic.py --instructions counts instructions with it (its smoke test runs it).
if ! command -v valgrind >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_tests: valgrind is missing and apt-get is not available; install valgrind" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq valgrind >/dev/null
fi

# The widget bundles' pinned toolchain (esbuild, dagre), from package-lock.json:
# tests/test_widget_bundle.py rebuilds plait_jupyter/static with it and compares.
if ! command -v npm >/dev/null 2>&1; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup_tests: npm is missing and apt-get is not available; install Node.js (>= 18)" \
         "with npm (the widget bundle test rebuilds plait_jupyter/static)" >&2
    exit 1
  fi
  SUDO=""
  if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq nodejs npm >/dev/null
fi
(cd plait_jupyter/js && npm ci --no-audit --no-fund --loglevel=error)
