"""Data-parallel training through each framework's own launcher, 2 processes on CPU (gloo for
torch and Paddle, MindSpore's CPU collectives under msrun): the two ranks' averaged gradient is
the whole batch's, so the result equals one process with the double batch."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from conftest import require
from fixtures_data import tiny
from onespec.training import load_recipe, train

pytestmark = pytest.mark.frameworks
BIN = os.path.dirname(sys.executable)
ONESPEC = shutil.which("onespec", path=BIN) or os.path.join(BIN, "onespec")
ARGS = ["train", "fixtures_data:tiny", "--max-steps", "4", "--batch-size", "8", "--set", "bn=false",
        "--no-progress"]


def _launch(backend: str, out: str, log: str) -> list[str]:
    args = [*ARGS, "--backend", backend, "--out", out]
    if backend == "torch":
        return [os.path.join(BIN, "torchrun"), "--nproc_per_node=2", "--master_port=29533", ONESPEC, *args]
    if backend == "paddle":
        return [sys.executable, "-m", "paddle.distributed.launch", "--nproc_per_node", "2", "--log_dir", log, ONESPEC, *args]
    return [os.path.join(BIN, "msrun"), "--worker_num=2", "--local_worker_num=2", "--master_port=8137",
            f"--log_dir={log}", "--join=True", ONESPEC, *args]


# torchrun in make test; the Paddle and MindSpore launchers (14 s, 19 s) in make slow
@pytest.mark.parametrize("backend", ["torch", pytest.param("paddle", marks=pytest.mark.slow),
                                     pytest.param("mindspore", marks=pytest.mark.slow)])
def test_two_processes_equal_one_with_the_double_batch(backend, tmp_path):
    require(backend)
    tests = os.path.dirname(os.path.dirname(__file__))
    env = {**os.environ, "PYTHONPATH": tests, "PATH": BIN + os.pathsep + os.environ.get("PATH", "")}
    env.pop("ONESPEC_NO_MINDSPORE_PRELOAD", None)
    out = str(tmp_path / "two")
    r = subprocess.run(_launch(backend, out, str(tmp_path / "log")), capture_output=True, text=True, env=env,
                       cwd=str(tmp_path), timeout=300)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    one = train(tiny(bn=False, input_size=32), load_recipe(None, {"max_steps": 4, "batch_size": 16}),
                backend=backend, out=str(tmp_path / "one"), progress=False)
    two = [json.loads(line) for line in open(os.path.join(out, "metrics.jsonl"))]
    two_loss = [row["loss"] for row in two if row["kind"] == "step"]
    np.testing.assert_allclose(two_loss, [row["loss"] for row in one.steps], rtol=1e-5)
    from onespec.backends import load_backend
    be = load_backend(backend)
    ext = {"torch": ".pth", "paddle": ".pdparams", "mindspore": ".ckpt"}[backend]
    a, b = be.read(os.path.join(out, "checkpoints", "last" + ext)), be.read(str(tmp_path / "one" / "checkpoints" / ("last" + ext)))
    for k in a:
        np.testing.assert_allclose(a[k], b[k], atol=1e-6, err_msg=k)
