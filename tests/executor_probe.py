"""Worker functions for tests/test_executor.py (spawned workers import them by name)."""

from __future__ import annotations

import os

import numpy  # noqa: F401  (loads OpenBLAS, as a render worker's imports do)

CPUS_AT_IMPORT = len(os.sched_getaffinity(0))  # what a library sizing its pool at import would see


def init() -> None:
    pass


def probe(_task) -> dict:
    from threadpoolctl import threadpool_info

    return {"cpus_at_import": CPUS_AT_IMPORT, "cpus_now": len(os.sched_getaffinity(0)),
            "blas_threads": sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})}
