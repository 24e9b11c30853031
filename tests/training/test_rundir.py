"""The run directory as a transaction log (``onespec.training.rundir``): ``train`` killed with
SIGKILL at any instant (inside checkpoint writes through ``ONESPEC_TEST_KILL_AT``, anywhere
through random delays) resumes to the uninterrupted run bit for bit, with no process left
behind; one run per directory; damaged bookkeeping named in one line; a diverging run stopped at
its step with the last good checkpoint kept."""
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest

from commands import is_alive
from conftest import require
from fixtures_data import tiny
from onespec.training import TrainError, load_recipe, train
from onespec.training.rundir import KILL_ENV, RunDir

pytestmark = pytest.mark.frameworks
TESTS = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# tiny network on 16x16 digits, 180 training samples: 11 steps an epoch, checkpoints each epoch
SETS = {"batch_size": 16, "eval_batch_size": 512, "data.test_ratio": 0.9,
        "optimizer.name": "adam", "optimizer.lr": 0.01, "epochs": 2}
TIMING = ("images_per_s", "seconds")


CHILD = ("import json, sys; from fixtures_data import tiny; from onespec.training import load_recipe, train; "
         "a = json.loads(sys.argv[1]); train(tiny(10), load_recipe(None, a['sets']), backend='torch', "
         "out=a['out'], resume=a['resume'], progress=False)")


def _train(out: str, resume: bool = False, **sets):
    """The run every test here makes (16x16 tiny network), in this process."""
    return train(tiny(10), load_recipe(None, {**SETS, **sets}), backend="torch", out=out, progress=False, resume=resume)


def _child_args(out: str, resume: bool, workers: int) -> list[str]:
    """The same run as ``_train`` in a process of its own."""
    return [sys.executable, "-c", CHILD, json.dumps({"out": out, "resume": resume,
                                                     "sets": {**SETS, "data.workers": workers}})]


def _env(kill_at: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(TESTS), TESTS])}
    env.pop(KILL_ENV, None)
    if kill_at:
        env[KILL_ENV] = kill_at
    return env


def _children(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc)."""
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat") as f:
                    parents[int(d)] = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                pass
    out, todo = set(), [pid]
    while todo:
        p = todo.pop()
        kids = [c for c, pp in parents.items() if pp == p]
        out.update(kids)
        todo += kids
    return out


def _started(out: str) -> bool:
    return os.path.lexists(os.path.join(out, "current")) or os.path.exists(os.path.join(out, "in-progress"))


def _run_killed(out: str, *, kill_at: str | None = None, delay: float | None = None, workers: int = 0) -> bool:
    """One ``train`` (``--resume`` once the directory holds a run), SIGKILLed by the hook
    ``kill_at`` or after ``delay`` seconds. True when it was killed; every process it started
    is checked gone after the kill."""
    log = tempfile.TemporaryFile("w+")  # not a pipe: a process left behind would hold it open
    proc = subprocess.Popen(_child_args(out, _started(out), workers), env=_env(kill_at),
                            stdout=subprocess.DEVNULL, stderr=log, text=True)
    seen, t0 = set(), time.monotonic()
    while proc.poll() is None:
        seen |= _children(proc.pid)
        if delay is not None and time.monotonic() - t0 > delay:
            seen |= _children(proc.pid)
            proc.send_signal(signal.SIGKILL)
        time.sleep(0.05)
    log.seek(0)
    err = log.read()
    if proc.returncode == 0:
        return False
    assert proc.returncode == -signal.SIGKILL, err[-2000:]
    deadline = time.monotonic() + 10
    while any(is_alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not [p for p in seen if is_alive(p)], f"processes left after the kill: {sorted(seen)}"
    return True


def _result(out: str):
    import torch
    state = torch.load(os.path.join(out, "checkpoints", "last.pth"), weights_only=True)
    best = torch.load(os.path.join(out, "checkpoints", "best.pth"), weights_only=True)
    with open(os.path.join(out, "metrics.jsonl")) as f:
        rows = [{k: v for k, v in json.loads(line).items() if k not in TIMING} for line in f]
    with open(os.path.join(out, "run.json")) as f:
        run = json.load(f)
    run["recipe"]["data"].pop("workers")  # a resumed run may use other workers: the same batches
    epochs = sorted(os.listdir(os.path.join(out, "checkpoints")))
    return {k: v.numpy() for k, v in state.items()}, {k: v.numpy() for k, v in best.items()}, rows, run, epochs


def _assert_same(a, b):
    (wa, ba, ra, runa, ea), (wb, bb, rb, runb, eb) = a, b
    assert wa.keys() == wb.keys() and all(np.array_equal(wa[k], wb[k]) for k in wa), "last weights differ"
    assert all(np.array_equal(ba[k], bb[k]) for k in ba), "best weights differ"
    assert ra == rb and runa == runb and ea == eb


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run, in a fresh process as every killed run is: a test process's torch
    state (its thread count, set by an earlier test) changes float32 reduction order, and with it
    the last bits of the weights."""
    require("torch")
    out = str(tmp_path_factory.mktemp("ref") / "run")
    assert not _run_killed(out)
    return _result(out)


