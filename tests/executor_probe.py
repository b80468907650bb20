"""Worker functions for tests/test_executor.py (spawned workers import them by name)."""

from __future__ import annotations

import os

import numpy  # noqa: F401  (loads OpenBLAS, as a render worker's imports do)

CPUS_AT_IMPORT = len(os.sched_getaffinity(0))  # what a library sizing its pool at import would see


def init() -> None:
    pass


def probe(task) -> dict:
    import time

    from threadpoolctl import threadpool_info

    time.sleep(0.3 if task == "slow" else 0.0)  # long enough that every worker gets tasks
    return {"cpus_at_import": CPUS_AT_IMPORT, "cpus_now": len(os.sched_getaffinity(0)),
            "affinity": sorted(os.sched_getaffinity(0)), "pid": os.getpid(),
            "blas_threads": sorted({p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"})}
