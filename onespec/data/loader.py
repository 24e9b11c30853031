"""Batches, the same bit for bit in every framework and for any number of workers.

The order of an epoch is ``default_rng((seed, epoch)).permutation(n)``; sample ``i`` of epoch
``e`` is augmented with its own generator ``default_rng((seed, epoch, i))``. Nothing depends on
which process made the batch, so workers only change the speed. With ``world`` processes
(data parallel) each global batch of ``batch_size * world`` samples is cut into ``world``
consecutive slices, rank ``r`` taking slice ``r``: two ranks see what one process with the
double batch would.

Workers are ``spawn`` processes (a clean interpreter, not a fork of a process that holds
torch/Paddle/MindSpore threads) that receive the source once and then build whole batches;
``prefetch`` batches are kept in flight so that decoding overlaps training. They die with the
process that made them, even when it is SIGKILLed: each asks Linux for SIGKILL when its parent
dies (``prctl(PR_SET_PDEATHSIG)``) and exits if the parent is already gone. ``spawn`` rather than
``forkserver``: a fork server is a long-lived process of its own that the workers' death signal
would be tied to instead of the command; multiprocessing's resource tracker ends by itself once
the command and the workers, which hold its pipe, are gone.
"""
from __future__ import annotations

import ctypes
import hashlib
import multiprocessing as mp
import os
import signal
from collections import deque
from concurrent.futures import ProcessPoolExecutor

import numpy as np

from .sources import Source
from .transforms import apply

_WORKER: dict = {}


_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> None:
    """SIGKILL this process when ``parent`` dies (Linux); exit now if it already has."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the parent-pid check below still runs
        pass
    if os.getppid() != parent:
        os._exit(1)


def _init_worker(parent, source, transforms, seed):
    _die_with(parent)
    _WORKER.update(source=source, transforms=transforms, seed=seed)


def make_batch(source: Source, transforms, seed: int, epoch: int, indices) -> tuple[np.ndarray, np.ndarray]:
    xs = []
    for i in indices:
        rng = np.random.default_rng((seed, epoch, int(i)))
        x = source.load(int(i))
        xs.append(apply(transforms, x, rng) if source.kind == "image" else x)
    return np.stack(xs).astype(np.float32, copy=False), source.labels[np.asarray(indices, np.int64)]


def _worker_batch(epoch, indices):
    w = _WORKER
    return make_batch(w["source"], w["transforms"], w["seed"], epoch, indices)


class Loader:
    """Iterable of ``(x float32 [B, ...], y int64 [B])`` for one epoch at a time."""

    def __init__(self, source: Source, transforms=(), *, batch_size: int, shuffle: bool, seed: int,
                 drop_last: bool = False, workers: int = 0, prefetch: int = 2, rank: int = 0, world: int = 1):
        self.source, self.transforms = source, tuple(transforms)
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.drop_last, self.workers, self.prefetch = drop_last, workers, max(1, prefetch)
        self.rank, self.world = rank, world
        self._pool = None

    def __len__(self) -> int:
        g = self.batch_size * self.world
        n = len(self.source)
        return n // g if self.drop_last else -(-n // g)

    def order(self, epoch: int) -> np.ndarray:
        n = len(self.source)
        return np.random.default_rng((self.seed, epoch)).permutation(n) if self.shuffle else np.arange(n)

    def batches(self, epoch: int) -> list[np.ndarray]:
        """This rank's index lists for ``epoch``."""
        order, g = self.order(epoch), self.batch_size * self.world
        out = []
        for s in range(len(self)):
            glob = order[s * g:(s + 1) * g]
            per = -(-len(glob) // self.world)
            out.append(glob[self.rank * per:(self.rank + 1) * per])
        return out

    def _executor(self):
        if self._pool is None:
            ctx = mp.get_context("spawn")
            self._pool = ProcessPoolExecutor(self.workers, mp_context=ctx, initializer=_init_worker,
                                             initargs=(os.getpid(), self.source, self.transforms, self.seed))
        return self._pool

    def epoch(self, epoch: int, start: int = 0):
        """Batches of ``epoch`` from batch ``start`` on (a resumed run skips what it has done)."""
        todo = self.batches(epoch)[start:]
        if self.workers <= 0:
            for idx in todo:
                yield make_batch(self.source, self.transforms, self.seed, epoch, idx)
            return
        pool, pending = self._executor(), deque()
        it = iter(todo)
        for idx in it:
            pending.append(pool.submit(_worker_batch, epoch, idx))
            if len(pending) >= self.prefetch + self.workers:
                break
        while pending:
            batch = pending.popleft().result()
            nxt = next(it, None)
            if nxt is not None:
                pending.append(pool.submit(_worker_batch, epoch, nxt))
            yield batch

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
            self._pool = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


def digest(x: np.ndarray, y: np.ndarray, h=None):
    """Running sha256 of batches: equal digests mean the same pixels and labels in the same order."""
    h = h or hashlib.sha256()
    h.update(np.ascontiguousarray(x).tobytes())
    h.update(np.ascontiguousarray(y).tobytes())
    return h
