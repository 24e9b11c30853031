"""The training and evaluation loop, one for every framework.

The framework does only what must be native: the forward, the backward and tensor arithmetic
(the backend contract's ``session``, ``dist_start``, ``dist_end`` and checkpoint extension).
Everything that decides *what* is trained is here and framework-free: the batches
(``onespec.data``), the initial state (``engine.load_start``), the per-step LR and momentum
(``schedule``), the update rule (``optim``), the loss (cross-entropy against label-smoothed
one-hot targets), gradient clipping, dropout seeds (one per step).

Every epoch's end is one commit of the run directory (``rundir.RunDir``). A run resumes from its
last commit (an epoch's end, or the step ``max_steps`` stopped it at): data order, augmentation
and dropout are functions of (seed, epoch, sample) and (seed, step), so the continued run
computes what an uninterrupted one does, bit for bit. A loss, gradient or weight that is not
finite stops the run at the step that made it, the last committed checkpoint kept.
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .. import data as D
from ..backends import check_backend, framework, frameworks, load_backend
from ..backends.tree import under
from ..spec import ModelSpec
from ..weights import layout, load_state, save_state
from . import optim, report
from ..models import for_recipe
from .engine import TrainError, check_fits, check_inputs, frozen_paths, load_start, open_data, transforms_for
from .recipe import Recipe, as_recipe
from .rundir import RunDir, crash_point
from .schedule import schedule


SPEED_ONLY = ("workers", "prefetch")  # data fields a resumed run may change


@dataclass
class History:
    """What ``train`` returns: the epoch rows of ``metrics.jsonl`` and where the run lives."""
    out: str
    backend: str
    epochs: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    rank: int = 0

    @property
    def final(self) -> dict:
        return self.epochs[-1] if self.epochs else {}


# the process count each framework's launcher (torchrun, paddle.distributed.launch, msrun) sets


def dist_start(backend: str) -> tuple[int, int]:
    """(rank, world): the launcher's process group joined when one started this process."""
    var = framework(backend).launcher_world_env
    if not (var and os.environ.get(var, "").isdigit() and int(os.environ[var]) > 1):
        return 0, 1
    return load_backend(backend).dist_start()


def targets(y: np.ndarray, k: int, smoothing: float) -> np.ndarray:
    """Label-smoothed one-hot targets."""
    t = np.full((len(y), k), smoothing / k, np.float32)
    t[np.arange(len(y)), y] += np.float32(1.0 - smoothing)
    return t


def predict_all(sess, loader):
    """(logits, labels, mean cross-entropy) of an eval-mode pass over ``loader``."""
    sess.set_train(False)
    logits, labels = [], []
    for x, y in loader.epoch(0):
        logits.append(sess.predict(x))
        labels.append(y)
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    z = logits - logits.max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    loss = float(-logp[np.arange(len(labels)), labels].mean())
    return logits, labels, loss


@dataclass
class _Epoch:
    """Running totals of one training epoch."""
    t0: float = field(default_factory=time.perf_counter)
    seen: int = 0
    correct: int = 0
    loss_sum: float = 0.0
    batches: int = 0
    digest: object = None