def _resume_to_end(out: str) -> None:
    assert not _run_killed(out)  # the end of the run, in a fresh process like the reference


def test_killed_in_a_checkpoint_write_and_mid_epoch_resumes_bit_for_bit(reference, tmp_path):
    """Killed at epoch 1's commit point; then resumed with data workers and killed between epoch
    2's checkpoint and its run.json (a resume trained that epoch twice and reported a normal run;
    the idle workers and multiprocessing's helpers must die too); then killed inside epoch 2."""
    out = str(tmp_path / "run")
    assert _run_killed(out, kill_at="commit.switch")
    assert _run_killed(out, kill_at="commit.run", workers=2)
    assert _run_killed(out, kill_at="step@4")
    _resume_to_end(out)
    _assert_same(_result(out), reference)
    assert not os.path.exists(os.path.join(out, "in-progress"))
    assert os.listdir(os.path.join(out, "commits")) == [os.readlink(os.path.join(out, "current")).split("/")[-1]]


@pytest.mark.slow
def test_thirty_kills_at_every_commit_point_and_random_instants_resume_bit_for_bit(reference, tmp_path):
    """Every named point of both epochs' commits and two mid-epoch steps (12 kills, each run
    resuming the last), then 20+ kills at random instants of one run; both end equal to the
    uninterrupted run."""
    out = str(tmp_path / "points")
    commit = ["commit.checkpoint", "commit.optimizer", "commit.metrics", "commit.run"]
    points = ["step@3", *commit, "commit.switch", "step@5", *commit, "commit.links"]
    kills = sum(_run_killed(out, kill_at=p, workers=2 * (i % 2)) for i, p in enumerate(points))
    assert kills == len(points)
    _resume_to_end(out)
    _assert_same(_result(out), reference)

    t0 = time.monotonic()
    assert not _run_killed(str(tmp_path / "whole"))  # how long a whole run takes here
    span = time.monotonic() - t0
    _assert_same(_result(str(tmp_path / "whole")), reference)
    rng, runs = random.Random(20261207), 0
    out = str(tmp_path / "random0")
    while kills < 32:
        if _run_killed(out, delay=rng.uniform(0.1, 1.0) * span, workers=rng.choice((0, 2))):
            kills += 1
        else:  # it reached the end before its kill: check it, go on in a new directory
            _assert_same(_result(out), reference)
            runs += 1
            out = str(tmp_path / f"random{runs}")
    _resume_to_end(out)
    _assert_same(_result(out), reference)


def test_a_second_train_into_a_locked_run_refuses_naming_the_holder(tmp_path):
    """An flock conflicts between two opens of the lock file even in one process, so this
    process can hold the lock that ``train`` then finds taken."""
    require("torch")
    out = str(tmp_path / "run")
    holder = RunDir(out, ".pth")
    holder.acquire()
    with pytest.raises(TrainError) as err:
        _train(out)
    assert f"{out} is in use by another train (pid {os.getpid()}" in str(err.value) and "\n" not in str(err.value)
    holder.release()
    assert os.listdir(out) == ["lock"]  # refused before writing anything

    child = os.fork()  # a holder that dies without releasing: the kernel drops its lock
    if child == 0:
        RunDir(out, ".pth").acquire()
        os.kill(os.getpid(), signal.SIGKILL)
    os.waitpid(child, 0)
    assert open(os.path.join(out, "lock")).read().strip() == str(child)
    taker = RunDir(out, ".pth")
    taker.acquire()
    assert open(os.path.join(out, "lock")).read().strip() == str(os.getpid())
    taker.release()


