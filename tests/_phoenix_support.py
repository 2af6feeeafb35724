"""A real Arize Phoenix server on loopback, from the venv tools/setup_tests.sh builds for it.

Phoenix pins many packages of its own, so it is installed into ``.venv-phoenix``
(never into the test environment) and started as ``phoenix serve`` with SQLite
storage in a temporary directory, on free ports, without telemetry.

    with phoenix_server(tmp_path) as url:
        ...export spans to url + "/v1/traces", read them from url + "/v1/projects/..."
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
PHOENIX = ROOT / ".venv-phoenix" / "bin" / "phoenix"
STARTUP = 240  # seconds; a cold start imports a lot (about a minute on a busy 2-core machine)


def require_phoenix() -> Path:
    """The ``phoenix`` executable; skips when it is not installed, unless CI requires it."""
    if PHOENIX.exists():
        return PHOENIX
    message = f"Arize Phoenix is not installed at {PHOENIX} (tools/setup_tests.sh installs it)"
    if os.environ.get("PLAIT_REQUIRE_PHOENIX") == "1":
        pytest.fail(message)
    pytest.skip(message)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def phoenix_server(workdir: Path) -> Iterator[str]:
    """Start Phoenix with its data in ``workdir``; yields its base URL; stops it afterwards."""
    executable = require_phoenix()
    port = free_port()
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(workdir),
        "PHOENIX_WORKING_DIR": str(workdir),
        "PHOENIX_SQL_DATABASE_URL": f"sqlite:///{workdir / 'phoenix.db'}",
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(free_port()),
        "PHOENIX_TELEMETRY_ENABLED": "false",
    }
    log = (workdir / "phoenix.log").open("wb")
    process = subprocess.Popen(
        [str(executable), "serve"],
        env=env,
        cwd=workdir,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, stopped as a whole below
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP
        while True:
            if process.poll() is not None:
                raise RuntimeError(
                    f"phoenix serve exited with {process.returncode}:\n{tail(workdir)}"
                )
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"phoenix serve did not answer in {STARTUP} s:\n{tail(workdir)}")
            time.sleep(0.5)
        yield url
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def tail(workdir: Path, lines: int = 30) -> str:
    text = (workdir / "phoenix.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def read_spans(url: str, project: str, expected: int, timeout: float = 30) -> list[dict]:
    """The project's spans through Phoenix's REST API, once ``expected`` of them are stored."""
    deadline = time.monotonic() + timeout
    spans: list[dict] = []
    while time.monotonic() < deadline:
        response = httpx.get(
            f"{url}/v1/projects/{project}/spans", params={"limit": 1000}, timeout=10
        )
        if response.status_code == 200:
            spans = response.json()["data"]
            if len(spans) >= expected:
                return spans
        time.sleep(0.5)  # Phoenix inserts what it receives in batches
    raise AssertionError(
        f"Phoenix holds {len(spans)} spans of project {project!r}, expected {expected}"
    )
