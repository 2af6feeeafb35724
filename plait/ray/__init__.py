"""Batches on a Ray cluster: ``run_batch(..., backend="ray")`` and ``stream_batch(..., backend="ray")``.

A tour: `RayBackend` (backend.py) traces on the caller and hands items out
in shares (dispatch.py) to `BatchWorker` actors (worker.py), each running
plait's own scheduler on many items at once; graphs that grow while an item
runs (define-by-run) come back as nodes rebound to the caller's modules
(graphs.py). Endpoint limits and the budget hold for the whole cluster
through one `Coordinator` actor whose `Ledger` leases slots and start times
and permits starts to the workers (coordinator.py); the workers' endpoints
take them through `Leases` (leases.py). Ray itself is an optional extra
(``pip install 'plait[ray]'``), imported only when a batch uses it.
"""

from __future__ import annotations

from plait.ray.backend import RayBackend, require_ray
from plait.ray.coordinator import EndpointLimits, Ledger

_DEFAULT: RayBackend | None = None


def default_backend() -> RayBackend:
    """The backend ``backend="ray"`` names: one per process, made on first use.

    `plait.execution.batch` reaches it through the upcall seam (`plait._upcalls`).
    """
    global _DEFAULT
    if _DEFAULT is None:
        _DEFAULT = RayBackend()
    return _DEFAULT


__all__ = ["EndpointLimits", "Ledger", "RayBackend", "default_backend", "require_ray"]
