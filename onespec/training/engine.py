"""The training and evaluation loop, one for every framework.

The framework does only what must be native: the forward, the backward and tensor arithmetic
(``onespec.backends.<name>.train.Session``). Everything that decides *what* is trained is here
and framework-free: the batches (``onespec.data``), the initial state (``weights.init_state`` or
a checkpoint), the per-step LR and momentum (``schedule``), the update rule (``optim``), the loss
(cross-entropy against label-smoothed one-hot targets), gradient clipping, dropout seeds (one per
step).

Run directory (``out``): ``checkpoints/epoch_<n>.<ext>``, ``last``/``best`` native checkpoints,
``optimizer.npz`` (the update rule's state), ``run.json`` (recipe, spec, progress),
``metrics.jsonl`` (one row per step and per epoch), ``curves.png``. A run resumes from its
directory where it stopped (an epoch's end, or the step ``max_steps`` stopped it at): data
order, augmentation and dropout are functions of (seed, epoch, sample) and (seed, step), so
the continued run computes what an uninterrupted one does.
"""
from __future__ import annotations

import importlib
import json
import os
import sys
import time
from dataclasses import dataclass, field

import numpy as np

from .. import data as D
from ..backends import FRAMEWORKS, check_backend, load_backend
from ..backends.tree import under
from ..errors import OnespecError, OverrideError
from ..spec import ModelSpec
from ..weights import atomic_write, init_state, layout, load_state, save_state
from . import optim, report
from .recipe import Recipe, as_recipe
from .schedule import schedule

EXTENSIONS = {"torch": ".pth", "paddle": ".pdparams", "mindspore": ".ckpt"}


class TrainError(OnespecError, ValueError):
    """A training or evaluation run cannot start or continue; names what and where."""


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


# --------------------------------------------------------------------------------- resolution
def resolve_model(model: str, overrides: dict | None = None, num_classes: int | None = None) -> ModelSpec:
    """A zoo name (``num_classes`` filled in from the data unless given), a spec file
    (``.json``/``.yaml``/``.yml``) or ``module:function`` returning a ``ModelSpec``."""
    from ..spec import parse_spec
    from ..zoo import get_spec, list_models

    overrides = dict(overrides or {})
    if not model:
        raise TrainError("no model: name a zoo model, a spec file or module:function")
    if model in list_models():
        if num_classes is not None and "num_classes" not in overrides:
            overrides["num_classes"] = num_classes
        spec = get_spec(model, **overrides)
    elif os.path.isfile(model):
        if overrides:
            raise OverrideError(f"overrides apply to zoo models, not to the spec file {model}")
        with open(model, "rb") as f:
            text = f.read()
        if model.endswith((".yaml", ".yml")):
            import yaml
            try:
                text = json.dumps(yaml.safe_load(text))
            except yaml.YAMLError as err:
                raise TrainError(f"{model}: not valid YAML ({str(err).splitlines()[0]})") from None
        spec = parse_spec(text)
    elif ":" in model:
        mod, _, fn = model.partition(":")
        try:
            obj = getattr(importlib.import_module(mod), fn)
        except (ImportError, AttributeError) as err:
            raise TrainError(f"cannot load {model}: {err}") from None
        spec = obj(**overrides)
        if not isinstance(spec, ModelSpec):
            raise TrainError(f"{model} returned a {type(spec).__name__}, not a ModelSpec")
    else:
        from ..errors import UnknownModelError
        raise UnknownModelError(f"{model!r} is neither a zoo model (onespec list), a spec file nor module:function")
    if num_classes is not None and spec.output_shape != (num_classes,):
        raise TrainError(f"{spec.name} outputs {spec.output_shape}, the data has {num_classes} classes")
    return spec


