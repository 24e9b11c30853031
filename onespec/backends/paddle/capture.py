"""A ``paddle.nn.Layer`` -> its ops in execution order, each placed in the layer that ran it.

``paddle.jit.to_static``'s program keeps no layer paths, so the forward is recorded
(``onespec.capture.record``): forward pre/post hooks on every sublayer (paths from
``named_sublayers``), each layer of a class in ``LAYERS`` (or a subclass that keeps its
``forward``) one op translated from its attributes; between layers every ``paddle._C_ops`` op
(where every Python API and Tensor method ends, however the user's code named it: ``from paddle
import concat`` too) is translated by ``C_OPS`` or, reading a recorded tensor, reported where it
was called; the Tensor operators (C++, no ``_C_ops`` call) are intercepted. Parameters keep
their ``state_dict`` keys; batch norm statistics are Paddle's own ``_mean`` / ``_variance``
(``FRAMEWORK.roles``) and a Linear's [in, out] weight is transposed to the canonical [out, in].

Paddle's inference semantics kept: ``Dropout(mode="downscale_in_infer")`` multiplies by
``1 - p`` at inference (an affine); ``Hardsigmoid``'s slope is 0.1666667, not 1/6; Paddle's BN
momentum m is onespec's ``1 - m``.
"""
from __future__ import annotations

import os

import numpy as np
import paddle
from paddle import nn

from ...capture import ops
from ...capture.ir import DROP, Call, Op, Then, Unsupported
from ...capture.record import Recorder, layer_table
from ...spec import nodes as N
from . import FRAMEWORK


def _nchw(layer) -> None:
    fmt = getattr(layer, "_data_format", None) or getattr(layer, "data_format", None) or "NCHW"
    if fmt not in ("NCHW", "NCL", "NC"):
        raise Unsupported(f"data format {fmt} (onespec is channels-first)")


def _conv(layer, c: Call) -> Op:
    _nchw(layer)
    if layer._padding_mode != "zeros":
        raise Unsupported(f"{layer._padding_mode} padding")
    pad = list(layer._updated_padding) if layer._padding_algorithm == "EXPLICIT" else layer._padding_algorithm
    if pad == "SAME":
        pad = "same"
    elif pad == "VALID":
        pad = 0
    elif len(pad) == 4:  # [top, bottom, left, right]
        if pad[0] != pad[1] or pad[2] != pad[3]:
            raise Unsupported(f"asymmetric padding {pad}")
        pad = [pad[0], pad[2]]
    w = layer.weight.shape
    node = N.Conv(name="op", out_channels=w[0], kernel=ops.one(w[2:]), stride=ops.one(layer._stride),
                  padding=pad if pad == "same" else ops.one(pad), dilation=ops.one(layer._dilation), groups=layer._groups,
                  bias=layer.bias is not None)
    return Op(node, [c.args[0]], [("weight", layer.weight)] + ([("bias", layer.bias)] if layer.bias is not None else []))


# the old ``BatchNorm``'s fused ``act`` -> onespec's activation
_BN_ACTS = {"relu": "relu", "relu6": "relu6", "sigmoid": "sigmoid", "tanh": "tanh", "hard_swish": "hardswish",
            "swish": "swish"}


def _batch_norm(layer, c: Call) -> Op | Then:
    """The norm; the old ``BatchNorm(act=...)`` is the norm then its activation, a node beside it."""
    _nchw(layer)
    act = getattr(layer, "_act", None)
    if act and act not in _BN_ACTS:
        raise Unsupported(f"a BatchNorm with a fused act={act!r}")
    affine = layer.weight is not None
    node = N.BatchNorm(name="op", eps=float(layer._epsilon), momentum=round(1.0 - float(layer._momentum), 9), affine=affine)
    params = [("weight", layer.weight), ("bias", layer.bias)] if affine else []
    norm = Op(node, [c.args[0]], params + [("running_mean", layer._mean), ("running_var", layer._variance)])
    return Then([norm, ops.act(_BN_ACTS[act], c.out)]) if act else norm


