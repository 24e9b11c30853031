"""A torch module -> its ops in execution order, each placed in the module that ran it.

``torch.export.export(module, (x,), strict=False)`` at the default IR: every node carries its
module stack (``nn_module_stack``: the module paths that were running) and its source line
(``stack_trace``); parameters are graph inputs named by their original ``state_dict`` keys. Each
node becomes one onespec leaf (``aten.TABLE``) whose *path* is where its native module will sit:
- an op that owns parameters is the module that owns them (``features.0.weight`` -> ``features.0``);
- an op that is the only op of a parameter-free module is that module (``relu``); a
  parameter-free module called again gets its own node per call (``relu``, ``relu_1``);
- any other op sits in the module whose forward ran it, named by its export name (``add``).
Everything that cannot be captured is collected, with the module path and source line, and
raised at once (:class:`CaptureError`).
"""
from __future__ import annotations

import contextlib
import io
import logging
import os

import numpy as np

from ...capture.ir import CaptureError, Leaf, Trace, fuse_channel_norms
from . import capture_aten as aten


def _where(node) -> str:
    stack = node.meta.get("nn_module_stack") or {}
    path = next((p for p, _ in reversed(list(stack.values())) if p), "") or "<root>"
    lines = (node.meta.get("stack_trace") or "").strip().splitlines()
    return f"{path} ({_source(lines)})" if _source(lines) else path


def _source(lines: list[str]) -> str:
    """The innermost frame of the user's code (outside torch itself), else the innermost."""
    import torch

    frames = [ln.strip() for ln in lines if ln.strip().startswith("File ")]
    root = os.path.dirname(torch.__file__)
    return next((f for f in reversed(frames) if root not in f), frames[-1] if frames else "")


def _stack(node) -> list[tuple[str, str]]:
    """(module path, call key) of each module running, outermost first, the root left out."""
    stack = node.meta.get("nn_module_stack") or {}
    return [(p, k) for k, (p, _) in stack.items() if p]


@contextlib.contextmanager
def _quiet_logs():
    """torch.export's own log lines (symbolic-shape warnings, graph dumps while its error is
    written) kept off the terminal unless verbose: the failure is reported as one CaptureError."""
    from .. import verbose

    if verbose():
        yield
        return
    before = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # graph dumps printed beside the logs
            yield
    finally:
        logging.disable(before)


def export(module, x):
    """``torch.export`` of the eval-mode module on ``x``; an export failure (data-dependent control
    flow, an untraceable call) is a :class:`CaptureError` naming the module that was running."""
    with _quiet_logs():
        return _export(module, x)


def _export(module, x):
    import torch

    running: list[str] = []
    names = {m: p for p, m in module.named_modules()}
    # the modules running, innermost last: where an export failure happened (a hook that returns
    # nothing leaves the module's inputs and outputs alone)
    hooks = [m.register_forward_pre_hook(lambda m, a: running.append(names[m]) and None) for m in names] + \
            [m.register_forward_hook(lambda m, a, o: [running.pop()] and None) for m in names]
    custom: list[str] = []
    apply = torch.autograd.Function.__dict__["apply"]
    torch.autograd.Function.apply = classmethod(_custom_apply(apply, running, custom))
    try:
        ep = torch.export.export(module.eval(), (x,), strict=False)
    except Exception as err:  # torch raises many kinds; each is a reason the module cannot be captured
        if custom:
            raise CaptureError(list(dict.fromkeys(custom))) from None
        where = running[-1] if running and running[-1] else "<root>"
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        src = _source(str(err).splitlines())
        src = f" ({src})" if src else ""
        if "data-dependent" in str(err).lower() or "GuardOnDataDependent" in type(err).__name__:
            first = "data-dependent control flow or a value read from a tensor: " + first
        raise CaptureError([f"{where}{src}: {type(err).__name__}: {first}"]) from None
    finally:
        torch.autograd.Function.apply = apply
        for h in hooks:
            h.remove()
    if custom:
        raise CaptureError(list(dict.fromkeys(custom)))
    return ep