class Trainer:
    """One run's network, session, optimizer state and loaders; ``fit`` trains it to the end of
    the schedule, committing each epoch to a ``RunDir`` (rank 0 only)."""

    def __init__(self, spec: ModelSpec, recipe: Recipe, backend: str, sources, frozen: tuple[str, ...],
                 state: dict, rank: int = 0, world: int = 1, precision: str = "float32"):
        train_src, self.val_src = sources
        self.spec, self.recipe, self.backend, self.rank, self.world = spec, recipe, backend, rank, world
        self.classes = len(train_src.classes)
        tf_train, tf_eval = transforms_for(recipe, spec, True), transforms_for(recipe, spec, False)
        d = recipe.data
        self.train_loader = D.Loader(train_src, tf_train, batch_size=recipe.batch_size, shuffle=True,
                                     seed=recipe.seed, drop_last=recipe.drop_last, workers=d.workers,
                                     prefetch=d.prefetch, rank=rank, world=world)
        if len(self.train_loader) == 0:
            raise TrainError(f"{len(train_src)} training samples make no batch of {recipe.batch_size * world}")
        self.val_loader = D.Loader(self.val_src, tf_eval, batch_size=recipe.eval_batch_size or recipe.batch_size,
                                   shuffle=False, seed=recipe.seed, workers=d.workers, prefetch=d.prefetch)
        self.per_epoch = len(self.train_loader)
        self.lrs, self.moms = schedule(recipe, self.per_epoch)
        self.total = len(self.lrs) if recipe.max_steps is None else min(len(self.lrs), recipe.max_steps)
        self.be = load_backend(backend)
        self.ext = framework(backend).extensions[0]
        self.net = self.be.build(spec)
        self.be.load_state(self.net, spec, state)
        lay = layout(spec)
        trainable = [c for c, t in lay.items() if t.trainable and not under(c, frozen)]
        self.sess = self.be.session(self.net, spec, trainable, frozen, precision)
        opt = recipe.optimizer
        self.ostate = {c: optim.init(opt, p, self.sess) for c, p in self.sess.params.items()}
        self.decay = {c: optim.decays(opt, lay[c].role) for c in self.sess.params}
        self.step, self.best, self.rows = 0, -1.0, []
        self.committed = (0, "")  # (step, checkpoint) of the last commit
        self.snapshots: tuple[int, ...] = ()
        self.snapshot_dir = ""

    # ------------------------------------------------------------------------- state
    def optimizer_arrays(self) -> dict[str, np.ndarray]:
        return {f"{c}/{s}": self.sess.numpy(v) for c, st in self.ostate.items() for s, v in st.items()}

    def restore(self, rundir: RunDir, folder: str) -> None:
        """Continue from the committed state in ``folder``: weights, optimizer, progress, rows."""
        run, rows = rundir.load(folder)
        out = rundir.out
        check_same_run(out, run, self.spec, self.recipe, self.backend)
        self.be.load(self.net, os.path.join(folder, "checkpoints", "last" + self.ext))
        path = os.path.join(folder, "optimizer.npz")
        saved = load_state(path)
        for c in self.sess.params:
            for s in self.ostate[c]:
                if f"{c}/{s}" not in saved:
                    raise TrainError(f"{path} has no {c}/{s}: not the optimizer state of this run")
                self.ostate[c][s] = self.sess.tensor(saved[f"{c}/{s}"])
        self.step, self.best = run["steps_done"], run["best"]
        self.rows = [r for r in rows if r["step"] <= self.step and not r.get("partial")]
        self.committed = (self.step, os.path.join(out, "checkpoints", "last" + self.ext))

    def _snapshot(self, step: int) -> None:
        if step in self.snapshots and self.rank == 0:
            save_state(self.be.get_state(self.net, self.spec), os.path.join(self.snapshot_dir, f"step_{step}.npz"))

    def _diverged(self, what: str) -> TrainError:
        step, path = self.committed
        kept = f"the last good checkpoint is {path} (step {step})" if path else "no epoch was committed"
        return TrainError(f"{what}: training diverged and stops here; {kept}")

    # ------------------------------------------------------------------------- the loop
    def fit(self, rundir: RunDir | None, bar=None) -> None:
        """Train from ``self.step`` to the end of the schedule; ``rundir``: where rank 0 commits."""
        first_epoch, offset = divmod(self.step, self.per_epoch)
        for epoch in range(first_epoch, self.recipe.epochs):
            if self.step >= self.total:
                break
            self.sess.set_train(True)
            ep = _Epoch()
            for x, y in self.train_loader.epoch(epoch, offset if epoch == first_epoch else 0):
                if self.step >= self.total:
                    break
                ep.digest = D.digest(x, y, ep.digest)
                self._train_step(x, y, epoch, ep, bar)
            if rundir is not None and ep.batches:
                self._end_epoch(rundir, epoch, ep, bar)

    def _train_step(self, x, y, epoch: int, ep: _Epoch, bar) -> None:
        recipe, sess, step = self.recipe, self.sess, self.step
        sess.seed(recipe.seed * 1_000_003 + step)  # per step: a resumed run draws the same dropout masks
        loss, logits, grads = sess.step_grads(x, targets(y, self.classes, recipe.label_smoothing))
        norm = float(np.sqrt(sum(sess.sumsq(g) for g in grads.values())))
        if not (math.isfinite(loss) and math.isfinite(norm)):
            raise self._diverged(f"step {step + 1} (epoch {epoch + 1}): the loss is {loss:g}, "
                                 f"the gradient norm {norm:g}")
        f = optim.clip_factor(norm, recipe.clip_grad_norm)
        lr, mom = float(self.lrs[step]), (None if self.moms is None else float(self.moms[step]))
        with sess.no_grad():
            for c, p in sess.params.items():
                g = grads[c] * f if f < 1.0 else grads[c]
                new = optim.update(recipe.optimizer, p, g, self.ostate[c], lr, step + 1, sess, self.decay[c], mom)
                sess.assign(p, new)
        self.step = step = step + 1
        crash_point("step")
        self._snapshot(step)
        ep.batches += 1
        ep.seen += len(y)
        ep.correct += int((logits.argmax(1) == y).sum())
        ep.loss_sum += loss
        self.rows.append({"kind": "step", "epoch": epoch, "step": step, "loss": loss, "lr": lr,
                          "grad_norm": norm, **({"momentum": mom} if mom is not None else {})})
        if bar is not None:
            bar.update(1)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}", acc=f"{ep.correct / ep.seen:.3f}",
                            img_s=f"{ep.seen * self.world / (time.perf_counter() - ep.t0):.0f}", lr=f"{lr:.3g}")

    def _end_epoch(self, rundir: RunDir, epoch: int, ep: _Epoch, bar) -> None:
        """Evaluate, check the weights are finite, commit the epoch."""
        elapsed = time.perf_counter() - ep.t0
        logits, labels, val_loss = predict_all(self.sess, self.val_loader)
        bad = [k for k, v in self.be.get_state(self.net, self.spec).items() if not np.isfinite(v).all()]
        if bad or not math.isfinite(val_loss):
            what = f"{', '.join(bad[:3])} not finite" if bad else f"validation loss {val_loss:g}"
            raise self._diverged(f"after step {self.step} (epoch {epoch + 1}): {what}")
        res = report.classification(logits, labels, self.val_src.classes)
        row = {"kind": "epoch", "epoch": epoch, "step": self.step, "train_loss": ep.loss_sum / ep.batches,
               "train_acc": ep.correct / max(ep.seen, 1), "val_loss": val_loss, "val_acc": res["top1"],
               "val_top5": res["top5"], "lr": float(self.lrs[self.step - 1]),
               "images_per_s": ep.seen * self.world / elapsed, "seconds": elapsed,
               "data_digest": ep.digest.hexdigest() if ep.digest else ""}
        if self.step % self.per_epoch:
            row["partial"] = True  # stopped by max_steps inside the epoch; a resume redoes its row
        self.rows.append(row)
        if bar is not None:
            bar.write(f"epoch {epoch + 1}/{self.recipe.epochs}: train loss {row['train_loss']:.4f} acc "
                      f"{100 * row['train_acc']:.2f}%  val loss {val_loss:.4f} top-1 {100 * res['top1']:.2f}% "
                      f"top-5 {100 * res['top5']:.2f}%  {row['images_per_s']:.0f} img/s")
        self._commit(rundir, epoch, row, res["top1"] > self.best)

    def _commit(self, rundir: RunDir, epoch: int, row: dict, is_best: bool) -> None:
        recipe, spec = self.recipe, self.spec
        self.best = max(self.best, row["val_acc"])
        complete = not row.get("partial")
        scored = [r for r in self.rows if r["kind"] == "epoch"]
        run = {"backend": self.backend, "epochs_done": epoch + (1 if complete else 0), "steps_done": self.step,
               "best": self.best, "best_epoch": max(scored, key=lambda r: r["val_acc"])["epoch"] + 1,
               "recipe": json.loads(recipe.model_dump_json()), "spec": json.loads(spec.model_dump_json())}
        kept = (epoch + 1) % recipe.checkpoint_every == 0 or epoch + 1 == recipe.epochs
        keep = epoch + 1 if complete and kept else None
        title = f"{spec.name} in {self.backend}: {recipe.data.source}"
        rows = list(self.rows)
        rundir.commit(self.step, lambda p: self.be.save(self.net, p), self.optimizer_arrays(), rows, run,
                      keep_epoch=keep, is_best=is_best, plot=lambda p: report.curves(rows, p, title))
        self.committed = (self.step, rundir.path("checkpoints", "last" + rundir.ext))

    def history(self, out: str, skipped: list[str]) -> History:
        return History(out, self.backend, epochs=[r for r in self.rows if r["kind"] == "epoch"],
                       steps=[r for r in self.rows if r["kind"] == "step"], skipped=skipped, rank=self.rank)

    def close(self) -> None:
        self.train_loader.close()
        self.val_loader.close()


