"""Writing into a folder that several processes share, on one host or many (DESIGN.md "Execution").

The members of a job array may all write into one dataset folder on a network file system, on
different hosts, inside containers where every one of them is pid 1. Three rules keep that safe:

- **Temporary names say who wrote them and are unique per write**: ``tmp_path(path)`` is
  ``<name>.tmp-<host>-<host id>-<pid>-<nonce>``. The host id is the kernel's boot id and the PID
  namespace: two processes can judge each other's pids only when both are equal (the same
  kernel, the same pid numbering); the nonce makes every write's name its own even then.
- **A sweep deletes only temporaries it can prove dead** (``sweep``): those of this host id whose
  process is gone, at once; any other (another host, another container, a name it cannot read)
  only when its modification time has not moved for ``TEMP_LEASE_S`` seconds, measured with the
  file system's own clock (a file created to read it), so clock skew between hosts does not count.
- **Shared files are updated under a lock** (``locked``): an ``O_EXCL``-created lock file (exclusive
  create is atomic on local file systems and NFSv3+) holding its owner and time. A waiter breaks
  it when its owner is provably dead (this host id, pid gone) or when it is older than
  ``LOCK_LEASE_S`` (a holder keeps it for milliseconds: read, change, atomic replace). Breaking
  renames the lock aside and checks that it renamed the lock it judged; a fresh lock taken
  meanwhile is put back.

What this does not cover: a holder frozen (stopped, swapped out) for longer than the lock lease
can lose its update to the member that broke its lock (the file itself is never torn: every
write is an atomic rename).
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import re
import secrets
import shutil
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

TEMP_LEASE_S = float(os.environ.get("BROKENCHAIRS_TEMP_LEASE_S", 900))  # 15 min without progress
LOCK_LEASE_S = float(os.environ.get("BROKENCHAIRS_LOCK_LEASE_S", 120))
TMP_MARK = ".tmp-"


def _read(path: str) -> str:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Owner:
    host: str  # host name, for people (letters, digits and '_' only)
    host_id: str  # boot id + PID namespace: equal ids can judge each other's pids
    pid: int

    @staticmethod
    def me() -> Owner:
        return _owner(os.getpid())  # per pid: a forked child is another owner

    @property
    def tag(self) -> str:
        return f"{self.host}-{self.host_id}-{self.pid}"

    def here(self) -> bool:
        """Whether this process can judge the owner's pid (same kernel and PID namespace)."""
        return self.host_id == Owner.me().host_id

    def alive(self) -> bool:
        """Only meaningful when ``here()``."""
        return pid_alive(self.pid)


@functools.lru_cache(maxsize=4)
def _owner(pid: int) -> Owner:
    host = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"
    boot = re.sub(r"[^0-9a-f]", "", _read("/proc/sys/kernel/random/boot_id"))[:12] or "noboot"
    try:
        ns = re.sub(r"\D", "", os.readlink("/proc/self/ns/pid")) or "0"
    except OSError:
        ns = "0"
    return Owner(host, f"{boot}n{ns}", pid)


def tmp_path(path: Path) -> Path:
    """A temporary sibling of ``path``, unique to this write, naming this process and host."""
    path = Path(path)
    return path.with_name(f"{path.name}{TMP_MARK}{Owner.me().tag}-{secrets.token_hex(4)}")


def parse_tmp(name: str) -> Owner | None:
    """The owner written into a temporary name, or None (not a temporary of ours, or another format)."""
    if TMP_MARK not in name:
        return None
    fields = name.rsplit(TMP_MARK, 1)[1].rsplit("-", 3)
    if len(fields) != 4 or not fields[2].isdigit() or not re.fullmatch(r"[0-9a-z]+n\d+", fields[1]):
        return None
    return Owner(fields[0], fields[1], int(fields[2]))