def _custom_apply(apply, running: list[str], custom: list[str]):
    """``Function.apply`` that notes each custom ``autograd.Function`` called with the module
    running and the source line: export inlines its forward and drops its own backward, so the
    spec would train differently from the module."""
    def wrapper(cls, *args, **kwargs):
        import traceback

        where = running[-1] if running and running[-1] else "<root>"
        src = _source([f'File "{f.filename}", line {f.lineno}, in {f.name}' for f in traceback.extract_stack()[:-1]])
        custom.append(f"{where}{f' ({src})' if src else ''}: a custom autograd.Function "
                      f"({cls.__module__}.{cls.__qualname__}) has its own backward, which no onespec op has")
        return apply.__get__(None, cls)(*args, **kwargs)
    return wrapper


def trace(module, input_shape) -> Trace:
    """The leaves of ``module`` run on a batch of 2 samples of ``input_shape``."""
    import torch

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32))
    ep = export(module, x)
    sig = ep.graph_signature
    params = {s.arg.name: s.target for s in sig.input_specs if s.target is not None}
    user_in = [s.arg.name for s in sig.input_specs if s.kind.name == "USER_INPUT"]
    sd = {k: v.detach().cpu().numpy() for k, v in ep.state_dict.items()}
    sd.update({k: v.detach().cpu().numpy() for k, v in getattr(ep, "constants", {}).items()
               if hasattr(v, "detach")})
    return _walk(ep.graph, params, user_in, sd, [s.arg.name for s in sig.output_specs])


def _sample(node) -> tuple | None:
    v = node.meta.get("val")
    return tuple(int(d) for d in v.shape[1:]) if hasattr(v, "shape") else None


def _walk(graph, params: dict, user_in: list[str], sd, outputs: list[str]) -> Trace:
    w = _Walker(params, user_in)
    for node in graph.nodes:
        if node.op == "placeholder":
            w.placeholder(node)
        elif node.op == "call_function":
            w.call(node)
    if w.problems:
        raise CaptureError(sorted(set(w.problems), key=w.problems.index))
    outs = [w.alias.get(o, o) for o in outputs]
    return Trace(fuse_channel_norms(w.leaves, outs), user_in[0], outs, sd, w.shapes)


class _Walker:
    """One pass over the export graph: leaves, aliases (dropped ops), shapes and problems."""

    def __init__(self, params: dict, user_in: list[str]):
        self.params, self.user_in = params, user_in
        self.problems: list[str] = []
        self.alias: dict[str, str] = {}
        self.shapes: dict[str, tuple] = {}
        self.full: dict[str, tuple] = {}
        self.leaves: list[Leaf] = []
        self.used: dict[str, str] = {}    # parameter key -> the op that reads it
        self.items: dict[str, list] = {}  # split_with_sizes name -> [(axis, start, stop)]
        self.failed: set[str] = set()

    def name_of(self, t) -> str:
        return self.alias.get(t.name, t.name)

    def shape(self, t, batch=True):
        import torch.fx as fx

        if not isinstance(t, fx.Node):
            raise aten.Unsupported(f"expected a tensor, got {t!r}")
        return self.shapes[self.name_of(t)] if batch else self.full[t.name]

    def param(self, t):
        import torch.fx as fx

        return self.params.get(t.name) if isinstance(t, fx.Node) else None

    def placeholder(self, node) -> None:
        v = node.meta.get("val")
        self.full[node.name] = tuple(int(d) for d in v.shape) if hasattr(v, "shape") else ()
        if node.name in self.user_in:
            self.shapes[node.name] = _sample(node)

    def call(self, node) -> None:
        packet = getattr(node.target, "__name__", str(node.target)).split(".")[0]
        before = len(self.problems)
        self._translate(node, packet)
        if len(self.problems) > before:
            self.failed.add(node.name)
            if _sample(node) is not None:
                self.shapes.setdefault(node.name, _sample(node))  # later ops still translate
            own = packet in aten.REASONS or packet not in aten.TABLE
            if not own and any(t.name in self.failed for t in node.all_input_nodes):
                del self.problems[before:]  # caused by an op already reported: one problem, not a cascade

    def _problem(self, node, msg: str) -> None:
        self.problems.append(f"{_where(node)}: {msg}")

    def _translate(self, node, packet: str) -> None:
        if packet == "getitem":
            src, i = node.args
            if src.name in self.items:
                self._leaf(node, None, _slice(*self.items[src.name][i]), [src.args[0]], {})
            else:
                self.alias[node.name] = self.name_of(src)  # batch_norm's first result and the like
            return
        if packet in aten.SILENT:
            return
        if packet in aten.REASONS:
            return self._problem(node, aten.REASONS[packet])
        if packet in ("split_with_sizes", "split"):
            self.items[node.name] = _split_items(node, self.shapes[self.name_of(node.args[0])])
            return
        make = aten.TABLE.get(packet)
        if make is None:
            return self._problem(node, f"operator aten.{packet} has no onespec equivalent")
        try:
            op = make(aten.Args(node.args, dict(node.kwargs), _sample(node) or (), self.shape, self.param))
        except aten.Unsupported as why:
            return self._problem(node, f"aten.{packet}: {why}")
        except Exception as err:  # arguments this translation does not know (a newer overload)
            return self._problem(node, f"aten.{packet} with arguments {node.args}: {type(err).__name__}: {err}")
        if op == aten.DROP:
            first = node.args[0][0] if isinstance(node.args[0], (list, tuple)) else node.args[0]
            self.alias[node.name] = self.name_of(first)
            return
        owner = _owner(op.params)
        if owner is False:
            return self._problem(node, f"aten.{packet} reads parameters of several modules "
                                       f"{sorted(k for _, k in op.params)}")
        # one parameter the op does not name (a module's bare parameter: ConvNeXt's layer_scale): the
        # node sits where the parameter does, named by it, and its tensor is aliased to the key
        aliased = len(op.params) == 1 and op.params[0][1].rsplit(".", 1)[-1] != op.params[0][0]
        if aliased:
            owner = op.params[0][1]
        for canonical, key in op.params:
            if key in self.used:
                self._problem(node, f"module {key.rsplit('.', 1)[0]} is called more than once (its weights "
                                    f"are shared between calls, which a spec cannot say)")
            self.used[key] = node.name
            if key.rsplit(".", 1)[-1] != canonical and not aliased:
                self._problem(node, f"parameter {key} is named {key.rsplit('.', 1)[-1]!r} where the op's "
                                    f"tensor is {canonical!r}")
        self._leaf(node, owner, op.node, op.ins, dict(op.params))

    def _leaf(self, node, owner, op, ins, params) -> None:
        self.leaves.append(Leaf(_leaf_path(node, owner), op, [self.name_of(t) for t in ins], node.name, params))
        self.shapes[node.name] = _sample(node)


