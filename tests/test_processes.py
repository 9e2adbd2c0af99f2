"""How a child process ended, in words a user can act on."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import pytest

from streamer.processes import describe_exit, die_with_parent, exit_hint


@pytest.mark.parametrize("status, words", [
    (-signal.SIGILL, "was killed by SIGILL (Illegal instruction)"),
    (-signal.SIGSEGV, "was killed by SIGSEGV (Segmentation fault)"),
    (-signal.SIGKILL, "was killed by SIGKILL (Killed)"),
    (-signal.SIGABRT, "was killed by SIGABRT (Aborted)"),
    (-99, "was killed by signal 99"),
    (1, "exited with status 1"),
    (0, "exited with status 0"),
    (None, "is still running"),
])
def test_describe_exit(status, words):
    assert describe_exit(status) == words


@pytest.mark.parametrize("status, points_to_troubleshooting", [
    (-signal.SIGILL, True), (-signal.SIGSEGV, False), (1, False), (None, False),
])
def test_exit_hint_points_an_illegal_instruction_to_the_readme(status, points_to_troubleshooting):
    assert ("Illegal instruction" in exit_hint(status)) is points_to_troubleshooting


def is_alive(pid: int) -> bool:
    """Running, and not a zombie waiting for a reaper that may never come (PID 1 in some containers)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl is Linux-only")
def test_a_child_tied_to_its_parent_dies_with_it():
    # The middle process starts a sleeper tied to it, prints the sleeper's pid, and is SIGKILLed.
    script = ("import os, signal, subprocess, sys, time; from functools import partial;"
              "from streamer.processes import die_with_parent;"
              "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'],"
              " preexec_fn=partial(die_with_parent, os.getpid(), signal.SIGTERM));"
              "print(p.pid, flush=True); time.sleep(60)")
    middle = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    sleeper = int(middle.stdout.readline())
    middle.kill()
    middle.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if not is_alive(sleeper):
            return
        time.sleep(0.05)
    pytest.fail(f"the child {sleeper} outlived its SIGKILLed parent")


def test_die_with_parent_kills_a_child_whose_parent_is_already_gone():
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"],
                             preexec_fn=partial(die_with_parent, -1, signal.SIGTERM))  # -1: never our parent
    assert child.wait(10) == -signal.SIGTERM