def _linear(layer, c: Call) -> Op:
    node = N.Linear(name="op", out_features=layer.weight.shape[1], bias=layer.bias is not None,
                    last_axis=len(c.shape(c.args[0])) > 1)
    return Op(node, [c.args[0]], [("weight", layer.weight)] + ([("bias", layer.bias)] if layer.bias is not None else []))


def _dropout(p, mode, x) -> Op | str:
    """Paddle's ``downscale_in_infer`` scales by ``1 - p`` at inference; ``upscale_in_train`` is
    onespec's (inverted) dropout, the identity there."""
    if mode == "downscale_in_infer" and float(p) != 0.0:
        return Op(N.Affine(name="op", scale=1.0 - float(p)), [x])
    return Op(N.Dropout(name="op", p=float(p)), [x]) if float(p) > 0 else DROP  # kept for training


def _pool(cls, layer, c: Call, **extra) -> Op:
    _nchw(layer)
    if getattr(layer, "return_mask", False) or getattr(layer, "divisor", None):
        raise Unsupported("a pool returning its mask or with a divisor override")
    same = isinstance(layer.padding, str) and layer.padding.upper() == "SAME"  # TensorFlow's rule, ceil_mode unused
    if isinstance(layer.padding, str) and not same:
        return ops.pool(cls, c.args[0], layer.ksize, layer.stride, 0, layer.ceil_mode, **extra)  # VALID
    return ops.pool(cls, c.args[0], layer.ksize, layer.stride, "same" if same else layer.padding,
                    layer.ceil_mode and not same, **extra)


def _act(fn: str):
    return lambda layer, c: ops.act(fn, c.args[0])


def _hardsigmoid(slope=0.1666667, offset=0.5):
    return lambda x: Op(N.HardSigmoid(name="op", slope=float(slope), offset=float(offset)), [x])


# layer class -> its translation from the layer's attributes and the call's input
LAYERS = {
    nn.Conv2D: _conv, nn.BatchNorm2D: _batch_norm, nn.BatchNorm1D: _batch_norm, nn.BatchNorm: _batch_norm,
    nn.Linear: _linear,
    nn.ReLU: _act("relu"), nn.ReLU6: _act("relu6"), nn.Hardswish: _act("hardswish"), nn.Sigmoid: _act("sigmoid"),
    nn.Silu: _act("swish"), nn.Swish: _act("swish"), nn.Tanh: _act("tanh"),
    nn.GELU: lambda m, c: Op(N.Act(name="op", fn="gelu_tanh" if m._approximate in (True, "tanh") else "gelu"), [c.args[0]]),
    nn.Hardsigmoid: lambda m, c: _hardsigmoid()(c.args[0]),
    nn.Hardtanh: lambda m, c: ops.hardtanh(c.args[0], m._min, m._max),
    nn.PReLU: lambda m, c: Op(N.PReLU(name="op", shared=m._num_parameters == 1), [c.args[0]], [("weight", m._weight)]),
    nn.Softmax: lambda m, c: Op(N.Softmax(name="op", axis=ops.axis(m._axis, c.shape(c.args[0]))), [c.args[0]]),
    nn.AdaptiveAvgPool2D: lambda m, c: ops.adaptive(c.args[0], m._output_size),
    nn.MaxPool2D: lambda m, c: _pool(N.MaxPool, m, c),
    nn.AvgPool2D: lambda m, c: _pool(N.AvgPool, m, c, count_include_pad=not m.exclusive),
    nn.Dropout: lambda m, c: _dropout(m.p, m.mode, c.args[0]),
    nn.Flatten: lambda m, c: ops.flatten(c.args[0], c.shape(c.args[0]), m.start_axis, m.stop_axis, c.shape(c.out)),
    nn.Identity: lambda m, c: DROP,
}


def _f_act(fn: str):
    return lambda c: ops.act(fn, c.args[0])


def _binary(mode: str, reflected: bool = False):
    return ops.binary_call(mode, ("x", "y"), reflected)


def _scale(c: Call) -> Op:
    """``scale(x, s, b, bias_after_scale)``: x * s + b, or (x + b) * s."""
    s, b = float(c.arg(1, "scale", 1.0)), float(c.arg(2, "bias", 0.0))
    return Op(N.Affine(name="op", scale=s, shift=b if c.arg(3, "bias_after_scale", True) else b * s), [c.args[0]])


