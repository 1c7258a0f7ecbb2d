"""Child processes that die with their parent, whatever killed it (SIGKILL included).

- `watch_parent(pid)`: a daemon thread that ends this process as soon as `pid` is no longer
  its parent (the parent died and the child was re-parented). Works everywhere; used by the
  page workers (their initializer) and by the launcher below.
- `python -m htr.lifeline PARENT_PID -m MODULE ARGS...`: run MODULE (e.g. uvicorn for the
  temporary Prefect server) in a process that also asks Linux for SIGTERM when its parent
  dies (PR_SET_PDEATHSIG) and watches the parent like the workers do.

PR_SET_PDEATHSIG fires when the *thread* that started the child ends, so it is only used where
that thread lives as long as the parent (the server is started from the command's main thread);
page workers are spawned from one of Prefect's pool threads and rely on the watchdog.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import runpy
import signal
import sys
import threading
import time

PR_SET_PDEATHSIG = 1
POLL_S = 0.25


def parent_death_signal(sig: int = signal.SIGTERM) -> bool:
    """Ask the kernel to send `sig` to this process when its parent dies (Linux only); True if set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def _end(grace_s: float) -> None:
    if grace_s > 0:  # let the process shut down cleanly first (uvicorn closes its database)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(grace_s)
    os._exit(1)


def watch_parent(parent_pid: int, grace_s: float = 0.0, poll_s: float = POLL_S) -> threading.Thread | None:
    """End this process (SIGTERM then, after `grace_s`, exit) once `parent_pid` is no longer its parent."""
    if os.getppid() != parent_pid:  # orphaned before we could even look
        _end(0.0)

    def run() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_s)
        _end(grace_s)

    t = threading.Thread(target=run, name="htr-lifeline", daemon=True)
    t.start()
    return t


def main(argv: list[str]) -> None:
    """`PARENT_PID -m MODULE ARGS...`: run MODULE as __main__, tied to PARENT_PID."""
    if len(argv) < 3 or argv[1] != "-m":
        sys.exit("usage: python -m htr.lifeline PARENT_PID -m MODULE [ARGS...]")
    parent = int(argv[0])
    parent_death_signal(signal.SIGTERM)
    watch_parent(parent, grace_s=5.0)
    sys.argv = [argv[2], *argv[3:]]
    runpy.run_module(argv[2], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
