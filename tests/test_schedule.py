"""benchmark.schedule: tasks run as soon as what they need exists, beside the ones still running."""

from __future__ import annotations

import os
import threading
import time

import pytest

from brokenchairs.benchmark.schedule import Task, core_slots, run_tasks
from brokenchairs.errors import InputError

TIMEOUT_S = 20


def test_a_checkpoint_is_scored_while_its_training_still_runs(tmp_path):
    """The 'training' writes epoch 1, then cannot finish until epoch 1 has been scored: a schedule
    that waited for the whole training before scoring would time out here."""
    ckpt, scored, order = tmp_path / "epoch-001.pt", threading.Event(), []

    def train(cores, threads):
        order.append("train start")
        ckpt.write_text("weights")
        assert scored.wait(TIMEOUT_S), "epoch 1 was not scored while the training ran"
        order.append("train end")
        (tmp_path / "complete.json").write_text("{}")

    def score_epoch(cores, threads):
        order.append("score epoch 1")
        scored.set()

    def score_last(cores, threads):
        order.append("score last")

    run_tasks(2, [Task("train", train), Task("eval-last", score_last, (tmp_path / "complete.json").is_file),
                  Task("eval-e001", score_epoch, ckpt.is_file)], poll_s=0.05)
    assert order == ["train start", "score epoch 1", "train end", "score last"]


def test_at_most_jobs_tasks_run_at_once_and_ready_ones_keep_list_order():
    running, peak, order, lock = [0], [0], [], threading.Lock()

    def task(name):
        def fn(cores, threads):
            with lock:
                running[0] += 1
                peak[0] = max(peak[0], running[0])
                order.append(name)
            time.sleep(0.05)
            with lock:
                running[0] -= 1
        return Task(name, fn)

    names = [f"t{i}" for i in range(7)]
    run_tasks(1, [task(n) for n in names])
    assert peak[0] == 1 and order == names
    peak[0], order[:] = 0, []
    run_tasks(3, [task(n) for n in names])
    assert peak[0] == 3 and sorted(order) == names


def test_slots_are_disjoint_core_sets_of_this_process():
    cores = set(os.sched_getaffinity(0))
    slots = core_slots(2)
    assert len(slots) == 2 and all(s and s <= cores for s in slots)
    if len(cores) >= 2:
        assert not slots[0] & slots[1]
    seen, lock, both = [], threading.Lock(), threading.Barrier(2, timeout=TIMEOUT_S)

    def fn(slot, threads):
        assert threads == len(slot)
        both.wait()  # the two tasks run at the same time
        with lock:
            seen.append(frozenset(slot))

    run_tasks(2, [Task("a", fn), Task("b", fn)])
    assert sorted(seen, key=min) == sorted(map(frozenset, slots), key=min)


def test_a_failed_task_stops_the_schedule_and_its_error_is_raised():
    started = []

    def fail(cores, threads):
        started.append("fail")
        raise InputError(None, "stage train-cmt failed (exit 1): boom")

    def later(cores, threads):
        started.append("later")

    with pytest.raises(InputError, match="train-cmt failed"):
        run_tasks(1, [Task("train-cmt", fail), Task("eval", later)])
    assert started == ["fail"]


def test_a_task_whose_input_never_appears_is_an_error_not_a_hang(tmp_path):
    done = []
    t = time.perf_counter()
    with pytest.raises(InputError, match="eval-e005 can never start"):
        run_tasks(2, [Task("train", lambda c, n: done.append("train")),
                      Task("eval-e005", lambda c, n: done.append("eval"), (tmp_path / "epoch-005.pt").is_file)],
                  poll_s=0.05)
    assert done == ["train"] and time.perf_counter() - t < TIMEOUT_S
