"""``onespec conformance`` killed mid-run leaves no worker process and no temporary weights."""
import os
import subprocess
import sys

from commands import alive, children_of, wait_until
from conftest import require


def test_killing_conformance_leaves_no_worker_and_no_temporary_weights(tmp_path):
    require("torch")
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    proc = subprocess.Popen([sys.executable, "-m", "onespec", "conformance", "resnet18", "--backends", "torch",
                             "--numerics"], env={**os.environ, "TMPDIR": str(tmpdir)},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    children = children_of(proc.pid, at_least=2)  # the watchdog and the torch worker
    assert len(children) >= 2 and list(tmpdir.iterdir()), "no worker or no temporary directory"
    proc.kill()
    proc.wait(timeout=60)
    wait_until(lambda: not alive(children) and not list(tmpdir.iterdir()), tries=150)
    assert not alive(children), f"orphaned children {alive(children)}"
    assert not list(tmpdir.iterdir()), "temporary weights left behind"
