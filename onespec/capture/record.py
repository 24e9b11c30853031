"""A recorded forward: the capture frontend of a framework whose graphs do not keep module paths
(Paddle's static program, MindSpore's graph) runs the eval-mode model once, eagerly, with hooks
around every sub-module and the framework's tensor functions intercepted.

- ``enter`` / ``leave`` (the framework's forward pre and post hooks) keep the stack of running
  modules; a module of a class the frontend's layer table knows is one op, translated from its
  attributes (the framework calls made inside it are its own and are not recorded);
- a function the frontend intercepts (``paddle._C_ops.multiply``, ``Tensor.__add__`` ...), called outside
  such a module, is one op, translated from its arguments;
- any other framework op reading a recorded tensor (``watch``) is reported where it was called;
- tensors are tracked by identity: an op that reads a tensor no recorded op made (the result of an
  op onespec never saw) is reported where it read it, and reading a tensor's value into Python
  (``.item()``, ``bool(t)``) is reported as the data-dependent forward it is.

Every problem is collected with its module path and source line and raised at once. Leaf paths
follow ``ir``'s conventions (``ir.Leaf``)."""
from __future__ import annotations

import os
import traceback
from typing import Any, Callable

from .ir import DROP, Call, CaptureError, Leaf, Op, Then, Trace, Unsupported, fuse_channel_norms

_FAILED = "\0failed"  # the name of a tensor made by an op already reported: its readers add nothing
_REFUSED = object()  # the translation of a module ``refuse`` names: run unrecorded, its result failed


