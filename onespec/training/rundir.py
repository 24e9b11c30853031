"""A run directory as a transaction log: a run killed at any instant resumes to exactly the
uninterrupted result, or refuses with an error that names the file.

Layout of ``out``::

    lock               held (``fcntl.flock``) by the one ``train`` writing here; holds its pid
    in-progress        written first, removed when the run reaches its last step
    commits/<step>/    one complete committed state: checkpoints/{last,best,epoch_<n>}<ext>,
                       optimizer.npz, metrics.jsonl, run.json, curves.png
    current            symlink to the committed state; replacing it is the one commit point
    checkpoints, metrics.jsonl, run.json, optimizer.npz, curves.png
                       symlinks through ``current``, so their paths stay the same across commits

A commit writes a whole new ``commits/<step>/`` (files of earlier epochs hard-linked, not
copied), flushes it to disk, then swaps ``current`` with one ``rename``: a reader or a resumed
run sees the old state or the new one, never a checkpoint of one step with the bookkeeping of
another. Anything under ``commits/`` that ``current`` does not name is an interrupted commit or
a superseded one, and is deleted.

The lock is an ``flock``: the kernel releases it when its holder dies, however it dies, so a
lock left by a killed run is taken over without guessing from pids.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import signal
import time

import numpy as np

from ..weights import atomic_write, save_state
from .engine import TrainError

LOCK, MARKER, CURRENT, COMMITS = "lock", "in-progress", "current", "commits"
LINKS = ("checkpoints", "metrics.jsonl", "run.json", "optimizer.npz", "curves.png")
RUN_FIELDS = {"backend": str, "steps_done": int, "epochs_done": int, "best": (int, float),
              "recipe": dict, "spec": dict}
KILL_ENV = "ONESPEC_TEST_KILL_AT"
_reached: dict[str, int] = {}


def crash_point(name: str) -> None:
    """Test hook for the crash-consistency tests: ``ONESPEC_TEST_KILL_AT=<name>`` (or
    ``<name>@<n>``, the n-th time) SIGKILLs this process at the named point, as a power cut or an
    OOM kill would."""
    want = os.environ.get(KILL_ENV)
    if not want:
        return
    _reached[name] = _reached.get(name, 0) + 1
    point, _, nth = want.partition("@")
    if point == name and _reached[name] == int(nth or 1):
        os.kill(os.getpid(), signal.SIGKILL)


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _link(src: str, dst: str) -> None:
    """``dst`` the same bytes as ``src``: a hard link, or a copy where the filesystem has none."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