def check_same_run(out: str, run: dict, spec: ModelSpec, recipe: Recipe, backend: str) -> None:
    """A resumed run continues with the model, backend and recipe it was started with; only
    ``max_steps`` and what changes the speed alone (``data.workers``, ``data.prefetch``: the
    batches are the same for any number of workers) may change."""
    if run["backend"] != backend or run["spec"] != json.loads(spec.model_dump_json()):
        raise TrainError(f"{out} is a run of {run['spec'].get('name')} in {run['backend']}; "
                         f"resume it with the same model and --backend")
    mine = json.loads(recipe.model_dump_json())
    theirs = dict(run["recipe"])
    theirs["max_steps"] = mine["max_steps"]
    if isinstance(theirs.get("data"), dict):
        theirs["data"] = {**theirs["data"], **{k: mine["data"][k] for k in SPEED_ONLY}}
    if theirs != mine:
        diff = sorted(k for k in mine if mine[k] != theirs.get(k))
        raise TrainError(f"{out} was trained with another recipe ({', '.join(diff)} differ); "
                         f"resume with the recipe in its run.json (only max_steps, data.workers and "
                         f"data.prefetch may change)")


def train(model: str | ModelSpec | None = None, recipe: Recipe | str | None = None, *, backend: str = "torch",
          out: str | None = None, overrides: dict | None = None, resume: bool = False,
          progress: bool = True, snapshots: tuple[int, ...] = (), precision: str = "float32") -> History:
    """Train ``model`` with ``recipe`` in ``backend``; returns the run's :class:`History`.
    ``snapshots``: steps after which the canonical state is saved as ``snapshots/step_<n>.npz``
    (step 0: the initial state), for ``onespec align``; ``precision``: ``float64`` where the
    backend's session offers it (align's rounding-free yardstick).

    ``overrides`` are dotted recipe fields (``{"optimizer.lr": 0.01}``). All input (data, recipe,
    checkpoint, freeze paths) is checked before the framework starts training; the run directory
    is locked for the run (``rundir.RunDir``)."""
    check_backend(backend, frameworks())
    recipe = as_recipe(recipe, overrides)
    sources = open_data(recipe)
    spec = for_recipe(model, recipe, len(sources[0].classes))
    check_inputs(sources[0], transforms_for(recipe, spec, True), spec, "training")
    check_inputs(sources[1], transforms_for(recipe, spec, False), spec, "validation")
    frozen = frozen_paths(spec, recipe.freeze)
    out = out or os.path.join("runs", f"{spec.name}-{backend}")
    be = load_backend(backend)
    rank, world = dist_start(backend)
    state, skipped = load_start(spec, recipe, backend)
    trainer = Trainer(spec, recipe, backend, sources, frozen, state, rank, world, precision)
    rundir = RunDir(out, trainer.ext)
    bar = None
    try:
        committed = _open(rundir, rank, resume)
        if committed is not None:
            trainer.restore(rundir, committed)
        _start_snapshots(trainer, out, snapshots)
        if progress and rank == 0:
            from tqdm import tqdm
            bar = tqdm(total=trainer.total, initial=trainer.step, unit="step", dynamic_ncols=True,
                       file=sys.stderr, desc=f"{spec.name} [{backend}]")
        trainer.fit(rundir if rank == 0 else None, bar)
        if rank == 0:
            rundir.finish()
    finally:
        if bar is not None:
            bar.close()
        trainer.close()
        rundir.release()
    if world > 1:
        be.dist_end()
    return trainer.history(out, skipped)


