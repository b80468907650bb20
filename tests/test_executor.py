"""The local executor sizes each spawned worker's thread pools to its share of the cores: the
worker's init module is imported while the process sees only that many CPUs (Blender sizes its
TBB pool then) and the BLAS pools are capped. Oversized pools spin idle threads that take CPU
time from the other workers; by default each worker is also bound to cores of its own, since
migrating render workers find their caches cold (perf/bench_generate.py)."""

from __future__ import annotations

import os

import pytest

from brokenchairs.generation.pipeline.executor import run_tasks, worker_cpu_sets

CPUS = len(os.sched_getaffinity(0))


def test_worker_cpu_sets_are_disjoint_shares_in_order_or_none_when_they_do_not_fit():
    assert worker_cpu_sets(2, 1, [3, 1]) == [{1}, {3}]
    assert worker_cpu_sets(2, None, range(8)) == [{0, 1, 2, 3}, {4, 5, 6, 7}]
    assert worker_cpu_sets(3, None, range(8)) == [{0, 1}, {2, 3}, {4, 5}]  # the spare cores stay free
    sets = worker_cpu_sets(4, 2, range(8))
    assert sets is not None and set().union(*sets) == set(range(8)) and sum(map(len, sets)) == 8
    assert worker_cpu_sets(3, 1, [0, 1]) is None  # more workers than cores: the scheduler places them
    assert worker_cpu_sets(2, 2, [0, 1, 2]) is None
    assert worker_cpu_sets(5, None, range(2)) is None


@pytest.mark.skipif(CPUS < 2, reason="needs at least 2 CPUs")
def test_pinned_workers_each_own_their_share_of_cores_from_import_on():
    out = list(run_tasks("executor_probe:probe", ["slow"] * 8, 2, "executor_probe:init", cpus=1))
    assert len(out) == 8
    by_worker = {r["pid"]: tuple(r["affinity"]) for r in out}
    assert len(by_worker) == 2, "two workers ran the tasks"
    cores = list(by_worker.values())
    assert all(len(c) == 1 for c in cores) and cores[0] != cores[1]  # one core each, not the same one
    for r in out:
        assert r["cpus_at_import"] == 1 and r["cpus_now"] == 1
        assert r["blas_threads"] and max(r["blas_threads"]) == 1


@pytest.mark.skipif(CPUS < 2, reason="needs at least 2 CPUs")
def test_unpinned_workers_see_their_share_at_import_and_the_machine_afterwards():
    out = list(run_tasks("executor_probe:probe", range(4), 2, "executor_probe:init", cpus=1, pin=False))
    assert len(out) == 4
    for r in out:
        assert r["cpus_at_import"] == 1 and r["cpus_now"] == CPUS
        assert r["blas_threads"] and max(r["blas_threads"]) == 1
    # without a share, workers import seeing the whole machine
    plain = list(run_tasks("executor_probe:probe", range(2), 2, "executor_probe:init", pin=False))
    assert all(r["cpus_at_import"] == CPUS for r in plain)


@pytest.mark.skipif(CPUS < 2, reason="needs at least 2 CPUs")
def test_more_workers_than_cores_are_not_pinned():
    out = list(run_tasks("executor_probe:probe", range(3 * CPUS), CPUS + 1, "executor_probe:init", cpus=1))
    assert all(r["cpus_now"] == CPUS for r in out)
