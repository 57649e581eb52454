"""One rdbench at a time per output folder: an exclusive lock on ``OUT/.rdbench.lock``.

The lock is an ``fcntl.flock`` on the file, which the kernel releases when its holder
exits in any way (even ``kill -9``), so a lock is never stale. The file holds who has it
(pid, host, purpose, since when), for the message another rdbench gets.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from datetime import datetime
from pathlib import Path
from types import TracebackType

LOCK_FILE = ".rdbench.lock"


class LockError(RuntimeError):
    """The output folder is in use by another rdbench."""


class OutputLock:
    """``with OutputLock(out, "rdbench run"):`` holds ``out`` for this process, or raises
    :class:`LockError` at once when another process holds it."""

    def __init__(self, out: str | os.PathLike[str], purpose: str) -> None:
        self.out = Path(out)
        self.path = self.out / LOCK_FILE
        self.purpose = purpose
        self._fd: int | None = None

    def __enter__(self) -> OutputLock:
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise LockError(
                f"{self.out} is in use by another rdbench (pid {holder.get('pid', '?')} on {holder.get('host', '?')}, "
                f"{holder.get('purpose', '?')}, since {holder.get('since', '?')}); wait for it to finish"
            ) from None
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "purpose": self.purpose,
            "since": datetime.now().astimezone().isoformat(timespec="seconds"),
        }
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
        self._fd = fd
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
            os.close(self._fd)  # releases the lock
            self._fd = None


def _holder(fd: int) -> dict[str, object]:
    """What the lock's holder wrote into the file (empty while it is still writing)."""
    try:
        holder = json.loads(os.pread(fd, 4096, 0) or b"{}")
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}