def pid_alive(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a killed worker whose parent died too may linger as an unreaped zombie
        try:
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
        except (OSError, IndexError):
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def fs_now(folder: Path) -> float:
    """The file system's clock, read from a file created in ``folder`` (a network file system
    stamps files with the server's time, not ours)."""
    probe = tmp_path(Path(folder) / ".clock")
    fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    try:
        return os.fstat(fd).st_mtime
    finally:
        os.close(fd)
        probe.unlink(missing_ok=True)


def _age(path: Path, now: float) -> float | None:
    """Seconds since ``path`` (or, for a folder, anything directly in it) last changed; None if gone."""
    try:
        st = path.stat()
        latest = st.st_mtime
        if path.is_dir():
            for child in path.iterdir():
                with contextlib.suppress(OSError):
                    latest = max(latest, child.stat().st_mtime)
    except OSError:
        return None
    return now - latest


def provably_dead(path: Path, now: float, lease_s: float) -> bool:
    owner = parse_tmp(path.name)
    if owner is not None and owner.here():
        return not owner.alive()
    age = _age(path, now)
    return age is not None and age > lease_s


def sweep(folder: Path, lease_s: float | None = None) -> list[Path]:
    """Delete the temporaries (files or folders named ``*.tmp-*``) in ``folder`` that are provably
    dead (module docstring); returns what was deleted."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    cands = sorted(folder.glob(f"*{TMP_MARK}*"))
    if not cands:
        return []
    lease_s = TEMP_LEASE_S if lease_s is None else lease_s
    now = fs_now(folder)
    gone = []
    for p in cands:
        if provably_dead(p, now, lease_s):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            gone.append(p)
    return gone


def write_atomic(path: Path, data: str | bytes | Callable[[BinaryIO], object], sync: bool = False) -> Path:
    """Write ``data`` (or let ``data(file)`` write) to a temporary of this write, then rename it to
    ``path`` (never torn). ``sync``: flush it to the disk first (survives a power cut too)."""
    path = Path(path)
    tmp = tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            if callable(data):
                data(f)
            else:
                f.write(data.encode() if isinstance(data, str) else data)
            if sync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


@contextlib.contextmanager
def write_atomic_folder(folder: Path, empty_only: bool = False) -> Iterator[Path]:
    """A fresh temporary folder beside ``folder`` (``.<name>.<random>``, unique to this write) to
    fill; when the block ends it replaces ``folder`` (an old one is deleted first; ``empty_only``:
    only an empty one, else OSError), and when the block raises it is deleted: ``folder`` is never
    seen half-written."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        yield tmp
        if folder.exists() and empty_only:
            folder.rmdir()
        elif folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# --- the lock ------------------------------------------------------------------------------------
def lock_path(path: Path) -> Path:
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def _lock_owner(text: str) -> Owner | None:
    try:
        d = json.loads(text)
        return Owner(str(d["host"]), str(d["host_id"]), int(d["pid"]))
    except (ValueError, KeyError, TypeError):
        return None


def _try_break(lock: Path, lease_s: float) -> bool:
    """Break ``lock`` if its owner is provably dead or it outlived the lease; True if broken."""
    try:
        text = lock.read_text()
        mtime = lock.stat().st_mtime
    except FileNotFoundError:
        return True  # released meanwhile
    owner = _lock_owner(text)
    if owner is not None and owner.here():
        stale = not owner.alive()
    else:  # another host, or a lock whose owner has not written its name yet (judged by age)
        stale = fs_now(lock.parent) - mtime > lease_s
    if not stale:
        return False
    aside = tmp_path(lock)
    try:
        os.rename(lock, aside)
    except FileNotFoundError:
        return True  # someone else broke or released it
    try:
        if aside.read_text() != text:  # a fresh lock was taken between our look and the rename: put it back
            with contextlib.suppress(FileExistsError):
                os.link(aside, lock)
    finally:
        aside.unlink(missing_ok=True)
    return True


@contextlib.contextmanager
def locked(path: Path, lease_s: float | None = None, timeout_s: float = 3600.0) -> Iterator[None]:
    """Hold the exclusive lock of ``path`` (the file ``.<name>.lock`` beside it) for the block."""
    lock = lock_path(path)
    lease_s = LOCK_LEASE_S if lease_s is None else lease_s
    me = Owner.me()
    text = json.dumps({"host": me.host, "host_id": me.host_id, "pid": me.pid, "time": time.time(),
                       "nonce": secrets.token_hex(8)})
    t0, delay = time.monotonic(), 0.005
    while True:
        try:
            fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not _try_break(lock, lease_s):
                if time.monotonic() - t0 > timeout_s:
                    raise TimeoutError(f"{lock}: held by {_read(str(lock))[:200]} for more than {timeout_s:.0f} s")
                time.sleep(delay * (1 + random.random()))
                delay = min(delay * 2, 0.5)
            continue
        try:
            os.write(fd, text.encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        break
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            if lock.read_text() == text:  # still ours (not broken by a waiter after a lease)
                lock.unlink()