def _split(c: Call) -> list[Op]:
    """One slice per part, from the parts' shapes."""
    x = c.args[0]
    axis = ops.axis(c.arg(2, "axis", 0), c.shape(x))
    out, start = [], 0
    for part in c.out:
        stop = start + c.shape(part)[axis]
        out.append(Op(N.Slice(name="op", axis=axis, start=start, stop=stop), [x]))
        start = stop
    return out


def _pool2d(c: Call) -> Op:
    x, size, strides, pads, ceil, exclusive, fmt, kind, whole, adaptive, algorithm = (list(c.args) + [None] * 11)[:11]
    if fmt not in (None, "NCHW"):
        raise Unsupported(f"data format {fmt} (onespec is channels-first)")
    if kind != "avg" and (whole or adaptive):
        raise Unsupported("an adaptive or global max pool")
    if whole or adaptive:
        return Op(N.GlobalAvgPool(name="op"), [x]) if whole else ops.adaptive(x, size)
    pad = "same" if algorithm == "SAME" else 0 if algorithm == "VALID" else pads
    cls, extra = (N.AvgPool, {"count_include_pad": not exclusive}) if kind == "avg" else (N.MaxPool, {})
    return ops.pool(cls, x, size, strides, pad, bool(ceil) and pad != "same", **extra)


def _dropout_op(c: Call) -> Op | str:
    if not c.arg(3, "is_test", False):
        raise Unsupported("dropout in training mode")
    return _dropout(c.arg(2, "p", 0.5), c.arg(4, "mode", "upscale_in_train"), c.args[0])


# ``paddle._C_ops`` op (every Python API and Tensor method ends in one; an in-place ``op_`` is
# translated as ``op``) -> its translation
C_OPS = {
    "add": _binary("add"), "multiply": _binary("mul"), "subtract": _binary("sub"), "divide": _binary("div"),
    "scale": _scale, "concat": lambda c: ops.concat(c.args[0], c.arg(1, "axis", 0), c.shape),
    "split": _split, "split_with_num": _split,
    "mean": lambda c: ops.mean(c.args[0], c.shape(c.args[0]), c.arg(1, "axis"), c.arg(2, "keepdim", False)),
    "transpose": lambda c: ops.permute(c.args[0], c.arg(1, "perm"), len(c.out.shape)),
    "flatten": lambda c: ops.flatten(c.args[0], c.shape(c.args[0]), c.arg(1, "start_axis", 0), c.arg(2, "stop_axis", -1),
                                     c.shape(c.out)),
    **dict.fromkeys(("reshape", "squeeze", "unsqueeze"), lambda c: ops.reshape(c.args[0], c.args[0].shape[0],
                                                                               list(c.out.shape))),
    "relu": _f_act("relu"), "relu6": _f_act("relu6"), "hardswish": _f_act("hardswish"), "sigmoid": _f_act("sigmoid"),
    "silu": _f_act("swish"), "swish": _f_act("swish"), "tanh": _f_act("tanh"),
    "hardsigmoid": lambda c: _hardsigmoid(c.arg(1, "slope", 0.1666667), c.arg(2, "offset", 0.5))(c.args[0]),
    "gelu": lambda c: ops.act("gelu_tanh" if c.arg(1, "approximate", False) in (True, "tanh") else "gelu", c.args[0]),
    "softmax": lambda c: Op(N.Softmax(name="op", axis=ops.axis(c.arg(1, "axis", -1), c.shape(c.args[0]))), [c.args[0]]),
    "pool2d": _pool2d, "dropout": _dropout_op,
}
# Tensor operator -> (op name, its translation)
OPERATORS = {"__add__": ("add", _binary("add")), "__radd__": ("add", _binary("add", True)),
             "__mul__": ("mul", _binary("mul")), "__rmul__": ("mul", _binary("mul", True)),
             "__sub__": ("sub", _binary("sub")), "__truediv__": ("div", _binary("div")),
    "__iadd__": ("add", _binary("add")), "__imul__": ("mul", _binary("mul"))}
