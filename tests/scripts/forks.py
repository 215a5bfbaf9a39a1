"""Forks a child that returns from the script while the parent waits for it, then works on."""

import os
import sys
import time

pid = os.fork()
if pid == 0:
    sum(range(100_000))  # the child ends the script normally: the case that must not end the run
else:
    _, status = os.waitpid(pid, 0)
    print(f"child exit status {os.waitstatus_to_exitcode(status)}", file=sys.stderr)
    end = time.monotonic() + 0.3
    while time.monotonic() < end:
        sum(range(1000))
