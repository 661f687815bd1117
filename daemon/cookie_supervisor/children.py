"""Child processes die with the daemon, even when it is killed with SIGKILL.

Each child asks the kernel for SIGKILL when its parent dies (`PR_SET_PDEATHSIG`), set between
fork and exec; a parent that died before that call is noticed by its pid changing. The kernel
keeps the setting across exec but not across a fork, so a child's own children (a JS runtime,
ffmpeg) are covered by the process group the probe kills, and after a SIGKILL by the start-up
sweep, which kills what still runs in a dead daemon's private probe directory
(probe.sweep_stale_copies).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
from collections.abc import Callable

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def _prctl() -> Callable[..., int] | None:
    # Looked up once here, not in the forked child: a child of a threaded process may call only
    # async-signal-safe code before exec, and loading a library is not.
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
        prctl: Callable[..., int] = libc.prctl
        return prctl
    except (OSError, AttributeError):  # not Linux: the process group is all there is
        return None


_PRCTL = _prctl()


def die_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` making the child die with this process; None where that cannot be had."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def preexec() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the call above: follow it now
            os._exit(1)

    return preexec
