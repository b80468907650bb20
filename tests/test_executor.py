"""The local executor sizes each spawned worker's thread pools to its share of the cores: the
worker's init module is imported while the process sees only that many CPUs (Blender sizes its
TBB pool then), the machine is given back afterwards, and the BLAS pools are capped. Oversized
pools spin idle threads that take CPU time from the other workers (perf/bench_generate.py)."""

from __future__ import annotations

import os

import pytest

from brokenchairs.generation.executor import run_tasks


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs at least 2 CPUs")
def test_spawned_workers_see_their_share_of_cpus_at_import_and_the_machine_afterwards():
    cpus = len(os.sched_getaffinity(0))
    out = list(run_tasks("executor_probe:probe", range(4), 2, "executor_probe:init", cpus=1))
    assert len(out) == 4
    for r in out:
        assert r["cpus_at_import"] == 1 and r["cpus_now"] == cpus
        assert r["blas_threads"] and max(r["blas_threads"]) == 1
    # without a share, workers import seeing the whole machine
    plain = list(run_tasks("executor_probe:probe", range(2), 2, "executor_probe:init"))
    assert all(r["cpus_at_import"] == cpus for r in plain)