def test_damaged_bookkeeping_is_named_and_a_new_run_refuses_an_old_one(tmp_path):
    require("torch")
    out = str(tmp_path / "run")
    _train(out, max_steps=2)
    with pytest.raises(TrainError, match="already holds a run; pass --resume"):
        _train(out, max_steps=2)
    committed = os.path.realpath(os.path.join(out, "current"))
    run_json, metrics = os.path.join(committed, "run.json"), os.path.join(committed, "metrics.jsonl")
    good_run, good_rows = open(run_json).read(), open(metrics).read()
    lines = good_rows.count("\n")
    cases = [(run_json, good_run[:len(good_run) // 2], "run.json: not a readable run.json"),
             (run_json, json.dumps({k: v for k, v in json.loads(good_run).items() if k != "steps_done"}),
              "run.json: field 'steps_done' is missing"),
             (run_json, b"\xff\xfe{}", "run.json: not a readable run.json"),
             (metrics, good_rows[:-7], f"metrics.jsonl:{lines}: not a JSON line"),
             (metrics, good_rows + '{"kind": "step"}\n', f"metrics.jsonl:{lines + 1}: not a metrics row")]
    for i, (path, text, msg) in enumerate(cases):
        with open(path, "wb") as f:
            f.write(text if isinstance(text, bytes) else text.encode())
        with pytest.raises(TrainError, match=msg) as err:
            if i == 0:  # through train --resume once, the rest through the reader it uses
                _train(out, resume=True, max_steps=2)
            RunDir(out, ".pth").load(committed)
        assert path in str(err.value) and "\n" not in str(err.value)
        with open(run_json, "w") as f:
            f.write(good_run)
        with open(metrics, "w") as f:
            f.write(good_rows)


def test_a_diverging_run_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    """Epoch 1 at a sane LR, then the LR times 1e33 (gamma 1000, the recipe's largest, at eleven
    milestones): the run stops at the first step whose loss or gradient is not finite; the
    committed state stays epoch 1's, curves included."""
    require("torch")
    out = str(tmp_path / "run")
    with pytest.raises(TrainError, match=r"step 1[2-9] \(epoch 2\): the loss is") as err:
        _train(out, **{"schedule.name": "step", "schedule.milestones": [1] * 11, "schedule.gamma": 1000})
    assert "last good checkpoint is" in str(err.value) and "(step 11)" in str(err.value)
    run = json.load(open(os.path.join(out, "run.json")))
    assert run["steps_done"] == 11 and os.path.exists(os.path.join(out, "in-progress"))
    import torch
    sd = torch.load(os.path.join(out, "checkpoints", "last.pth"), weights_only=True)
    assert all(torch.isfinite(v.float()).all() for v in sd.values())
    assert os.path.getsize(os.path.join(out, "curves.png")) > 10_000
    with pytest.raises(TrainError, match=r"step [1-9] \(epoch 1\): the loss is .*; no epoch was committed"):
        _train(str(tmp_path / "lr"), **{"optimizer.lr": 1e3, "schedule.name": "step",
                                          "schedule.milestones": [0] * 10, "schedule.gamma": 1000})
    assert not os.path.lexists(tmp_path / "lr" / "current")


def test_begin_refuses_what_the_command_does_not_ask_for(tmp_path):
    """A new run refuses an interrupted one and files that are not a run's; --resume refuses an
    empty directory."""
    out = str(tmp_path / "run")
    rd = RunDir(out, ".pth")
    rd.acquire()
    with pytest.raises(TrainError, match="cannot resume: .* holds no run"):
        rd.begin(resume=True)
    assert rd.begin(resume=False) is None and os.path.exists(os.path.join(out, "in-progress"))
    with pytest.raises(TrainError, match="already holds an interrupted run that committed no epoch yet; pass --resume"):
        rd.begin(resume=False)
    assert rd.begin(resume=True) is None  # killed before its first commit: starts again from step 0
    rd.release()
    other = str(tmp_path / "other")
    os.makedirs(os.path.join(other, "checkpoints"))
    open(os.path.join(other, "run.json"), "w").write("{}")
    rd = RunDir(other, ".pth")
    rd.acquire()
    with pytest.raises(TrainError, match="holds checkpoints, run.json that are not this run's"):
        rd.begin(resume=True)
    rd.release()
    with open(str(tmp_path / "file"), "w"):
        pass
    with pytest.raises(TrainError, match="cannot use .*file as a run directory"):
        RunDir(str(tmp_path / "file"), ".pth").acquire()