class RunDir:
    """The run directory ``out`` of one training run; ``ext``: the native checkpoint extension."""

    def __init__(self, out: str, ext: str):
        self.out, self.ext = out, ext
        self._lock_fd: int | None = None

    def path(self, *parts: str) -> str:
        return os.path.join(self.out, *parts)

    # ------------------------------------------------------------------------- lock and marker
    def acquire(self) -> None:
        """Take the run's lock, or refuse naming the directory and the pid that holds it."""
        try:
            os.makedirs(self.out, exist_ok=True)
            fd = os.open(self.path(LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as err:
            raise TrainError(f"cannot use {self.out} as a run directory: {err.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "unknown"
            os.close(fd)
            raise TrainError(f"{self.out} is in use by another train (pid {holder}, holding "
                             f"{self.path(LOCK)}); wait for it or choose another --out") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def begin(self, resume: bool) -> str | None:
        """Check that ``out`` holds what the command asks for (a new run: nothing; ``resume``: a
        run), write the in-progress marker and clear interrupted commits. Returns the committed
        state's folder, ``None`` when the run starts from its first step."""
        blocked = [n for n in LINKS if os.path.lexists(self.path(n)) and not os.path.islink(self.path(n))]
        if blocked:
            raise TrainError(f"{self.out} holds {', '.join(blocked)} that are not this run's (a run directory keeps "
                             f"them as links to its committed state); train into another --out")
        committed, started = self.committed(), os.path.exists(self.path(MARKER))
        if not resume and (committed or started):
            what = "a run" if committed else "an interrupted run that committed no epoch yet"
            raise TrainError(f"{self.out} already holds {what}; pass --resume to continue it or choose another --out")
        if resume and not (committed or started):
            raise TrainError(f"cannot resume: {self.out} holds no run (no {self.path(CURRENT)})")
        atomic_write(self.path(MARKER), lambda tmp: _write_text(tmp, json.dumps(
            {"pid": os.getpid(), "started": time.time()})), suffix=".json")
        self._collect(committed)
        return committed

    def finish(self) -> None:
        """The run reached its last step: the marker goes."""
        if os.path.exists(self.path(MARKER)):
            os.remove(self.path(MARKER))

    # ------------------------------------------------------------------------- committed state
    def committed(self) -> str | None:
        """The folder ``current`` names, or ``None`` before the first commit."""
        link = self.path(CURRENT)
        if not os.path.islink(link):
            return None
        target = os.path.join(self.out, os.readlink(link))
        if not os.path.isfile(os.path.join(target, "run.json")):
            raise TrainError(f"{link} names {target}, which holds no run.json: the run directory was "
                             f"changed by hand; resume cannot tell which state is committed")
        return target

    def load(self, folder: str) -> tuple[dict, list[dict]]:
        """(run.json, metrics rows) of a committed state, each field checked; a damaged file is
        named in a one-line error."""
        run = read_run_json(os.path.join(folder, "run.json"))
        rows = read_metrics(os.path.join(folder, "metrics.jsonl"))
        return run, rows

    def commit(self, step: int, save, optimizer: dict, rows: list[dict], run: dict, *,
               keep_epoch: int | None = None, is_best: bool = False, plot=None) -> None:
        """Commit the state after ``step``: ``save(path)`` writes the network's native checkpoint;
        ``optimizer``: the update rule's arrays; ``rows``: every metrics row so far; ``run``: the
        run.json fields; ``keep_epoch``: also keep the checkpoint as ``epoch_<n>``; ``is_best``:
        it becomes ``best``; ``plot(path)`` draws the curves."""
        prev = self.committed()
        new = self.path(COMMITS, f"{step:09d}")
        if prev is not None and os.path.realpath(prev) == os.path.realpath(new):
            raise TrainError(f"{new} is already the committed state of step {step}")
        shutil.rmtree(new, ignore_errors=True)
        ck = os.path.join(new, "checkpoints")
        os.makedirs(ck)
        last = os.path.join(ck, "last" + self.ext)
        save(last)
        crash_point("commit.checkpoint")
        self._carry(prev, ck, last, keep_epoch, is_best)
        save_state(optimizer or {"empty": np.zeros(0, np.float32)}, os.path.join(new, "optimizer.npz"))
        crash_point("commit.optimizer")
        _write_text(os.path.join(new, "metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
        crash_point("commit.metrics")
        if plot is not None:
            plot(os.path.join(new, "curves.png"))
        _write_text(os.path.join(new, "run.json"), json.dumps(run, indent=1))
        crash_point("commit.run")
        for root, _, files in os.walk(new):
            for f in files:
                _fsync(os.path.join(root, f))
            _fsync(root)
        _fsync(self.path(COMMITS))
        self._switch(os.path.relpath(new, self.out))
        crash_point("commit.switch")
        self._links()
        crash_point("commit.links")
        self._collect(new)

    def _carry(self, prev: str | None, ck: str, last: str, keep_epoch: int | None, is_best: bool) -> None:
        """``best`` and the ``epoch_<n>`` checkpoints: this commit's, or linked from ``prev``."""
        if prev is not None:
            for name in os.listdir(os.path.join(prev, "checkpoints")):
                if name.startswith("epoch_") or (name.startswith("best") and not is_best):
                    _link(os.path.join(prev, "checkpoints", name), os.path.join(ck, name))
        if is_best or prev is None:
            _link(last, os.path.join(ck, "best" + self.ext))
        if keep_epoch is not None:
            _link(last, os.path.join(ck, f"epoch_{keep_epoch}{self.ext}"))

    def _switch(self, target: str) -> None:
        """Point ``current`` at ``target`` with one atomic rename (the commit point)."""
        tmp = self.path(f".{CURRENT}-{os.getpid()}")
        if os.path.lexists(tmp):
            os.remove(tmp)
        os.symlink(target, tmp)
        os.replace(tmp, self.path(CURRENT))
        _fsync(self.out)

    def _links(self) -> None:
        """The stable names (``checkpoints``, ``run.json`` ...) as symlinks through ``current``."""
        for name in LINKS:
            p = self.path(name)
            if os.path.islink(p) and os.readlink(p) == os.path.join(CURRENT, name):
                continue
            if os.path.lexists(p) and not os.path.islink(p):
                raise TrainError(f"{p} is in the way of the run's link to {os.path.join(CURRENT, name)}")
            tmp = self.path(f".{name}-{os.getpid()}")
            if os.path.lexists(tmp):
                os.remove(tmp)
            os.symlink(os.path.join(CURRENT, name), tmp)
            os.replace(tmp, p)

    def _collect(self, keep: str | None) -> None:
        """Delete every commit folder but ``keep`` and the temporary files of interrupted writes."""
        folder = self.path(COMMITS)
        for name in os.listdir(folder) if os.path.isdir(folder) else ():
            p = os.path.join(folder, name)
            if keep is None or os.path.realpath(p) != os.path.realpath(keep):
                shutil.rmtree(p, ignore_errors=True)
        for name in os.listdir(self.out):
            if name.startswith(".onespec-"):
                shutil.rmtree(self.path(name), ignore_errors=True)
            elif name.startswith((f".{CURRENT}-", *(f".{n}-" for n in LINKS))):
                os.remove(self.path(name))
        if keep is not None:
            self._links()


def _write_text(path: str, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def read_run_json(path: str) -> dict:
    """A committed run.json, every field ``train --resume`` reads present and of its type."""
    try:
        with open(path, encoding="utf-8") as f:
            run = json.load(f)
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise TrainError(f"{path}: not a readable run.json ({str(err).splitlines()[0]})") from None
    if not isinstance(run, dict):
        raise TrainError(f"{path}: not a run.json (a JSON object)")
    for name, kind in RUN_FIELDS.items():
        value = run.get(name)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise TrainError(f"{path}: field {name!r} is missing or not a {getattr(kind, '__name__', 'number')}")
    if run["steps_done"] < 0 or not math.isfinite(run["best"]):
        raise TrainError(f"{path}: steps_done {run['steps_done']} / best {run['best']} out of range")
    return run


def read_metrics(path: str) -> list[dict]:
    """A committed metrics.jsonl: one JSON object with ``kind`` and ``step`` per line."""
    rows = []
    try:
        with open(path, encoding="utf-8") as f:
            for n, line in enumerate(f, 1):
                try:
                    row = json.loads(line)
                except ValueError as err:
                    raise TrainError(f"{path}:{n}: not a JSON line ({err})") from None
                if not (isinstance(row, dict) and row.get("kind") in ("step", "epoch")
                        and isinstance(row.get("step"), int)):
                    raise TrainError(f"{path}:{n}: not a metrics row (needs kind step/epoch and an integer step)")
                rows.append(row)
    except (OSError, UnicodeDecodeError) as err:
        raise TrainError(f"{path}: not readable ({err})") from None
    return rows
