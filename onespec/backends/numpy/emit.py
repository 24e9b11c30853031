"""Spec -> a tree of float64 numpy modules: the reference backend (the numerical oracle).

Built by the same walk as the framework backends (``backends.tree.emit``), one table entry per
op; module paths equal node paths and each leaf holds the tensors its op declares, under their
canonical names. No autograd: it evaluates, it does not train. Conventions: none to translate
(the spec's own semantics, torch's).
"""
from __future__ import annotations

import numpy as np

from ...spec import ModelSpec
from ..tree import emit
from . import kernels as K


class Module:
    """A node's module: ``params`` (canonical tensor name -> float64 array), ``children``,
    and hooks: ``pre_hooks`` see (module, input) and may change ``params`` (calibration),
    ``hooks`` see (module, input, output)."""

    def __init__(self, node, fn=None, children=(), tensors=()):
        self.node, self.op, self.fn = node, node.op if node is not None else "seq", fn
        self.children = dict(children)
        self.params = {t.name: np.full(t.shape, 1.0 if t.role in ("gamma", "running_var") else 0.0)
                       for t in tensors}
        self.trainable = {t.name: t.trainable for t in tensors}
        self.pre_hooks: list = []
        self.hooks: list = []

    def __call__(self, x):
        for h in self.pre_hooks:
            h(self, x)
        y = self.fn(self, x)
        for h in self.hooks:
            h(self, x, y)
        return y

    def named_modules(self, prefix: str = ""):
        yield prefix, self
        for name, child in self.children.items():
            yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def named_tensors(self):
        for path, m in self.named_modules():
            for k, v in m.params.items():
                yield f"{path}.{k}", v, m.trainable[k]

    def kids(self):
        return list(self.children.values())


def _leaf(fn):
    def make(n, x):
        return Module(n, lambda m, v: fn(m.node, m.params, v), tensors=n.tensors(x))
    return make


def _seq(m, x):
    for c in m.kids():
        x = c(x)
    return x


def _graph(m, x):
    n = m.node
    ins = n.input_names()
    env = dict(zip(ins, x)) if len(ins) > 1 else {ins[0]: x}
    for (name, c), refs in zip(m.children.items(), n.refs()):
        env[name] = c(env[refs[0]] if len(refs) == 1 else [env[r] for r in refs])
    outs = n.output_names()
    return env[outs[0]] if len(outs) == 1 else tuple(env[o] for o in outs)


def _parallel(m, x):
    n = m.node
    ins = [x] * len(m.children) if n.split is None else np.split(x, np.cumsum(n.split)[:-1], axis=1)
    outs = [c(xi) for c, xi in zip(m.kids(), ins)]
    if n.merge == "concat":
        return np.concatenate(outs, axis=1)
    y = outs[0]
    for o in outs[1:]:
        y = y + o if n.merge == "add" else np.maximum(y, o)
    return y


def _bn(n, p, x):
    return K.batchnorm(x, p["running_mean"], p["running_var"], n.eps, p.get("weight"), p.get("bias"))


EMIT = {
    "conv": _leaf(lambda n, p, x: K.conv(x, p["weight"], p.get("bias"), n.stride, n.pads(x.shape[1:]), n.dilation,
                                                     n.groups)),
    "conv_transpose": _leaf(lambda n, p, x: K.conv_transpose(x, p["weight"], p.get("bias"), n.stride, n.padding,
                                                             n.output_padding, n.dilation, n.groups)),
    "batchnorm": _leaf(_bn),
    "groupnorm": _leaf(lambda n, p, x: K.groupnorm(x, n.groups, n.eps, p.get("weight"), p.get("bias"))),
    "layernorm": _leaf(lambda n, p, x: (K.layernorm_last if n.last_axis else K.layernorm)(
        x, n.eps, p.get("weight"), p.get("bias"))),
    "act": _leaf(lambda n, p, x: K.ACTS[n.fn](x)),
    "hardsigmoid": _leaf(lambda n, p, x: np.clip(n.slope * x + n.offset, 0, 1)),
    "maxpool": _leaf(lambda n, p, x: K.maxpool(x, n.kernel, n.stride, n.pads(x.shape[1:]), n.ceil_mode)),
    "avgpool": _leaf(lambda n, p, x: K.avgpool(x, n.kernel, n.stride, n.pads(x.shape[1:]), n.ceil_mode,
                                                           n.count_include_pad)),
    "global_avgpool": _leaf(lambda n, p, x: x.mean(axis=tuple(range(2, x.ndim)), keepdims=True)),
    "adaptive_avgpool": _leaf(lambda n, p, x: K.adaptive_avgpool(x, n.output_size)),
    "upsample": _leaf(lambda n, p, x: K.upsample(x, n.scale, n.mode, n.align_corners)),
    "flatten": _leaf(lambda n, p, x: x.reshape(x.shape[0], -1)),
    "reshape": _leaf(lambda n, p, x: x.reshape(x.shape[0], *n.shape)),
    "linear": _leaf(lambda n, p, x: x @ p["weight"].T + (0 if p.get("bias") is None else p["bias"])),
    "dropout": _leaf(lambda n, p, x: x),
    "identity": _leaf(lambda n, p, x: x),
    "channel_shuffle": _leaf(lambda n, p, x: K.channel_shuffle(x, n.groups)),
    "prelu": _leaf(lambda n, p, x: K.prelu(x, p["weight"])),
    "hardtanh": _leaf(lambda n, p, x: np.clip(x, n.min_val, n.max_val)),
    "softmax": _leaf(lambda n, p, x: K.softmax(x, n.axis % (x.ndim - 1) + 1)),
    "l2norm": _leaf(lambda n, p, x: K.l2normalize(x, n.axis % (x.ndim - 1) + 1, n.eps)),
    "permute": _leaf(lambda n, p, x: x.transpose(0, *(d + 1 for d in n.dims))),
    "mean": _leaf(lambda n, p, x: x.mean(axis=tuple(a + 1 for a in n.resolved(x.shape[1:])), keepdims=n.keepdim)),
    "pad": _leaf(lambda n, p, x: np.pad(x, [(0, 0), (0, 0), *n.pads], constant_values=n.value)),
    "affine": _leaf(lambda n, p, x: x * n.scale + n.shift),
    "layer_scale": _leaf(lambda n, p, x: x * (p["gamma"] if n.last_axis
                                              else p["gamma"].reshape((-1,) + (1,) * (x.ndim - 2)))),
    "slice": _leaf(lambda n, p, x: np.take(x, range(n.start, n.stop), axis=n.axis % (x.ndim - 1) + 1)),
    "pixel_shuffle": _leaf(lambda n, p, x: K.pixel_shuffle(x, n.factor)),
    "merge": _leaf(lambda n, p, xs: K.merge(xs, n.mode, n.axis % (xs[0].ndim - 1) + 1)),
    "graph": lambda n, x, kids: Module(n, _graph, kids),
    "seq": lambda n, x, kids: Module(n, _seq, kids),
    "parallel": lambda n, x, kids: Module(n, _parallel, kids),
    "scale": lambda n, x, kids: Module(n, lambda m, v: v * m.kids()[0](v), kids),
    "shift_max": lambda n, x, kids: Module(n, lambda m, v: K.shift_max(
        v, m.kids()[0](v), m.node.groups, m.node.fusions, m.node.act_max, m.node.init_a, m.node.init_b), kids),
}


def build(spec: ModelSpec) -> Module:
    return emit(spec, EMIT, lambda kids: Module(None, _seq, kids))