class Recorder:
    """``modules``: (path, module) of every sub-module; ``params``: id of each parameter or
    buffer tensor -> its state key; ``is_tensor`` / ``shape``: the framework's tensor test and
    sample shape; ``layers``: the layer table (a module -> its translation, or None);
    ``roots``: folders of the framework's own code (a problem's source line is the innermost
    frame outside them); ``refuse``: a module -> why it cannot be captured (a custom backward),
    or None."""

    def __init__(self, modules, params: dict[int, str], is_tensor: Callable, shape: Callable,
                 layers: Callable, roots: tuple[str, ...], refuse: Callable = lambda module: None):
        self.paths = {id(m): p for p, m in modules}
        self.params, self.is_tensor, self.shape_of, self.layers = params, is_tensor, shape, layers
        self.refuse = refuse
        self.roots = tuple(os.path.join(r, "") for r in roots) + \
            (os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ""),)
        self.stack: list[tuple[Any, str, Any]] = []  # (module, call path, its translation or None)
        self.calls: dict[str, int] = {}
        self.names: dict[int, str] = {}
        self.keep: list = []               # every named tensor, alive so that its id stays its own
        self.counts: dict[str, int] = {}
        self.leaves: list[Leaf] = []
        self.shapes: dict[str, tuple] = {}
        self.problems: list[str] = []
        self.used: set[str] = set()
        self.depth = 0                     # > 0 inside a translated module or intercepted function
        self.active = False
        self._undo: list[tuple[Any, str, Any]] = []

    # -- the run ---------------------------------------------------------------------------
    def start(self, x) -> None:
        self._name(x, "x")
        self.shapes["x"] = self.shape(x)
        self.active = True

    def run(self, modules, pre: Callable, post: Callable, intercept: Callable, forward: Callable, x):
        """``forward(x)`` recorded: ``pre(module, hook)`` / ``post(module, hook)`` register the
        framework's forward hooks on each of ``modules`` (handles with ``remove``), ``intercept(self)``
        patches the framework's functions; all undone after. The model's own failure under
        recording is a :class:`CaptureError` where it happened."""
        hooks = []
        for m in modules:
            hooks.append(pre(m, lambda m, a: self.enter(m)))
            hooks.append(post(m, lambda m, a, o: self.leave(m, a, o)))
        try:
            intercept(self)
            self.start(x)
            return forward(x)
        except Exception as err:  # whatever the model raised: where it happened
            raise self.error(err) from None
        finally:
            self.restore()
            for h in hooks:
                h.remove()

    def finish(self, out, state, roles=None) -> Trace:
        self.active = False
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        names = [self._read(t, "the network's output") for t in outs]
        if self.problems:
            raise CaptureError(list(dict.fromkeys(self.problems)))
        return Trace(fuse_channel_norms(self.leaves, names), "x", names, state, self.shapes, dict(roles or {}))

    def error(self, err: Exception) -> CaptureError:
        """The problems so far, else ``err`` (the forward failed) where it happened."""
        self.active = False
        if self.problems:
            return CaptureError(list(dict.fromkeys(self.problems)))
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return CaptureError([f"{self._where(err.__traceback__)}: {type(err).__name__}: {first}"])

    def patch(self, owner, attr: str, make: Callable[[Callable], Callable]) -> None:
        """Replace ``owner.attr`` by ``make(original)`` until ``restore``."""
        original = getattr(owner, attr)
        own = isinstance(owner, type) and attr not in owner.__dict__  # inherited: deleted again after
        self._undo.append((owner, attr, None if own else original))
        setattr(owner, attr, make(original))

    def restore(self) -> None:
        while self._undo:
            owner, attr, original = self._undo.pop()
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)

    # -- hooks -------------------------------------------------------------------------------
    def enter(self, module) -> None:
        if not self.active:
            return
        path = self.paths.get(id(module), type(module).__name__)
        n = self.calls.get(path, 0)
        self.calls[path] = n + 1
        parent = self.stack[-1][1] if self.stack else ""
        last = path.rsplit(".", 1)[-1]
        call = f"{parent}.{last}" if parent else last
        why = self.refuse(module) if self.depth == 0 else None
        translate = _REFUSED if why else self.layers(module) if self.depth == 0 else None
        self.stack.append((module, call + (f"_{n}" if n else ""), translate))
        if why:
            self._problem(why)  # one problem: the ops inside it are its own
        if translate is not None:
            self.depth += 1

    def leave(self, module, args, out) -> None:
        if not self.active or not self.stack or self.stack[-1][0] is not module:
            return
        _, call, translate = self.stack[-1]
        if translate is _REFUSED:
            self.depth -= 1
            for t in _tensors((out,), {}, self.is_tensor):
                self._name(t, _FAILED)
        elif translate is not None:
            self.depth -= 1
            self._op(type(module).__name__.lower(), lambda c: translate(module, c), Call(tuple(args), {}, out, self.shape),
                     call, owner=self.paths[id(module)])
        self.stack.pop()

    # -- intercepted framework calls ------------------------------------------------------------
    def function(self, name: str, translate: Callable[[Call], Any]) -> Callable[[Callable], Callable]:
        """A wrapper maker for ``patch``: the call is one op, ``translate(Call)`` its leaf."""
        def make(fn):
            def wrapper(*args, **kwargs):
                if not self.active or self.depth:
                    return fn(*args, **kwargs)
                self.depth += 1
                try:
                    out = fn(*args, **kwargs)
                finally:
                    self.depth -= 1
                if any(self._known(t) for t in _tensors(args, kwargs, self.is_tensor)):
                    where = self.stack[-1][1] if self.stack else ""
                    self._op(name, translate, Call(args, kwargs, out, self.shape), where)
                return out
            return wrapper
        return make

    def watch(self, name: str, why: str | None = None) -> Callable[[Callable], Callable]:
        """A wrapper maker for ``patch``: a framework op with no onespec translation, reported
        where it reads a recorded tensor (``why``: the reason, else 'no onespec equivalent')."""
        def make(fn):
            def wrapper(*args, **kwargs):
                if not self.active or self.depth:
                    return fn(*args, **kwargs)
                self.depth += 1  # the ops it runs itself are its own (a PyLayer's forward)
                try:
                    out = fn(*args, **kwargs)
                finally:
                    self.depth -= 1
                if any(self._known(t) for t in _tensors(args, kwargs, self.is_tensor)):
                    self._problem(why or f"{name} has no onespec equivalent")  # after a failed op too
                    for t in _tensors((out,), {}, self.is_tensor):
                        self._name(t, _FAILED)
                return out
            return wrapper
        return make

    # -- bookkeeping ---------------------------------------------------------------------------
    def shape(self, t) -> tuple:
        return tuple(int(d) for d in self.shape_of(t))[1:]

    def _known(self, t) -> bool:
        return id(t) in self.names or id(t) in self.params

    def _name(self, t, name: str) -> None:
        self.names[id(t)] = name
        self.keep.append(t)

    def _fresh(self, base: str) -> str:
        n = self.counts.get(base, 0)
        self.counts[base] = n + 1
        return f"{base}_{n}" if n else base

    def _where(self, tb=None) -> str:
        path = self.paths.get(id(self.stack[-1][0]), "") if self.stack else ""
        stack = traceback.extract_tb(tb) if tb is not None else traceback.extract_stack()[:-1]
        frames = [f for f in stack if not f.filename.startswith(self.roots)]
        src = f' (File "{frames[-1].filename}", line {frames[-1].lineno}, in {frames[-1].name})' if frames else ""
        return (path or "<root>") + src

    def _problem(self, msg: str) -> None:
        self.problems.append(f"{self._where()}: {msg}")

    def _read(self, t, what: str) -> str:
        name = self.names.get(id(t))
        if id(t) in self.params:
            self._problem(f"{what} reads the parameter {self.params[id(t)]} as data (no onespec op owns it)")
            return _FAILED
        if name is None:
            if not self.problems:  # else most likely the result of what was reported, in a new object
                self._problem(f"{what} reads a tensor that no op onespec recorded made (an op it cannot "
                              f"capture ran before, or the tensor is made in the forward)")
            return _FAILED
        return name

    def _op(self, name: str, translate: Callable[[Call], Any], call: Call, path: str, owner: str | None = None):
        """Record ``translate(call)``: a leaf (``path``: the call path of the module that ran it;
        ``owner``: the module itself where the op is a module's, else the op is loose in it), a
        list of leaves (one per result: a split), DROP, or a problem."""
        try:
            op = translate(call)
        except Unsupported as why:
            op = why
        except Exception as err:  # arguments the translation does not know (a newer signature)
            op = Unsupported(f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}")
        outs = _tensors((call.out,), {}, self.is_tensor)
        if isinstance(op, Unsupported):
            self._problem(f"{name}: {op}")
            for t in outs:
                self._name(t, _FAILED)
            return
        if op == DROP:
            first = next(iter(_tensors(call.args, call.kwargs, self.is_tensor)), None)
            src = self._read(first, name) if first is not None else _FAILED
            for t in outs:
                self._name(t, src)
            return
        if isinstance(op, Then) and len(outs) == 1:
            parent = path.rsplit(".", 1)[0] if "." in path else ""
            for k, one in enumerate(op):
                self._leaf(name if k == 0 else type(one.node).__name__.lower(), one, outs[0],
                           path if k == 0 else parent, owner if k == 0 else None)
            return
        ops = op if isinstance(op, list) else [op]
        if len(ops) != len(outs):
            self._problem(f"{name} makes {len(outs)} tensors; an onespec op makes one")
            for t in outs:
                self._name(t, _FAILED)
            return
        for one, t in zip(ops, outs):
            self._leaf(name, one, t, path, owner)

    def _leaf(self, name: str, op: Op, result, path: str, owner: str | None) -> None:
        ins = [self._read(t, name) for t in op.ins]
        params = {}
        for canonical, t in op.params:
            key = self.params.get(id(t))
            if key is None:
                self._problem(f"{name}: its {canonical} is computed in the forward, not a parameter")
                continue
            if key in self.used:
                self._problem(f"module {key.rsplit('.', 1)[0]} is called more than once (its weights are "
                              f"shared between calls, which a spec cannot say)")
            self.used.add(key)
            params[canonical] = key
        if _FAILED in ins:
            self._name(result, _FAILED)
            return
        out = self._fresh(name)
        if params and owner:
            path = owner  # an op that owns parameters sits at the module that owns them
        elif owner is None:
            path = f"{path}.\0{out}" if path else f"\0{out}"  # loose in the module that ran it
        self.leaves.append(Leaf(path, op.node, ins, out, params))
        self.shapes[out] = self.shape(result)
        self._name(result, out)
        for i, t in zip(ins, op.ins):
            self.shapes.setdefault(i, self.shape(t))


def _tensors(args, kwargs, is_tensor) -> list:
    """The tensors among the arguments (one level into lists and tuples), in order."""
    out = []
    for v in (*args, *kwargs.values()):
        for t in (v if isinstance(v, (list, tuple)) else (v,)):
            if is_tensor(t):
                out.append(t)
    return out


def layer_table(table: dict, method: str) -> Callable:
    """A module's translation from ``table`` (class -> translation): its class's, or its nearest
    table base class's where it keeps that class's ``method`` (a subclass with its own forward is
    not a leaf: its ops are recorded one by one)."""
    def lookup(module):
        for cls in type(module).__mro__:
            if cls in table:
                return table[cls] if getattr(type(module), method) is getattr(cls, method) else None
        return None
    return lookup