def replace_head(spec: ModelSpec, head, num_classes: int) -> ModelSpec:
    """``spec`` with its last Linear replaced by ``head``'s MLP (same node name, new children)."""
    from ..spec.nodes import Act, Dropout, Linear, Sequential

    def swap(layers):
        for i in range(len(layers) - 1, -1, -1):
            node = layers[i]
            if isinstance(node, Linear):
                body = []
                for j, h in enumerate(head.hidden, 1):
                    body += [Linear(name=f"fc{j}", out_features=h), Act(name=f"{head.act}{j}", fn=head.act)]
                    if head.dropout:
                        body.append(Dropout(name=f"dropout{j}", p=head.dropout))
                body.append(Linear(name=f"fc{len(head.hidden) + 1}", out_features=num_classes))
                return layers[:i] + [Sequential(name=node.name, layers=body)] + layers[i + 1:]
            if isinstance(node, Sequential):
                inner = swap(list(node.layers))
                if inner is not None:
                    return layers[:i] + [node.model_copy(update={"layers": inner})] + layers[i + 1:]
            if hasattr(node, "children") and not isinstance(node, Sequential) and node.children():
                return None  # a head inside a parallel/residual branch is not a classifier head
        return None

    new = swap(list(spec.layers))
    if new is None:
        raise TrainError(f"recipe head: {spec.name} has no final Linear to replace")
    meta = spec.meta.model_copy(update={"num_classes": num_classes})
    return ModelSpec(name=spec.name, input_shape=spec.input_shape, layers=new, meta=meta)


def _model_overrides(recipe: Recipe) -> dict:
    """The recipe's zoo overrides plus ``input_size`` from ``image_size`` (digits: 32 by default,
    as 8x8 digits blown up to 224 only cost time)."""
    ov = dict(recipe.overrides)
    size = recipe.image_size or (32 if recipe.data.source == "digits" else None)
    if size and "input_size" not in ov:
        ov["input_size"] = size
    return ov


def open_data(recipe: Recipe):
    """(train source, validation source), every file checked."""
    d = recipe.data
    if d.source == "digits":
        return D.digits(d.split_seed, d.test_ratio)
    if d.source == "imagefolder":
        return D.image_folder(d.root, d.split_seed, d.test_ratio)
    if d.source == "cifar10":
        return D.cifar10(d.root)
    return D.mat_cube(d.root, d.gt, d.pca, d.patch, d.test_ratio, d.split_seed)


def transforms_for(recipe: Recipe, spec: ModelSpec, train: bool):
    """The recipe's transforms; by default resize + center crop to the model's input size and the
    train list's ``normalize`` (or none) for evaluation."""
    given = recipe.train_transforms if train else recipe.eval_transforms
    if given is not None:
        return tuple(given)
    size = spec.input_shape[-1]
    norm = [t for t in (recipe.train_transforms or []) if t.op == "normalize"]
    base = [D.Resize(size=size), D.CenterCrop(size=size)]
    if train and recipe.train_transforms is None:
        return tuple(base + [D.Normalize()])
    return tuple(base + (norm or [D.Normalize()]))


def model_for(model: "str | ModelSpec | None", recipe: Recipe, num_classes: int) -> ModelSpec:
    """The network a recipe trains: ``model`` (a ``ModelSpec``, or resolved by ``resolve_model``,
    default the recipe's), its classifier replaced by the recipe's ``head``, checked to output
    ``num_classes``."""
    if isinstance(model, ModelSpec):
        spec = model
    else:
        spec = resolve_model(model or recipe.model, _model_overrides(recipe), None if recipe.head else num_classes)
    if recipe.head:
        spec = replace_head(spec, recipe.head, num_classes)
    if spec.output_shape != (num_classes,):
        raise TrainError(f"{spec.name} outputs {spec.output_shape}, the data has {num_classes} classes")
    return spec


def _check_inputs(src, tf, spec: ModelSpec, what: str) -> None:
    """The first sample, after the transforms, has the model's input shape."""
    x, _ = D.make_batch(src, tf, 0, 0, [0])
    if tuple(x.shape[1:]) != tuple(spec.input_shape):
        raise TrainError(f"{what} samples are {x.shape[1:]} after the transforms, {spec.name} takes "
                         f"{tuple(spec.input_shape)}: set the transform sizes or the model's input_size")


