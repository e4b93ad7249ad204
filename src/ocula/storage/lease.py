"""Which runs are really running: a process holds an exclusive lock on ``<run>/.lease`` while it
writes the run, and the operating system drops the lock when the process ends however it ends
(``kill -9``, a crash, the machine going down). The index says "running"; the lease says whether
that is still true.

The file also names the holder (``pid host``), so a second process that tries to write the same
run (two ``--resume`` at once) is told who has it. Leases are judged only on the host that wrote
them: a lock on a shared file system need not be visible from other machines.
"""

from __future__ import annotations

import fcntl
import os
import socket
from pathlib import Path

from ocula.errors import UsageError

LEASE_FILE = ".lease"
_held: dict[str, int] = {}  # run path -> descriptor holding its lock, for this process's lifetime


def take(run_path: str | os.PathLike[str]) -> None:
    """Lock ``run_path`` for this process (again: a no-op); UsageError if another process has it."""
    key = os.path.abspath(run_path)
    if key in _held:
        return
    path = Path(key) / LEASE_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
        os.close(fd)
        raise UsageError(f"{key} is being written by {holder}",
                         hint="wait for it to finish, or stop that process first") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[key] = fd


def release(run_path: str | os.PathLike[str]) -> None:
    fd = _held.pop(os.path.abspath(run_path), None)
    if fd is not None:
        os.close(fd)  # closing drops the lock


def is_dead(run_path: str | os.PathLike[str]) -> bool:
    """True when the run's lease was written on this host and no process holds it any more.
    False while it is held, and when it cannot be judged (no lease, another host)."""
    path = Path(run_path) / LEASE_FILE
    if os.path.abspath(run_path) in _held:
        return False
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return False
    try:
        if not os.pread(fd, 200, 0).decode("utf-8", "replace").strip().endswith(f" on {socket.gethostname()}"):
            return False
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True  # we got the lock: its holder is gone (closing below gives it back)
    except BlockingIOError:
        return False
    finally:
        os.close(fd)
