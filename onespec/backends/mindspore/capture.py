"""A ``mindspore.nn.Cell`` -> its ops in execution order, each placed in the cell that ran it.

MindSpore's graphs (GRAPH_MODE's compiled graph, a MindIR export) keep no cell paths a spec can
be nested by, so the forward is recorded in PYNATIVE mode (``onespec.capture.record``): forward
pre/post hooks on every cell (paths from ``cells_and_names``), each cell of a class in ``LAYERS``
(or a subclass that keeps its ``construct``: MindCV's Dropout) one op translated from its
attributes, the functions in ``FUNCTIONS`` and the Tensor operators and methods in ``METHODS``
intercepted while the forward runs; any other ``mindspore.ops`` function reading a recorded
tensor is reported where it was called, and any other op's result where a recorded op reads it
(tensors are tracked by identity). Parameters keep their checkpoint names
(``Parameter.name``); batch norm tensors are MindSpore's own ``gamma`` / ``beta`` /
``moving_mean`` / ``moving_variance`` (``FRAMEWORK.roles``).

MindSpore's semantics kept: a BatchNorm cell stores ``momentum`` already as the new batch's
weight (onespec's convention); ``pad_mode="same"`` is onespec's ``"same"`` (TensorFlow's rule,
the smaller half before); ``Dropout`` (inverted, the identity at inference) is onespec's dropout; ``HSigmoid`` is relu6(x + 3) / 6.
"""
from __future__ import annotations

import inspect
import os

import mindspore as ms
import numpy as np
from mindspore import nn, ops

from ...capture import ops as O
from ...capture.ir import DROP, Call, Op, Unsupported
from ...capture.record import Recorder, layer_table
from ...spec import nodes as N
from . import FRAMEWORK


def _nchw(cell) -> None:
    fmt = getattr(cell, "data_format", None) or getattr(cell, "format", None) or "NCHW"
    if fmt != "NCHW":
        raise Unsupported(f"data format {fmt} (onespec is channels-first)")


def _conv(cell, c: Call) -> Op:
    _nchw(cell)
    mode = cell.pad_mode.lower()
    if mode == "same":  # TensorFlow's rule, onespec's "same"; none for a 1x1 kernel
        pad = 0 if set(cell.kernel_size) == {1} else "same"
    elif mode == "valid":
        pad = 0
    else:
        pad = cell.padding if isinstance(cell.padding, int) else tuple(cell.padding)
        if isinstance(pad, tuple):  # (top, bottom, left, right)
            if pad[0] != pad[1] or pad[2] != pad[3]:
                raise Unsupported(f"asymmetric padding {pad}")
            pad = (pad[0], pad[2])
    w = cell.weight.shape
    node = N.Conv(name="op", out_channels=w[0], kernel=O.one(w[2:]), stride=O.one(cell.stride),
                  padding=pad if pad == "same" else O.one(pad),
                  dilation=O.one(cell.dilation), groups=cell.group, bias=bool(cell.has_bias))
    return Op(node, [c.args[0]], [("weight", cell.weight)] + ([("bias", cell.bias)] if cell.has_bias else []))


def _batch_norm(cell, c: Call) -> Op:
    _nchw(cell)
    if cell.use_batch_statistics:
        raise Unsupported("use_batch_statistics=True: it normalizes by the batch's statistics at inference")
    node = N.BatchNorm(name="op", eps=float(cell.eps), momentum=round(float(cell.momentum), 9))
    return Op(node, [c.args[0]], [("weight", cell.gamma), ("bias", cell.beta), ("running_mean", cell.moving_mean),
                                  ("running_var", cell.moving_variance)])


def _dense(cell, c: Call) -> Op:
    if cell.activation_flag:
        raise Unsupported(f"a Dense with a fused activation ({type(cell.activation).__name__})")
    node = N.Linear(name="op", out_features=cell.weight.shape[0], bias=bool(cell.has_bias),
                    last_axis=len(c.shape(c.args[0])) > 1)
    return Op(node, [c.args[0]], [("weight", cell.weight)] + ([("bias", cell.bias)] if cell.has_bias else []))