def _frozen(spec: ModelSpec, prefixes) -> tuple[str, ...]:
    from ..spec import trace
    paths = {r.path for r in trace(spec)}
    for p in prefixes:
        if p not in paths:
            raise TrainError(f"--freeze {p}: {spec.name} has no node {p!r} (see onespec show {spec.name})")
    return tuple(prefixes)


def _dist() -> int:
    """World size from the launcher's environment (torchrun, paddle.distributed.launch, msrun)."""
    for w in ("WORLD_SIZE", "PADDLE_TRAINERS_NUM", "MS_WORKER_NUM"):
        if os.environ.get(w, "").isdigit() and int(os.environ[w]) > 1:
            return int(os.environ[w])
    return 1


def _init_dist(backend: str) -> tuple[int, int]:
    """(rank, world) after joining the launcher's process group (gloo on CPU)."""
    world = _dist()
    if world == 1:
        return 0, 1
    load_backend(backend)
    if backend == "torch":
        import torch.distributed as dist
        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    if backend == "paddle":
        import paddle.distributed as dist
        dist.init_parallel_env()
        return dist.get_rank(), dist.get_world_size()
    import mindspore as ms
    from mindspore.communication import get_group_size, get_rank, init
    ms.set_context(mode=ms.PYNATIVE_MODE)
    init()
    return get_rank(), get_group_size()


def _end_dist(backend: str) -> None:
    """Every rank waits for rank 0's evaluation and checkpoint, then leaves the group cleanly (a
    torch rank exiting while gloo's threads run aborts with "terminate called without an active
    exception")."""
    if backend == "torch":
        import torch.distributed as dist
        dist.barrier()
        dist.destroy_process_group()
    elif backend == "paddle":
        import paddle.distributed as dist
        dist.barrier()


def _load_start(spec: ModelSpec, recipe: Recipe, backend: str) -> tuple[dict, list[str]]:
    """Initial canonical state: onespec's seeded init, overlaid with the recipe's checkpoint."""
    from ..convert import read_for

    state = init_state(spec, recipe.seed, scheme="train")
    if not recipe.weights:
        return state, []
    loaded, skipped, missing, unexpected = read_for(spec, recipe.weights, recipe.weights_format or None, here=backend)
    _check_fits(spec, recipe.weights, layout(spec), loaded, skipped, missing, unexpected, partial=True)
    frozen_skipped = [s.split(" ")[0] for s in skipped + missing if under(s.split(" ")[0], recipe.freeze)]
    if frozen_skipped:
        raise TrainError(f"{recipe.weights} has other shapes for frozen tensors, which would stay at their "
                         f"random init: {', '.join(frozen_skipped[:6])}")
    state.update(loaded)
    return state, (skipped + [f"{m} (not in the file)" for m in missing]
                   + [f"{u} (in the file, not in the model)" for u in unexpected])


def _check_fits(spec, path, want, loaded, skipped, missing, unexpected, partial: bool) -> None:
    """A checkpoint of this architecture: every tensor named, none left over. With ``partial``
    (transfer learning: a new head) what does not fit is skipped and listed, as long as most of
    the model's tensors load; fewer means another architecture, an error."""
    if (not partial and (missing or unexpected or skipped)) or len(loaded) * 2 < len(want):
        parts = [f"{label}: {', '.join(items[:4])}{' ...' if len(items) > 4 else ''} ({len(items)})"
                 for label, items in (("missing", missing), ("unexpected", unexpected), ("other shape", skipped))
                 if items]
        raise TrainError(f"{path} is not a checkpoint of {spec.name} ({len(loaded)} of {len(want)} tensors fit): "
                         + "; ".join(parts))


# --------------------------------------------------------------------------------- training
def _targets(y: np.ndarray, k: int, smoothing: float) -> np.ndarray:
    t = np.full((len(y), k), smoothing / k, np.float32)
    t[np.arange(len(y)), y] += np.float32(1.0 - smoothing)
    return t


def _evaluate(sess, loader):
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


def _write_rows(path: str, rows: list[dict]) -> None:
    text = "".join(json.dumps(r) + "\n" for r in rows)
    atomic_write(path, lambda tmp: open(tmp, "w").write(text), suffix=".jsonl")


