"""Running the ``onespec`` command in tests, and watching the processes it starts."""
import os
import subprocess
import sys
import time

import onespec
from onespec.weights import init_state, save_state


def cli(*args, cwd=None, timeout=600):
    return subprocess.run([sys.executable, "-m", "onespec", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=timeout)


def sq_state(tmp_path, classes=10):
    """squeezenet1_1 with ``classes`` outputs and a canonical state file of it."""
    spec = onespec.get_spec("squeezenet1_1", num_classes=classes)
    path = str(tmp_path / "sq.npz")
    save_state(init_state(spec, 0), path)
    return spec, path


def children_of(pid: int, at_least: int = 1, timeout: float = 120) -> list[int]:
    """The child processes of ``pid`` once there are ``at_least`` of them (fewer at the timeout)."""
    deadline = time.time() + timeout
    children = []
    while time.time() < deadline and len(children) < at_least:
        out = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True).stdout.split()
        children = [int(c) for c in out]
        time.sleep(0.2)
    return children


def is_alive(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie counts as ended; the state follows the command name,
    which may hold spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def alive(pids) -> list[int]:
    """Those of ``pids`` still running."""
    return [p for p in pids if is_alive(p)]


def wait_until(done, tries: int = 100) -> None:
    """Poll ``done()`` every 0.2 s until it holds or ``tries`` run out."""
    for _ in range(tries):
        if done():
            return
        time.sleep(0.2)