# Tensor methods that are the identity at inference (``_use_gpudnn``: the adaptive pool's kernel choice)
IDENTITIES = ("_use_gpudnn", "contiguous", "detach", "clone")
# reading a tensor's value into Python
VALUE_READS = ("item", "numpy", "tolist", "__bool__", "__float__", "__int__")


def _pylayer(rec: Recorder) -> None:
    """A custom ``PyLayer`` (Paddle's autograd.Function) is a problem where it is applied: its
    forward would be recorded and its own backward lost, so the spec would train differently."""
    base = paddle.autograd.PyLayer.__mro__[1].__dict__["apply"]

    def apply(cls, *args, **kwargs):
        why = f"a custom PyLayer ({cls.__module__}.{cls.__qualname__}) has its own backward, which no onespec op has"
        return rec.watch("PyLayer", why)(base.__get__(None, cls))(*args, **kwargs)
    rec.patch(paddle.autograd.PyLayer, "apply", lambda _: classmethod(apply))


def _intercept(rec: Recorder) -> None:
    """Every ``paddle._C_ops`` op translated (``C_OPS``) or watched; the Tensor operators (C++,
    they call no ``_C_ops``) translated; value reads and custom PyLayers reported."""
    for name in dir(paddle._C_ops):
        if not name.startswith("_") and callable(getattr(paddle._C_ops, name)):
            base = name[:-1] if name.endswith("_") and name[:-1] in C_OPS else name
            wrap = rec.function(base.replace("_with_num", ""), C_OPS[base]) if base in C_OPS \
                else rec.watch(f"paddle op {name}")
            rec.patch(paddle._C_ops, name, wrap)
    _pylayer(rec)
    for name in (n for n in VALUE_READS if hasattr(paddle.Tensor, n)):
        rec.patch(paddle.Tensor, name, rec.watch(name, f"`.{name}()` reads a tensor's value into Python: the "
                                                       f"forward depends on the data"))
    for name, (op, translate) in OPERATORS.items():
        if hasattr(paddle.Tensor, name):  # no __iadd__: ``+=`` is __add__
            rec.patch(paddle.Tensor, name, rec.function(op, translate))
    rec.patch(paddle.Tensor, "__getitem__", rec.function("slice", lambda c: ops.getitem(c.args[0], c.args[1],
                                                                                        list(c.args[0].shape))))
    for name in IDENTITIES:
        rec.patch(paddle.Tensor, name, rec.function(name, lambda c: DROP))


def trace(model, input_shape):
    """The leaves of ``model`` (eval mode) run on a batch of 2 samples of ``input_shape``."""
    model.eval()
    sd = model.state_dict()
    params = {id(t): k for k, t in sd.items()}
    rec = Recorder(list(model.named_sublayers(include_self=True)), params, lambda t: isinstance(t, paddle.Tensor),
                   lambda t: t.shape, layer_table(LAYERS, "forward"), (os.path.dirname(paddle.__file__),))
    x = paddle.to_tensor(np.random.default_rng(0).standard_normal((2, *input_shape)).astype(np.float32))
    with paddle.no_grad():
        out = rec.run([m for _, m in model.named_sublayers(include_self=True)], lambda m, h: m.register_forward_pre_hook(h),
                      lambda m, h: m.register_forward_post_hook(h), _intercept, model, x)
    state = {k: t.numpy() for k, t in sd.items()}
    tr = rec.finish(out, state, FRAMEWORK.roles)
    for lf in tr.leaves:
        if isinstance(lf.node, N.Linear):
            state[lf.params["weight"]] = np.ascontiguousarray(state[lf.params["weight"]].T)
    return tr


def reference_outputs(model, x: np.ndarray):
    """The layer's eval-mode outputs on ``x`` (numpy), a tuple for several."""
    with paddle.no_grad():
        y = model.eval()(paddle.to_tensor(x))
    return tuple(t.numpy() for t in y) if isinstance(y, (tuple, list)) else y.numpy()


def state_keys(model) -> list[str]:
    """The layer's own checkpoint keys (its ``state_dict``)."""
    return sorted(model.state_dict())