def _slice(axis, start, stop):
    from ...spec import nodes as N
    return N.Slice(name="op", axis=axis, start=start, stop=stop)


def _split_items(node, x) -> list:
    sizes, dim = node.args[1], node.args[2] if len(node.args) > 2 else node.kwargs.get("dim", 0)
    axis = (dim if dim >= 0 else dim + len(x) + 1) - 1
    if isinstance(sizes, int):
        sizes = [min(sizes, x[axis] - i) for i in range(0, x[axis], sizes)]
    out, start = [], 0
    for s in sizes:
        out.append((axis, start, start + s))
        start += s
    return out


def _owner(params):
    owners = {k.rsplit(".", 1)[0] if "." in k else "" for _, k in params}
    if len(owners) > 1:
        return False
    return owners.pop() if owners else None


def _leaf_path(node, owner) -> str:
    """Where the op's native module sits (see the module docstring): the owner of its parameters,
    else ``<module path>.\0<export name>`` (``structure`` names it). Repeated calls of a
    parameter-free module get ``_<n>`` suffixes on that module's name."""
    if owner:
        return owner
    stack = _stack(node)
    path = ""
    for p, key in stack:
        name = p.rsplit(".", 1)[-1] if "." in p else p
        n = key.rsplit("@", 1)[1] if "@" in key else ""
        path = f"{path}.{name}" if path else name
        if n:
            path += f"_{n}"
    return f"{path}.\0{node.name}" if path else f"\0{node.name}"


def reference_outputs(model, x: np.ndarray):
    """The module's eval-mode outputs on ``x`` (numpy), a tuple for several."""
    import torch

    with torch.no_grad():
        y = model.eval()(torch.from_numpy(x))
    return tuple(t.numpy() for t in y) if isinstance(y, (tuple, list)) else y.numpy()


def state_keys(model) -> list[str]:
    """The module's own checkpoint keys (its ``state_dict``), bookkeeping counters left out."""
    return sorted(k for k in model.state_dict() if not k.endswith("num_batches_tracked"))
