"""One run per output folder: an exclusive `flock` on OUT/.state/run.lock for the whole run.

The kernel drops the lock when its holder dies (SIGKILL included), so a lock left by a dead
run is simply taken over; the file also names its holder (host, pid, since when) so that a
second run can say who is in the way. Re-entrant within one process: the `htr enrich`
command takes it before its checks, the flow it runs takes it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from htr.errors import OutputError, RunLocked, is_disk_full

LOCK_NAME = "run.lock"

_held: dict[str, int] = {}  # realpath of OUT -> nesting depth in this process
_guard = threading.Lock()


@dataclass(frozen=True)
class Holder:
    """Who holds (or last held) an output folder's lock."""

    host: str
    pid: int
    since: str

    def __str__(self) -> str:
        return f"host {self.host}, pid {self.pid}, since {self.since}"

    def alive(self) -> bool | None:
        """Whether the holder still runs (None: on another host, cannot tell)."""
        if self.host != socket.gethostname():
            return None
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True


@dataclass(frozen=True)
class Acquired:
    """The lock this process now holds, and the dead run it took it over from (if any)."""

    holder: Holder
    took_over: Holder | None = None


def lock_path(out: str | Path) -> Path:
    return Path(out) / ".state" / LOCK_NAME


def _read(fd: int) -> Holder | None:
    try:
        raw = os.pread(fd, 4096, 0)
        return Holder(**json.loads(raw.decode("utf-8"))) if raw.strip() else None
    except (OSError, ValueError, TypeError):
        return None


def _me() -> Holder:
    since = datetime.now(timezone.utc).replace(microsecond=0).isoformat()
    return Holder(socket.gethostname(), os.getpid(), since)


@contextlib.contextmanager
def exclusive(out: str | Path) -> Iterator[Acquired]:
    """Hold OUT's run lock for the `with` block; RunLocked (one line naming the holder) if another run has it."""
    key = os.path.realpath(out)
    with _guard:
        if key in _held:
            _held[key] += 1
            nested = True
        else:
            nested = False
    if nested:
        try:
            yield Acquired(_me())
        finally:
            with _guard:
                _held[key] -= 1
        return
    path = lock_path(out)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    except OSError as e:
        kind = "disk full: " if is_disk_full(e) else ""
        raise OutputError(f"cannot create the run lock: {kind}{e.strerror or e}", path=str(path)) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            if holder is None:
                who = "another htr run (starting up)"
            elif holder.alive() is False:
                who = f"a process started by a run that died ({holder}; pid gone)"
            else:
                who = f"another htr run ({holder})"
            raise RunLocked(f"output folder in use by {who}: wait for it to finish or stop it", path=str(out)) from None
        previous = _read(fd)
        me = _me()
        try:  # who holds it, for the next run to read; a full disk must not stop the lock itself
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode("utf-8"), 0)
        except OSError:
            pass
        with _guard:
            _held[key] = 1
        try:
            yield Acquired(me, previous)
        finally:
            with _guard:
                _held.pop(key, None)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)  # releases the flock
