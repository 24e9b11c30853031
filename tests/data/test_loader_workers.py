"""Data workers die with the command that made them, even when it is SIGKILLed."""
from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

CHILD = """
import sys, time
from onespec.data import Loader, digits
train, _ = digits()
loader = Loader(train, batch_size=8, shuffle=True, seed=0, workers=2)
for _ in loader.epoch(0):
    print("batch", flush=True)
    break
time.sleep(120)
"""


def _session(sid: int) -> list[int]:
    """Live processes of session ``sid`` (the killed child's, inherited by everything it started)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] != "Z":
            out.append(int(pid))
    return out


def test_sigkill_of_the_command_leaves_no_worker_and_releases_its_stderr():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=env, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == b"batch", proc.stderr.read().decode()[-2000:]
        assert len(_session(proc.pid)) >= 3  # the command and its two workers
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 1.0
        while _session(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _session(proc.pid) == [], "processes outlived the SIGKILLed command"
        # nothing holds the command's stderr any more: the pipe ends
        fd, deadline = proc.stderr.fileno(), time.monotonic() + 5.0
        while select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
            if os.read(fd, 65536) == b"":
                break
        else:
            raise AssertionError("the command's stderr is still held open after its death")
    finally:
        for pid in _session(proc.pid):
            os.kill(pid, signal.SIGKILL)
        proc.stdout.close()
        proc.stderr.close()