def train(model: str | ModelSpec | None = None, recipe: Recipe | str | None = None, *, backend: str = "torch",
          out: str | None = None, overrides: dict | None = None, resume: bool = False,
          progress: bool = True, snapshots: tuple[int, ...] = (), precision: str = "float32") -> History:
    """Train ``model`` with ``recipe`` in ``backend``; returns the run's :class:`History`.
    ``snapshots``: steps after which the canonical state is saved as ``snapshots/step_<n>.npz``
    (step 0: the initial state), for ``onespec align``; ``precision``: one of the backend
    session's ``PRECISIONS`` (``float64``: align's rounding-free yardstick).

    ``overrides`` are dotted recipe fields (``{"optimizer.lr": 0.01}``). All input (data, recipe,
    checkpoint, freeze paths) is checked before the framework starts training."""
    check_backend(backend, FRAMEWORKS)
    recipe = as_recipe(recipe, overrides)
    train_src, val_src = open_data(recipe)
    k = len(train_src.classes)
    spec = model_for(model, recipe, k)
    tf_train, tf_eval = transforms_for(recipe, spec, True), transforms_for(recipe, spec, False)
    _check_inputs(train_src, tf_train, spec, "training")
    _check_inputs(val_src, tf_eval, spec, "validation")
    frozen = _frozen(spec, recipe.freeze)
    out = out or os.path.join("runs", f"{spec.name}-{backend}")
    run_json = os.path.join(out, "run.json")
    if os.path.exists(run_json) and not resume:
        raise TrainError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if resume and not os.path.exists(run_json):
        raise TrainError(f"cannot resume: {out} holds no run.json")

    rank, world = _init_dist(backend)
    lead = rank == 0
    train_loader = D.Loader(train_src, tf_train, batch_size=recipe.batch_size, shuffle=True, seed=recipe.seed,
                            drop_last=recipe.drop_last, workers=recipe.data.workers, prefetch=recipe.data.prefetch,
                            rank=rank, world=world)
    if len(train_loader) == 0:
        raise TrainError(f"{len(train_src)} training samples make no batch of {recipe.batch_size * world}")
    val_loader = D.Loader(val_src, tf_eval, batch_size=recipe.eval_batch_size or recipe.batch_size,
                          shuffle=False, seed=recipe.seed, workers=recipe.data.workers, prefetch=recipe.data.prefetch)
    spe = len(train_loader)
    lrs, moms = schedule(recipe, spe)
    total = len(lrs) if recipe.max_steps is None else min(len(lrs), recipe.max_steps)
    state, skipped = _load_start(spec, recipe, backend)

    be = load_backend(backend)
    train_mod = importlib.import_module(f"onespec.backends.{backend}.train")
    if precision not in getattr(train_mod, "PRECISIONS", ("float32",)):
        raise TrainError(f"{backend} does not train in {precision}")
    session_cls = train_mod.Session
    net = be.build(spec)
    be.load_state(net, spec, state)
    lay = layout(spec)
    trainable = [c for c, t in lay.items() if t.trainable and not under(c, frozen)]
    sess = session_cls(net, spec, trainable, frozen, **({} if precision == "float32" else {"precision": precision}))
    opt = recipe.optimizer
    ostate = {c: optim.init(opt, p, sess) for c, p in sess.params.items()}
    decay = {c: optim.decays(opt, lay[c].role) for c in sess.params}
    ext = EXTENSIONS[backend]
    ck_dir = os.path.join(out, "checkpoints")

    rows: list[dict] = []
    step, best = 0, -1.0
    if resume:
        with open(run_json) as f:
            run = json.load(f)
        if run.get("backend") != backend or run.get("spec") != json.loads(spec.model_dump_json()):
            raise TrainError(f"{out} is a run of {run.get('spec', {}).get('name')} in {run.get('backend')}; "
                             f"resume it with the same model and --backend")
        mine = json.loads(recipe.model_dump_json())
        theirs = dict(run.get("recipe", {}))
        theirs["max_steps"] = mine["max_steps"]  # the one field a continued run may change
        if theirs != mine:
            diff = sorted(k for k in mine if mine[k] != theirs.get(k))
            raise TrainError(f"{out} was trained with another recipe ({', '.join(diff)} differ); "
                             f"resume with the recipe in its run.json (only max_steps may change)")
        step, best = run["steps_done"], run["best"]
        be.load(net, os.path.join(ck_dir, "last" + ext))
        saved = load_state(os.path.join(out, "optimizer.npz"))
        for c in sess.params:
            for s in ostate[c]:
                ostate[c][s] = sess.tensor(saved[f"{c}/{s}"])
        with open(os.path.join(out, "metrics.jsonl")) as f:
            rows = [r for r in map(json.loads, f) if r["step"] <= step and not r.get("partial")]
    elif lead:
        os.makedirs(ck_dir, exist_ok=True)

    hist = History(out, backend, skipped=skipped, rank=rank)
    if snapshots and lead:
        os.makedirs(os.path.join(out, "snapshots"), exist_ok=True)
        if 0 in snapshots and step == 0:
            save_state(be.get_state(net, spec), os.path.join(out, "snapshots", "step_0.npz"))
    bar = None
    if progress and lead:
        from tqdm import tqdm
        bar = tqdm(total=total, initial=step, unit="step", dynamic_ncols=True, file=sys.stderr,
                   desc=f"{spec.name} [{backend}]")
    try:
        first_epoch, offset = divmod(step, spe)
        for epoch in range(first_epoch, recipe.epochs):
            if step >= total:
                break
            sess.set_train(True)
            t0, seen, correct, loss_sum, nb = time.perf_counter(), 0, 0, 0.0, 0
            digest = None
            for x, y in train_loader.epoch(epoch, offset if epoch == first_epoch else 0):
                if step >= total:
                    break
                digest = D.digest(x, y, digest)
                sess.seed(recipe.seed * 1_000_003 + step)  # per step: a resumed run draws the same dropout masks
                loss, logits, grads = sess.step_grads(x, _targets(y, k, recipe.label_smoothing))
                norm = float(np.sqrt(sum(sess.sumsq(g) for g in grads.values())))
                f = optim.clip_factor(norm, recipe.clip_grad_norm)
                lr, mom = float(lrs[step]), (None if moms is None else float(moms[step]))
                with sess.no_grad():
                    for c, p in sess.params.items():
                        g = grads[c] * f if f < 1.0 else grads[c]
                        sess.assign(p, optim.update(opt, p, g, ostate[c], lr, step + 1, sess, decay[c], mom))
                step += 1
                if step in snapshots and lead:
                    save_state(be.get_state(net, spec), os.path.join(out, "snapshots", f"step_{step}.npz"))
                nb += 1
                seen += len(y)
                correct += int((logits.argmax(1) == y).sum())
                loss_sum += loss
                rows.append({"kind": "step", "epoch": epoch, "step": step, "loss": loss, "lr": lr,
                             "grad_norm": norm, **({"momentum": mom} if mom is not None else {})})
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(epoch=epoch + 1, loss=f"{loss:.4f}", acc=f"{correct / seen:.3f}",
                                    img_s=f"{seen * world / (time.perf_counter() - t0):.0f}", lr=f"{lr:.3g}")
            elapsed = time.perf_counter() - t0
            if not lead or nb == 0:
                continue
            logits, labels, val_loss = _evaluate(sess, val_loader)
            res = report.classification(logits, labels, val_src.classes)
            row = {"kind": "epoch", "epoch": epoch, "step": step, "train_loss": loss_sum / nb,
                   "train_acc": correct / max(seen, 1), "val_loss": val_loss, "val_acc": res["top1"],
                   "val_top5": res["top5"], "lr": float(lrs[step - 1]), "images_per_s": seen * world / elapsed,
                   "seconds": elapsed, "data_digest": digest.hexdigest() if digest else ""}
            if step % spe:
                row["partial"] = True  # stopped by max_steps inside the epoch; a resume redoes its row
            rows.append(row)
            if bar is not None:
                bar.write(f"epoch {epoch + 1}/{recipe.epochs}: train loss {row['train_loss']:.4f} acc "
                          f"{100 * row['train_acc']:.2f}%  val loss {val_loss:.4f} top-1 {100 * res['top1']:.2f}% "
                          f"top-5 {100 * res['top5']:.2f}%  {row['images_per_s']:.0f} img/s")
            _save_epoch(be, net, sess, ostate, out, ck_dir, ext, epoch, row, res["top1"] > best, recipe, spec,
                        backend, step, max(best, res["top1"]), rows)
            best = max(best, res["top1"])
    finally:
        if bar is not None:
            bar.close()
        train_loader.close()
        val_loader.close()
    if world > 1:
        _end_dist(backend)
    hist.steps = [r for r in rows if r["kind"] == "step"]
    hist.epochs = [r for r in rows if r["kind"] == "epoch"]
    return hist