def _open(rundir: RunDir, rank: int, resume: bool) -> str | None:
    """Rank 0 locks the run directory and checks it; the committed state to resume from."""
    if rank != 0:
        return rundir.committed() if resume else None
    rundir.acquire()
    return rundir.begin(resume)


def _start_snapshots(trainer: Trainer, out: str, snapshots: tuple[int, ...]) -> None:
    trainer.snapshots, trainer.snapshot_dir = tuple(snapshots), os.path.join(out, "snapshots")
    if snapshots and trainer.rank == 0:
        os.makedirs(trainer.snapshot_dir, exist_ok=True)
        if trainer.step == 0:
            trainer._snapshot(0)


# --------------------------------------------------------------------------------- evaluation
def evaluate(model: str | ModelSpec | None = None, weights: str = "", recipe: Recipe | str | None = None, *,
             backend: str = "torch", out: str | None = None, overrides: dict | None = None,
             weights_format: str | None = None) -> dict:
    """Top-1/top-5, per-class accuracy and the confusion matrix of ``weights`` on the recipe's
    validation split; with ``out``, also ``eval.json`` and ``confusion.png`` there."""
    from ..convert import read_for

    check_backend(backend, frameworks())
    recipe = as_recipe(recipe, overrides)
    _, val_src = open_data(recipe)
    spec = for_recipe(model, recipe, len(val_src.classes))
    tf = transforms_for(recipe, spec, False)
    check_inputs(val_src, tf, spec, "validation")
    weights = weights or recipe.weights
    if not weights:
        raise TrainError("evaluation needs --weights (a checkpoint of the model)")
    state, skipped, missing, unexpected = read_for(spec, weights, weights_format or recipe.weights_format or None,
                                                   here=backend)
    check_fits(spec, weights, layout(spec), state, skipped, missing, unexpected, partial=False)
    be = load_backend(backend)
    net = be.build(spec)
    be.load_state(net, spec, state)
    sess = be.session(net, spec, [], ())
    loader = D.Loader(val_src, tf, batch_size=recipe.eval_batch_size or recipe.batch_size, shuffle=False,
                      seed=recipe.seed, workers=recipe.data.workers, prefetch=recipe.data.prefetch)
    t0 = time.perf_counter()
    try:
        logits, labels, loss = predict_all(sess, loader)
    finally:
        loader.close()
    res = report.classification(logits, labels, val_src.classes)
    res.update(loss=loss, images_per_s=len(labels) / (time.perf_counter() - t0), backend=backend,
               model=spec.name, weights=os.path.abspath(weights), data=recipe.data.source)
    if out:
        os.makedirs(out, exist_ok=True)
        report.write_json(res, os.path.join(out, "eval.json"))
        report.confusion(res, os.path.join(out, "confusion.png"), f"{spec.name} in {backend}")
    return res
