"""Drive JupyterLab in headless Chromium: a server in a temp dir, notebooks, and the page.

The server runs as a subprocess with the repository on ``PYTHONPATH`` (so its
kernels import this checkout), no token, and ``expose_app_in_browser`` so
tests reach ``window.jupyterapp``. Its config dir is a fresh temp dir (nothing
from the user's setup; the news pop-up is switched off).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import nbformat

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("PLAIT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}

# Resolves once the open notebook's kernel is connected and has answered kernel_info.
KERNEL_READY = """async () => {
  const panel = window.jupyterapp.shell.currentWidget;
  await panel.context.ready;
  await panel.sessionContext.ready;
  await panel.sessionContext.session.kernel.info;
}"""
HAS_KERNEL = """() => {
  const app = window.jupyterapp;
  const panel = app && app.shell.currentWidget;
  const session = panel && panel.sessionContext && panel.sessionContext.session;
  return Boolean(session && session.kernel);
}"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class JupyterLab:
    """A JupyterLab server serving ``root``; stopped with SIGTERM."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = root / ".jupyter-config"
        (config / "labconfig").mkdir(parents=True)
        (config / "labconfig" / "page_config.json").write_text(
            json.dumps(
                {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}
            )
        )
        env = dict(os.environ, JUPYTER_CONFIG_DIR=str(config))
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        self.log = (root / "server.log").open("w")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyterlab",
                "--allow-root",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--IdentityProvider.token=",
                "--ServerApp.password=",
                f"--ServerApp.root_dir={root}",
                "--LabApp.expose_app_in_browser=True",
            ],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_until_up(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited early; see {self.root / 'server.log'}")
            try:
                urllib.request.urlopen(f"{self.url}/api/status", timeout=1)
                return
            except OSError:
                time.sleep(0.1)  # polling a subprocess's HTTP port: no event to wait on
        raise TimeoutError(f"JupyterLab did not answer on {self.url} within {timeout} s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.log.close()

    def write_notebook(self, name: str, cells: list[str]) -> str:
        notebook = nbformat.v4.new_notebook()
        notebook.metadata["kernelspec"] = KERNELSPEC
        notebook.cells = [nbformat.v4.new_code_cell(source) for source in cells]
        nbformat.write(notebook, self.root / name)
        return name


def open_and_run(page: Any, lab: JupyterLab, name: str) -> None:
    """Open notebook ``name``, wait for its kernel, and run every cell (without waiting)."""
    page.goto(f"{lab.url}/lab/tree/{name}?reset")  # ?reset: no tabs restored from earlier pages
    page.wait_for_function(HAS_KERNEL, timeout=60_000)
    page.evaluate(KERNEL_READY)
    page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")


def view_data(page: Any, index: int = 0) -> dict[str, str]:
    """The data-* attributes of the ``index``-th graph view (render timings, node count)."""
    return page.evaluate(
        "(i) => ({...document.querySelectorAll('.plait-graph')[i].dataset})", index
    )
