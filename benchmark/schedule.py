"""Run tasks a few at a time, each on cores of its own, each as soon as what it needs exists.

``reproduce table2`` trains its rows side by side and scores checkpoints. A checkpoint's
evaluation needs only that checkpoint, not the end of every training: scheduled by readiness, the
scoring of the query-only row and of CMT's early checkpoints runs on the slot the query-only
training frees while CMT still trains, instead of after it (on two cores this takes the scoring
of ``--preset cpu-missing`` off the critical path).

A slot (``jobs`` of them, the machine's cores split evenly) takes the first task of the list that
is ready; when none is, it waits. Tasks that are always ready and come first (the trainings) thus
all start before any task that waits on them. The first task to fail stops the schedule: no task
starts after it, the ones running finish, and its error is raised. A task that can never become
ready (nothing runs and nothing else is left that could make it so) is an error naming it.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from dataclasses import dataclass

from brokenchairs.errors import InputError
from brokenchairs.generation.pipeline.executor import worker_cpu_sets


def always() -> bool:
    return True


@dataclass(frozen=True)
class Task:
    name: str
    run: Callable[[set[int], int], None]  # called with the slot's cores and their count
    ready: Callable[[], bool] = always


def core_slots(jobs: int) -> list[set[int]]:
    """``jobs`` disjoint equal shares of this process's cores (the generator's ``worker_cpu_sets``);
    all of them shared by every slot when there are fewer cores than jobs."""
    cores = os.sched_getaffinity(0)
    return worker_cpu_sets(jobs, None, cores) or [set(cores)] * max(jobs, 1)


def run_tasks(jobs: int, tasks: list[Task], poll_s: float = 2.0) -> None:
    """Run every task, at most ``jobs`` at a time; see the module docstring."""
    pending = list(tasks)
    state = {"running": 0, "error": None}
    cond = threading.Condition()

    def take() -> Task | None:
        with cond:
            while True:
                if state["error"] is not None or not pending:
                    return None
                task = next((t for t in pending if t.ready()), None)
                if task is not None:
                    pending.remove(task)
                    state["running"] += 1
                    return task
                if state["running"] == 0:
                    state["error"] = InputError(None, f"task {pending[0].name} can never start: nothing left "
                                                      "to make what it needs")
                    cond.notify_all()
                    return None
                cond.wait(poll_s)

    def worker(slot: set[int]) -> None:
        while (task := take()) is not None:
            try:
                task.run(slot, len(slot))
            except Exception as e:  # kept and raised by run_tasks once the running tasks end
                with cond:
                    if state["error"] is None:
                        state["error"] = e
            finally:
                with cond:
                    state["running"] -= 1
                    cond.notify_all()

    threads = [threading.Thread(target=worker, args=(slot,), daemon=True) for slot in core_slots(jobs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if state["error"] is not None:
        raise state["error"]