def _pool(cls, cell, c: Call, **extra) -> Op:
    _nchw(cell)
    mode = cell.pad_mode.upper()
    if mode not in ("VALID", "SAME") or getattr(cell, "use_pad", False) or getattr(cell, "return_indices", False):
        raise Unsupported(f"a pool with pad_mode {cell.pad_mode} (VALID and SAME pools are captured)")
    return O.pool(cls, c.args[0], cell.kernel_size, cell.stride, "same" if mode == "SAME" else 0, False, **extra)


def _act(fn: str):
    return lambda cell, c: O.act(fn, c.args[0])


# cell class -> its translation from the cell's attributes and the call's input
LAYERS = {
    nn.Conv2d: _conv, nn.BatchNorm2d: _batch_norm, nn.BatchNorm1d: _batch_norm, nn.Dense: _dense,
    nn.ReLU: _act("relu"), nn.ReLU6: _act("relu6"), nn.HSwish: _act("hardswish"), nn.Sigmoid: _act("sigmoid"),
    nn.Tanh: _act("tanh"), nn.SiLU: _act("swish"),
    nn.GELU: lambda m, c: O.act("gelu_tanh" if m.approximate in (True, "tanh") else "gelu", c.args[0]),
    nn.HSigmoid: lambda m, c: Op(N.HardSigmoid(name="op"), [c.args[0]]),
    nn.Flatten: lambda m, c: O.flatten(c.args[0], c.shape(c.args[0]), m.start_dim, m.end_dim, c.shape(c.out)),
    nn.MaxPool2d: lambda m, c: _pool(N.MaxPool, m, c),
    nn.AvgPool2d: lambda m, c: _pool(N.AvgPool, m, c),
    nn.Dropout: lambda m, c: Op(N.Dropout(name="op", p=float(m.p)), [c.args[0]]) if m.p else DROP,
    nn.Identity: lambda m, c: DROP,
}


def _mean(c: Call) -> Op:
    x = c.arg(0, "x" if "x" in c.kwargs else "input")
    return O.mean(x, c.shape(x), c.arg(1, "axis"), c.arg(2, "keep_dims", c.kwargs.get("keepdims", False)))


def _flatten(c: Call) -> Op:
    x = c.arg(0, "input")
    return O.flatten(x, c.shape(x), c.kwargs.get("start_dim", 1), c.kwargs.get("end_dim", -1), c.shape(c.out))


def _binary(mode: str, reflected: bool = False):
    return O.binary_call(mode, ("input", "other"), reflected)


# ``mindspore.ops`` function -> its translation
FUNCTIONS = {
    "add": _binary("add"), "mul": _binary("mul"), "sub": _binary("sub"), "div": _binary("div"),
    "cat": lambda c: O.concat(c.arg(0, "tensors"), c.arg(1, "axis", 0), c.shape),
    "concat": lambda c: O.concat(c.arg(0, "tensors"), c.arg(1, "axis", 0), c.shape),
    "mean": _mean, "flatten": _flatten,
    "reshape": lambda c: O.reshape(c.arg(0, "input"), c.arg(0, "input").shape[0], tuple(c.out.shape)),
    "transpose": lambda c: O.permute(c.arg(0, "input"), c.arg(1, "input_perm"), len(c.out.shape)),
    "permute": lambda c: O.permute(c.arg(0, "input"), c.arg(1, "axis"), len(c.out.shape)),
    "relu": lambda c: O.act("relu", c.arg(0, "input")), "relu6": lambda c: O.act("relu6", c.arg(0, "x")),
    "sigmoid": lambda c: O.act("sigmoid", c.arg(0, "input")), "hardswish": lambda c: O.act("hardswish", c.arg(0, "x")),
    "silu": lambda c: O.act("swish", c.arg(0, "input")), "tanh": lambda c: O.act("tanh", c.arg(0, "input")),
}
# Tensor operator or method -> (op name, its translation)
METHODS = {
    "__add__": ("add", _binary("add")), "__radd__": ("add", _binary("add", True)),
    "__mul__": ("mul", _binary("mul")), "__rmul__": ("mul", _binary("mul", True)),
    "__sub__": ("sub", _binary("sub")), "__truediv__": ("div", _binary("div")),
    "__iadd__": ("add", _binary("add")), "__imul__": ("mul", _binary("mul")),
    "mean": ("mean", _mean), "flatten": ("flatten", _flatten),
    "reshape": ("reshape", lambda c: O.reshape(c.args[0], c.args[0].shape[0], tuple(c.out.shape))),
    "view": ("view", lambda c: O.reshape(c.args[0], c.args[0].shape[0], tuple(c.out.shape))),
    "__getitem__": ("slice", lambda c: O.getitem(c.args[0], c.args[1], tuple(c.args[0].shape))),
}
# reading a tensor's value into Python
VALUE_READS = ("asnumpy", "item", "tolist", "__bool__", "__float__", "__int__")


