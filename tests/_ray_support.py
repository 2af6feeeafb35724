"""One local Ray cluster for the test session, on loopback, shut down when the session ends.

The head node has 2 CPUs; `RayBackend(workers=2)` adds two worker processes and the
coordinator. Tests share one backend (also installed as ``backend="ray"``), so its
workers start once.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import plait.ray
from plait.ray import RayBackend

ray = pytest.importorskip(
    "ray", reason="the Ray backend tests need the ray extra: pip install -e '.[ray]'"
)

ROOT = Path(__file__).resolve().parents[1]
FAST_IMPORTS = Path(__file__).resolve().parent / "_ray_env"  # see its rfc3987_syntax stub


@pytest.fixture(scope="session", name="ray_cluster")
def session_cluster() -> Iterator[RayBackend]:
    saved = os.environ.get("PYTHONPATH")
    # The cluster's processes inherit this environment: they import plait from this checkout,
    # and the modules these tests define (workers unpickle them by name).
    paths = [str(ROOT), str(ROOT / "tests"), str(FAST_IMPORTS), saved]
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, paths))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    temp = tempfile.mkdtemp(prefix="plait-ray-")
    try:
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=temp,
        )
    finally:
        if saved is None:
            del os.environ["PYTHONPATH"]
        else:
            os.environ["PYTHONPATH"] = saved
    backend = RayBackend(workers=2)
    default = plait.ray._DEFAULT
    plait.ray._DEFAULT = backend  # backend="ray" uses these two workers too
    try:
        yield backend
    finally:
        plait.ray._DEFAULT = default
        backend.shutdown()
        ray.shutdown()