def _save_epoch(be, net, sess, ostate, out, ck_dir, ext, epoch, row, is_best, recipe, spec, backend, step, best, rows):
    """Everything of the epoch, each file atomically; run.json last, so a run interrupted while
    saving resumes from the previous epoch."""
    if (epoch + 1) % recipe.checkpoint_every == 0 or epoch + 1 == recipe.epochs:
        be.save(net, os.path.join(ck_dir, f"epoch_{epoch + 1}{ext}"))
    if is_best:
        be.save(net, os.path.join(ck_dir, "best" + ext))
    be.save(net, os.path.join(ck_dir, "last" + ext))
    save_state({f"{c}/{s}": sess.numpy(v) for c, st in ostate.items() for s, v in st.items()} or
               {"empty": np.zeros(0, np.float32)}, os.path.join(out, "optimizer.npz"))
    _write_rows(os.path.join(out, "metrics.jsonl"), rows)
    report.curves(rows, os.path.join(out, "curves.png"), f"{spec.name} in {backend}: {recipe.data.source}")
    scored = [r for r in rows if r["kind"] == "epoch"]
    report.write_json({"backend": backend, "epochs_done": epoch + (0 if row.get("partial") else 1),
                       "steps_done": step, "best": best,
                       "best_epoch": max(scored, key=lambda r: r["val_acc"])["epoch"] + 1,
                       "recipe": json.loads(recipe.model_dump_json()),
                       "spec": json.loads(spec.model_dump_json())}, os.path.join(out, "run.json"))