def _custom_bprop(cell) -> str | None:
    """A cell with its own ``bprop`` (MindSpore's custom backward): recording its forward would
    lose that backward, so the spec would train differently."""
    if callable(getattr(cell, "bprop", None)):
        return f"the cell ({type(cell).__module__}.{type(cell).__qualname__}) defines its own bprop (a custom " \
               f"backward), which no onespec op has"
    return None


def _intercept(rec: Recorder) -> None:
    """Every ``mindspore.ops`` function watched first; then the translated functions and Tensor
    methods on top."""
    for name in dir(ops):
        if not name.startswith("_") and inspect.isfunction(getattr(ops, name)):
            rec.patch(ops, name, rec.watch(f"mindspore op ops.{name}"))
    for name in (n for n in VALUE_READS if hasattr(ms.Tensor, n)):
        rec.patch(ms.Tensor, name, rec.watch(name, f"`.{name}()` reads a tensor's value into Python: the "
                                                   f"forward depends on the data"))
    for name, translate in FUNCTIONS.items():
        rec.patch(ops, name, rec.function(name, translate))
    for name, (op, translate) in METHODS.items():
        if hasattr(ms.Tensor, name):
            rec.patch(ms.Tensor, name, rec.function(op, translate))


def trace(model, input_shape):
    """The leaves of ``model`` (inference mode, PYNATIVE) run on a batch of 2 samples of ``input_shape``."""
    mode = ms.get_context("mode")
    ms.set_context(mode=ms.PYNATIVE_MODE)
    model.set_train(False)
    named = model.parameters_dict()
    params = {id(p): k for k, p in named.items()}
    cells = list(model.cells_and_names())
    rec = Recorder(cells, params, lambda t: isinstance(t, ms.Tensor), lambda t: t.shape, layer_table(LAYERS, "construct"),
                   (os.path.dirname(ms.__file__),), _custom_bprop)
    x = ms.Tensor(np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32))
    try:
        out = rec.run([c for _, c in cells], lambda m, h: m.register_forward_pre_hook(h),
                      lambda m, h: m.register_forward_hook(h), _intercept, model, x)
    finally:
        ms.set_context(mode=mode)
    return rec.finish(out, {k: p.asnumpy() for k, p in named.items()}, FRAMEWORK.roles)


def reference_outputs(model, x: np.ndarray):
    """The cell's inference-mode outputs on ``x`` (numpy), a tuple for several."""
    model.set_train(False)
    y = model(ms.Tensor(x))
    return tuple(t.asnumpy() for t in y) if isinstance(y, (tuple, list)) else y.asnumpy()


def state_keys(model) -> list[str]:
    """The cell's own checkpoint keys (its parameters' names)."""
    return sorted(model.parameters_dict())
