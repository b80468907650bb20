"""Run independent tasks in a pool of warm worker processes (or in this process).

Workers are spawned (never forked: Blender must not be inherited half-initialised); each calls
``init(*initargs)`` once -- e.g. imports bpy and builds its scene -- then runs many tasks.
Functions are named as ``"module:function"`` strings so this module never imports bpy.
"""

from __future__ import annotations

import importlib
import multiprocessing as mp
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any


def resolve(name: str) -> Callable:
    module, _, attr = name.partition(":")
    return getattr(importlib.import_module(module), attr)


_BLENDER_SCRIPTS = re.compile(r"[/\\]bpy[/\\]\d+\.\d+[/\\]scripts")


def _init(init: str, initargs: tuple) -> None:
    # A parent that imported bpy hands its sys.path -- with Blender's script folders, which hold a
    # pure-Python 'bpy' package -- to spawned children, where it would shadow the real bpy module.
    sys.path[:] = [p for p in sys.path if not _BLENDER_SCRIPTS.search(p)]
    resolve(init)(*initargs)


def _run(fn: str, task: Any) -> Any:
    return resolve(fn)(task)


def run_tasks(fn: str, tasks: Iterable[Any], workers: int, init: str, initargs: tuple = ()) -> Iterator[Any]:
    """Yield ``fn(task)`` results as tasks finish (in completion order)."""
    tasks = list(tasks)
    if not tasks:
        return
    if workers <= 1 or len(tasks) <= 1:
        _init(init, initargs)
        run = resolve(fn)
        for t in tasks:
            yield run(t)
        return
    ctx = mp.get_context("spawn")
    with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx, initializer=_init,
                             initargs=(init, initargs)) as pool:
        pending = {pool.submit(_run, fn, t) for t in tasks}
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in done:
                    yield fut.result()
        finally:
            for fut in pending:
                fut.cancel()
