"""Writing into a folder shared by processes on one host or many: owner-tagged temporaries, sweeps
that delete only what they can prove dead, and the O_EXCL lock (brokenchairs.shared_folder)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from brokenchairs.shared_folder import Owner, fs_now, lock_path, locked, parse_tmp, sweep, write_atomic, write_atomic_folder
from brokenchairs.shared_folder import tmp_path as temp_name


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _age(path: Path, seconds: float) -> None:
    t = time.time() - seconds
    os.utime(path, (t, t))


def test_temporary_names_are_unique_per_write_and_name_their_owner(tmp_path):
    a, b = temp_name(tmp_path / "queries-00001.h5"), temp_name(tmp_path / "queries-00001.h5")
    assert a != b and a.parent == tmp_path and a.name.startswith("queries-00001.h5.tmp-")
    me = Owner.me()
    assert parse_tmp(a.name) == me and me.pid == os.getpid() and me.here()
    assert parse_tmp("queries-00001.h5") is None and parse_tmp("x.tmp-123") is None  # not ours: judged by age


def test_sweep_deletes_only_what_it_can_prove_dead(tmp_path):
    me = Owner.me()
    other = "otherhost-abc123n4026531999"  # another kernel or PID namespace: its pids mean nothing here

    def temp(owner_tag: str, name: str = "queries-00000.h5", folder=False) -> Path:
        p = tmp_path / f"{name}.tmp-{owner_tag}-0123abcd"
        p.mkdir() if folder else p.write_bytes(b"half a shard")
        return p

    dead = _dead_pid()
    mine_dead = temp(f"{me.host}-{me.host_id}-{dead}")
    mine_live = temp(f"{me.host}-{me.host_id}-{os.getpid()}")
    other_fresh = temp(f"{other}-{dead}")  # pid 'dead' here, but on another host: not provable
    other_stale = temp(f"{other}-1", "queries-00001.h5")
    _age(other_stale, 3600)
    other_dir_busy = temp(f"{other}-1", ".materials", folder=True)  # old folder, but a file inside just moved
    _age(other_dir_busy, 3600)
    (other_dir_busy / "wood-0-0000").mkdir()
    unknown_old = tmp_path / "shard.h5.tmp-777"  # a name of another format: judged by age
    unknown_old.write_bytes(b"")
    _age(unknown_old, 3600)
    done = tmp_path / "queries-00002.h5"
    done.write_bytes(b"complete shard")
    _age(done, 3600)
    gone = set(sweep(tmp_path, lease_s=600))
    assert gone == {mine_dead, other_stale, unknown_old}
    assert all(p.exists() for p in (mine_live, other_fresh, other_dir_busy, done))
    assert not list(tmp_path.glob(".clock*"))  # the clock probe cleans up after itself
    assert abs(fs_now(tmp_path) - time.time()) < 5


_COUNTER = """
import json, sys
from pathlib import Path
from brokenchairs.shared_folder import locked
path = Path(sys.argv[1])
for _ in range(int(sys.argv[2])):
    with locked(path):  # an unprotected read-modify-write would lose increments
        n = json.loads(path.read_text())["n"] if path.exists() else 0
        tmp = path.with_name(path.name + "." + sys.argv[3])
        tmp.write_text(json.dumps({"n": n + 1}))
        tmp.replace(path)
"""


def test_lock_serialises_writers_across_pid_namespaces(tmp_path):
    counter = tmp_path / "counter.json"
    procs = []
    for i in range(6):
        cmd = [sys.executable, "-c", _COUNTER, str(counter), "40", str(i)]
        if i % 2 and shutil.which("unshare") and os.geteuid() == 0:
            cmd = ["unshare", "--pid", "--fork", "--mount-proc", *cmd]  # pid 1 of a namespace of its own
        procs.append(subprocess.Popen(cmd))
    assert [p.wait(timeout=300) for p in procs] == [0] * 6
    assert json.loads(counter.read_text())["n"] == 240
    assert not lock_path(counter).exists()


def test_stale_locks_are_broken_live_ones_are_not(tmp_path):
    target = tmp_path / "dataset.json"
    lock = lock_path(target)
    me = Owner.me()
    # this host, a dead pid: provably dead, broken at once
    lock.write_text(json.dumps({"host": me.host, "host_id": me.host_id, "pid": _dead_pid(), "nonce": "a"}))
    with locked(target, lease_s=3600, timeout_s=5):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    assert not lock.exists()
    # another host, fresh: it may be alive, so we wait (and time out here)
    lock.write_text(json.dumps({"host": "far", "host_id": "feedn1", "pid": 1, "nonce": "b"}))
    with pytest.raises(TimeoutError, match="held by"):
        with locked(target, lease_s=3600, timeout_s=0.3):
            pass
    # the same lock, past its lease: broken
    _age(lock, 7200)
    with locked(target, lease_s=3600, timeout_s=5):
        assert json.loads(lock.read_text())["pid"] == os.getpid()
    # a lock of this process that is no longer ours (broken after a lease) is left to its new owner
    with locked(target):
        lock.write_text(json.dumps({"host": "x", "host_id": "y", "pid": 2, "nonce": "c"}))
    assert json.loads(lock.read_text())["nonce"] == "c"
    assert not list(tmp_path.glob("*.tmp-*"))


def test_atomic_writes_replace_whole_or_leave_the_old_and_no_temporary(tmp_path):
    path = tmp_path / "sub" / "a.json"
    path.parent.mkdir()
    write_atomic(path, "old")
    with pytest.raises(RuntimeError):
        write_atomic(path, lambda f: (f.write(b"half"), (_ for _ in ()).throw(RuntimeError("killed"))))
    assert path.read_text() == "old" and os.listdir(path.parent) == ["a.json"]
    write_atomic(path, b"new", sync=True)
    assert path.read_bytes() == b"new" and os.listdir(path.parent) == ["a.json"]

    folder = tmp_path / "deep" / "shape"
    with write_atomic_folder(folder) as tmp:
        assert tmp.is_dir() and tmp.parent == folder.parent and not folder.exists()
        (tmp / "x.txt").write_text("1")
    assert (folder / "x.txt").read_text() == "1"
    with pytest.raises(RuntimeError), write_atomic_folder(folder) as tmp:
        (tmp / "y.txt").write_text("half")
        raise RuntimeError("killed")
    assert os.listdir(folder) == ["x.txt"] and os.listdir(folder.parent) == ["shape"]
    with write_atomic_folder(folder) as tmp:
        (tmp / "z.txt").write_text("2")
    assert os.listdir(folder) == ["z.txt"] and os.listdir(folder.parent) == ["shape"]  # the old folder replaced
    with pytest.raises(OSError), write_atomic_folder(folder, empty_only=True) as tmp:
        (tmp / "w.txt").write_text("3")
    assert os.listdir(folder) == ["z.txt"] and os.listdir(folder.parent) == ["shape"]  # a full folder is kept
