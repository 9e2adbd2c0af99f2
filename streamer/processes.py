"""Child processes: how they died, in words, and tying their life to their parent's.

The worker runs llama.cpp in a child process and `streamer dev` runs the broker
and the worker as children; each must say plainly how a child ended (a signal
from native code reads very differently from an exit status) and must not
outlive the process that started it.
"""

from __future__ import annotations

import ctypes
import os
import signal

PR_SET_PDEATHSIG = 1  # linux/prctl.h

TROUBLESHOOTING = {
    signal.SIGILL: "an instruction this CPU lacks: see 'Illegal instruction' in the README's Troubleshooting",
}


def describe_exit(status: int | None) -> str:
    """How a child ended, to follow its name: 'was killed by SIGILL (Illegal instruction)', 'exited with status 1'.

    `status` is a Popen/multiprocessing exit code: negative for the signal that ended it.
    """
    if status is None:
        return "is still running"
    if status < 0:
        try:
            signum = signal.Signals(-status)
        except ValueError:
            return f"was killed by signal {-status}"
        return f"was killed by {signum.name} ({signal.strsignal(signum)})"
    return f"exited with status {status}"


def exit_hint(status: int | None) -> str:
    """What to read next for a death whose cause a user can act on ('' when there is nothing to add)."""
    if status is not None and status < 0 and -status in TROUBLESHOOTING:
        return TROUBLESHOOTING[signal.Signals(-status)]
    return ""


def die_with_parent(parent_pid: int, signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send `signum` to this process when its parent `parent_pid` dies (even by SIGKILL).

    Call it first thing in a child (or as `Popen(preexec_fn=partial(die_with_parent, os.getpid()))`):
    an orphaned broker or model process would hold its port or memory until
    someone notices. A no-op where there is no prctl (not Linux).
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
    except (OSError, AttributeError):  # not Linux
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), signum)