# --------------------------------------------------------------------------------- evaluation
def evaluate(model: str | ModelSpec | None = None, weights: str = "", recipe: Recipe | str | None = None, *,
             backend: str = "torch", out: str | None = None, overrides: dict | None = None,
             weights_format: str | None = None) -> dict:
    """Top-1/top-5, per-class accuracy and the confusion matrix of ``weights`` on the recipe's
    validation split; with ``out``, also ``eval.json`` and ``confusion.png`` there."""
    from ..convert import read_for

    check_backend(backend, FRAMEWORKS)
    recipe = as_recipe(recipe, overrides)
    _, val_src = open_data(recipe)
    spec = model_for(model, recipe, len(val_src.classes))
    tf = transforms_for(recipe, spec, False)
    _check_inputs(val_src, tf, spec, "validation")
    weights = weights or recipe.weights
    if not weights:
        raise TrainError("evaluation needs --weights (a checkpoint of the model)")
    state, skipped, missing, unexpected = read_for(spec, weights, weights_format or recipe.weights_format or None, here=backend)
    _check_fits(spec, weights, layout(spec), state, skipped, missing, unexpected, partial=False)
    be = load_backend(backend)
    net = be.build(spec)
    be.load_state(net, spec, state)
    sess = importlib.import_module(f"onespec.backends.{backend}.train").Session(net, spec, [], ())
    loader = D.Loader(val_src, tf, batch_size=recipe.eval_batch_size or recipe.batch_size, shuffle=False,
                      seed=recipe.seed, workers=recipe.data.workers, prefetch=recipe.data.prefetch)
    t0 = time.perf_counter()
    try:
        logits, labels, loss = _evaluate(sess, loader)
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
