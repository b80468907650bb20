"""Run independent tasks in a pool of warm workers: this process, a local process pool, or Ray.

Workers are spawned (never forked: Blender must not be inherited half-initialised); each calls
``init(*initargs)`` once -- e.g. imports bpy and builds its scene -- then runs many tasks.
Functions are named as ``"module:function"`` strings so this module never imports bpy.

- ``local`` (default): a ``ProcessPoolExecutor`` of ``workers`` processes on this machine. Each
  worker asks the kernel to kill it when its parent dies (``PR_SET_PDEATHSIG``), so a ``kill -9``
  of the command leaves no orphan rendering into the folder.
- ``ray``: the same tasks on a Ray cluster (``address`` of a running cluster, or a local
  instance with ``workers`` CPUs); one actor per worker keeps its Blender warm.
Results are yielded in completion order; task outputs (shards) do not depend on the executor.

``cpus``: the cores each worker may use. Idle threads of oversized pools spin (``sched_yield``)
while the worker's one busy thread works, taking CPU time from the other workers: Blender sizes
its TBB pool from the CPUs it sees when bpy is imported, and OpenBLAS (numpy, scipy) spins its
threads after each threaded call. So a spawned worker imports its ``init`` module while the
process sees only ``cpus`` CPUs and caps the BLAS pools at ``cpus`` threads (threadpoolctl).

``pin`` (default): when the workers' shares fit in the cores this process may use, each local
worker is bound for good to its own ``cpus`` cores (``worker_cpu_sets``). Left to the scheduler,
two render workers on two cores migrate and each finds its caches cold (perf/bench_generate.py
--shapes 12, interleaved pairs pinned vs not: 0.53 vs 0.62, 0.58 vs 0.61, 0.61 vs 0.71 CPU-s per
kept query). Unpinned (``pin=False``, or more workers than cores), a worker gets the whole machine
back after its import. Two pinned runs on one machine share the same cores: give each its own
cpuset (``taskset``, a batch scheduler) or ``pin=False``.
"""

from __future__ import annotations

import ctypes
import importlib
import multiprocessing as mp
import os
import re
import signal
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any

EXECUTORS = ("local", "ray")


def resolve(name: str) -> Callable:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


_BLENDER_SCRIPTS = re.compile(r"[/\\]bpy[/\\]\d+\.\d+[/\\]scripts")


def _die_with_parent() -> None:
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except OSError:
            pass  # not glibc: orphans finish their shard; tmp names are per process, so no clash


def import_seeing_cpus(module: str, cpus: int | None) -> None:
    """Import ``module`` while this process sees only ``cpus`` of its CPUs, then restore its mask
    (thread pools sized at import stay that size; the OS may still move threads between cores)."""
    mask = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else set()
    if not cpus or cpus >= len(mask) or module in sys.modules:
        importlib.import_module(module)
        return
    os.sched_setaffinity(0, set(sorted(mask)[:cpus]))
    try:
        importlib.import_module(module)
    finally:
        os.sched_setaffinity(0, mask)


def worker_cpu_sets(workers: int, cpus: int | None, available: Iterable[int]) -> list[set[int]] | None:
    """Disjoint sets of ``cpus`` cores (default: an equal share) for ``workers`` workers, taken in
    order from ``available``; ``None`` when they do not fit (the scheduler then places the workers)."""
    cores = sorted(available)
    per = cpus or max(1, len(cores) // max(1, workers))
    if workers < 1 or workers * per > len(cores):
        return None
    return [set(cores[i * per:(i + 1) * per]) for i in range(workers)]


def drop_blender_script_paths() -> None:
    """Remove Blender's script folders from ``sys.path``. A parent that imported bpy hands its
    sys.path -- with those folders, which hold a pure-Python 'bpy' package -- to spawned children,
    where it would shadow the real bpy module ("No module named '_bpy'")."""
    sys.path[:] = [p for p in sys.path if not _BLENDER_SCRIPTS.search(p)]


def _init(init: str, initargs: tuple, child: bool = False, cpus: int | None = None, cores=None) -> None:
    """``cores``: a queue of CPU sets (``worker_cpu_sets``), one taken by each worker, which binds to it."""
    if child:
        _die_with_parent()
    drop_blender_script_paths()
    if child and cores is not None:
        mine = cores.get(timeout=60)
        os.sched_setaffinity(0, mine)  # for good: thread pools sized at import see exactly these cores
        cpus = len(mine)
    if child:
        import_seeing_cpus(init.partition(":")[0], cpus)
        if cpus:
            from threadpoolctl import threadpool_limits

            threadpool_limits(cpus)  # BLAS libraries loaded later keep their default
    resolve(init)(*initargs)


def _run(fn: str, task: Any) -> Any:
    return resolve(fn)(task)


def run_tasks(fn: str, tasks: Iterable[Any], workers: int, init: str, initargs: tuple = (), executor: str = "local",
              address: str | None = None, cpus: int | None = None, pin: bool = True) -> Iterator[Any]:
    """Yield ``fn(task)`` results as tasks finish (in completion order); ``cpus``: cores per worker;
    ``pin``: bind each local worker to its own cores when they fit (module docstring)."""
    tasks = list(tasks)
    if not tasks:
        return
    if executor == "ray":
        yield from _run_ray(fn, tasks, workers, init, initargs, address, cpus)
        return
    if executor != "local":
        raise ValueError(f"unknown executor {executor!r}; use {' or '.join(EXECUTORS)}")
    if workers <= 1 or len(tasks) <= 1:
        _init(init, initargs)
        run = resolve(fn)
        for t in tasks:
            yield run(t)
        return
    ctx = mp.get_context("spawn")
    n = min(workers, len(tasks))
    sets = worker_cpu_sets(n, cpus, os.sched_getaffinity(0)) if pin and hasattr(os, "sched_setaffinity") else None
    cores = None
    if sets is not None:
        cores = ctx.Queue()
        for cpu_set in sets:
            cores.put(cpu_set)
    with ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_init,
                             initargs=(init, initargs, True, cpus, cores)) as pool:
        pending = {pool.submit(_run, fn, t) for t in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()


def _run_ray(fn: str, tasks: list, workers: int, init: str, initargs: tuple, address: str | None,
             cpus: int | None) -> Iterator[Any]:
    import ray
    from ray.util import ActorPool

    started = not ray.is_initialized()
    if started:
        kwargs = {"address": address} if address else {"num_cpus": max(1, workers), "include_dashboard": False}
        ray.init(log_to_driver=False, configure_logging=False, **kwargs)

    @ray.remote(num_cpus=1)
    class Worker:
        def __init__(self):
            _init(init, initargs, True, cpus)
            self.run = resolve(fn)

        def __call__(self, task):
            return self.run(task)

    try:
        n = max(1, min(workers, len(tasks)))
        pool = ActorPool([Worker.remote() for _ in range(n)])
        yield from pool.map_unordered(lambda actor, t: actor.__call__.remote(t), tasks)
    finally:
        if started:
            ray.shutdown()
