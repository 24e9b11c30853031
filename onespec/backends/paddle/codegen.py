"""Source text of each op for generated Paddle files (``onespec.codegen``): the classes and
arguments of ``emit.py``, written out. Importing this module imports no framework."""
from __future__ import annotations

from ...codegen.layout import Arg, Call, check_supported, one
from ..tree import ntuple

FRAMEWORK = "paddle"
BASE = "nn.Layer"
FORWARD = "forward"
SEQUENTIAL = "nn.Sequential"
CAT = "paddle.concat({}, axis=1)"
CAT_AT = "paddle.concat({}, axis={})"
VARARGS = "list({})"
GLOBALS = ("paddle", "nn")
MAXIMUM = "paddle.maximum({}, {})"
SPLIT = "paddle.split({}, {}, axis=1)"
LOADER = "``net.set_state_dict(paddle.load(path))`` (nothing missing or unexpected)"
RESERVED = frozenset({"HardSigmoid", "Reshape", "Layer", "Network", "LayerNorm2d", "L2Normalize", "Permute", "Mean",
                      "Affine", "LayerScale", "Slice", "PReLU", "GroupNorm", "BatchNorm1D", "BatchNorm2D",
                      "BatchNorm3D"})
IMPORTS = "import paddle\nfrom paddle import nn\n"
# an import a file holds only where its helpers use it
OPTIONAL_IMPORTS = {"_C_ops.": "from paddle import _C_ops\n"}
# (ops it concerns, what is translated): a file states those of the ops its model uses
CONVENTIONS = [
    (('batchnorm',), "BatchNorm momentum is 1 - m (Paddle weights the running value: 0.9 for torch's 0.1)."),
    (('batchnorm',), "In training, the running variance takes the unbiased batch variance (torch's and "
     "MindSpore's); Paddle's own BatchNorm takes the biased one, so the BatchNorm classes below correct its update."),
    (('avgpool',), "AvgPool's exclusive is the negation of torch's count_include_pad."),
    (('maxpool', 'avgpool'), "A ceil-mode pool whose extra window would start in the padding runs in floor mode "
     "(torch drops that window, Paddle keeps it)."),
    (('linear',), "Linear weights are stored [in, out]; the checkpoint is already in Paddle's layout."),
    (('hardsigmoid',), "hardsigmoid passes the spec's slope and offset to Paddle's kernel."),
    (('dropout',), "Dropout is upscale_in_train (inverted dropout, torch's)."),
]
DOCS = {"parallel": "Branches on the same input, merged.", "scale": "x times a gate computed from x.",
        "shift_max": "Dynamic Shift-Max (MicroNet).", "seq": "Layers applied in order.",
        "graph": "Layers wired by name."}

HELPERS = {
    "HardSigmoid": '''class HardSigmoid(nn.Layer):
    """clip(slope * x + offset, 0, 1)."""

    def __init__(self, slope, offset):
        super().__init__()
        self.slope, self.offset = slope, offset

    def forward(self, x):
        return nn.functional.hardsigmoid(x, slope=self.slope, offset=self.offset)
''',
    "Reshape": '''class Reshape(nn.Layer):
    def __init__(self, shape):
        super().__init__()
        self.shape = [-1] + list(shape)

    def forward(self, x):
        return paddle.reshape(x, self.shape)
''',
    "shift_max": '''def shift_max(x, coefficients, shape, groups, fusions, scale, init_a, init_b):
    """max_k(a_k * x + b_k * shift(x)); shift rolls the channels, seen as (groups, C / groups),
    by one along both axes."""
    c, hw = shape[0], list(shape[1:])
    y = (paddle.reshape(coefficients, [-1, 2 * fusions * c, 1, 1]) - 0.5) * scale
    s = paddle.reshape(x, [-1, groups, c // groups] + hw)
    if groups > 1:
        s = paddle.concat([s[:, 1:], s[:, :1]], axis=1)
    if c // groups > 1:
        s = paddle.concat([s[:, :, 1:], s[:, :, :1]], axis=2)
    x2 = paddle.reshape(s, [-1, c] + hw)
    out = x * (y[:, :c] + init_a[0]) + x2 * (y[:, c:2 * c] + init_b[0])
    if fusions == 2:
        second = x * (y[:, 2 * c:3 * c] + init_a[1]) + x2 * (y[:, 3 * c:] + init_b[1])
        out = paddle.maximum(out, second)
    return out
''',
}

HELPERS.update({
    "LayerNorm2d": '''class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels at every position (channels first)."""

    def forward(self, x):
        return paddle.transpose(super().forward(paddle.transpose(x, [0, 2, 3, 1])), [0, 3, 1, 2])
''',
    "GroupNorm": '''class GroupNorm(nn.GroupNorm):
    """Each group centered first: Paddle's CPU kernel takes the variance in one pass
    (E[x^2] - E[x]^2), which cancels where the mean is large against the spread; the norm is
    invariant to the shift."""

    def forward(self, x):
        g = x.reshape([0, self._num_groups, -1])
        return super().forward((g - g.mean(axis=2, keepdim=True)).reshape([0] + list(x.shape[1:])))
''',
    "PReLU": '''class PReLU(nn.Layer):
    """max(0, x) + a * min(0, x), a per channel or shared (``view``), named ``weight``."""

    def __init__(self, channels, view):
        super().__init__()
        self.weight = self.create_parameter(
            [channels], default_initializer=nn.initializer.Constant(0.25))
        self.view = list(view)

    def forward(self, x):
        zero = paddle.zeros([1], x.dtype)
        slope = paddle.reshape(self.weight, self.view)
        return paddle.maximum(x, zero) + slope * paddle.minimum(x, zero)
''',
    "L2Normalize": '''class L2Normalize(nn.Layer):
    def __init__(self, axis, eps):
        super().__init__()
        self.axis, self.eps = axis, eps

    def forward(self, x):
        return nn.functional.normalize(x, p=2, axis=self.axis, epsilon=self.eps)
''',
    "Permute": '''class Permute(nn.Layer):
    def __init__(self, perm):
        super().__init__()
        self.perm = list(perm)

    def forward(self, x):
        return paddle.transpose(x, self.perm)
''',
    "Mean": '''class Mean(nn.Layer):
    def __init__(self, axes, keepdim=False):
        super().__init__()
        self.axes, self.keepdim = list(axes), keepdim

    def forward(self, x):
        return paddle.mean(x, axis=self.axes, keepdim=self.keepdim)
''',
    "Affine": '''class Affine(nn.Layer):
    """x * scale + shift, constants."""

    def __init__(self, scale, shift):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return x * self.scale + self.shift
''',
    "LayerScale": '''class LayerScale(nn.Layer):
    """x * gamma, gamma broadcast as ``view`` (over the channels or the last dim)."""

    def __init__(self, channels, view):
        super().__init__()
        self.gamma = self.create_parameter(
            [channels], default_initializer=nn.initializer.Constant(1.0))
        self.view = list(view)

    def forward(self, x):
        return x * paddle.reshape(self.gamma, self.view)
''',
    "Slice": '''class Slice(nn.Layer):
    def __init__(self, axis, start, stop):
        super().__init__()
        self.axis, self.start, self.stop = axis, start, stop

    def forward(self, x):
        return paddle.slice(x, axes=[self.axis], starts=[self.start], ends=[self.stop])
''',
})

_ACTS = {"relu": "nn.ReLU", "relu6": "nn.ReLU6", "hardswish": "nn.Hardswish", "sigmoid": "nn.Sigmoid",
         "swish": "nn.Silu", "tanh": "nn.Tanh", "gelu": "nn.GELU"}


def network_extras(input_rank: int) -> tuple[list[str], list[str]]:
    """(first lines of the network's forward, its further methods): none."""
    return [], []


def register(name: str, value: str) -> str:
    return f"self.add_sublayer({name}, {value})"


def _padding(n, x):
    """One int or one per dim where symmetric, else Paddle's flat [before, after, ...] list."""
    pads = n.pads(x)
    if all(b == a for b, a in pads):
        return one(tuple(b for b, _ in pads))
    return [p for pair in pads for p in pair]


def _conv(n, x, path):
    nd = len(x) - 1
    return Call(f"nn.Conv{nd}D", (
        Arg("in_channels", x[0]), Arg("out_channels", n.out_channels), Arg("kernel_size", one(ntuple(n.kernel, nd))),
        Arg("stride", one(ntuple(n.stride, nd)), True, 1), Arg("padding", _padding(n, x), True, 0),
        Arg("dilation", one(ntuple(n.dilation, nd)), True, 1), Arg("groups", n.groups, True, 1),
        Arg("bias_attr", None if n.bias else False, True, None)))


HELPERS["batch_norm"] = '''def batch_norm(bn, x, forward):
    """``bn`` on ``x`` as onespec's build runs it. In training the running variance takes the
    unbiased batch variance, as torch's does: Paddle's kernel updates a copy to
    v' = m v + (1 - m) b (b the biased batch variance); m v + (1 - m) k b, with k = n / (n - 1),
    is k v' - m (k - 1) v. In an eager eval forward without gradients, a BatchNorm whose input is
    a new tensor only it reads (``in_place``) computes x * s + t in place on it."""
    if not paddle.in_dynamic_mode():
        return forward(x)
    if not bn.training:
        grads = paddle.is_grad_enabled() and not all(
            t.stop_gradient for t in (x, bn.weight, bn.bias))
        if not bn.in_place or x.ndim != 4 or grads:
            return forward(x)
        s = _C_ops.rsqrt(_C_ops.scale(bn._variance, 1.0, bn._epsilon, True))
        s = _C_ops.multiply(s, bn.weight)
        t = _C_ops.subtract(bn.bias, _C_ops.multiply(bn._mean, s))
        return _C_ops.affine_channel_(x, s, t, "NCHW")
    count = x.size // x.shape[1]
    k, m = count / max(count - 1, 1), bn._momentum
    var = bn._variance.clone()
    y = nn.functional.batch_norm(x, bn._mean, var, bn.weight, bn.bias, training=True, momentum=m,
                                 epsilon=bn._epsilon, data_format=bn._data_format)
    with paddle.no_grad():
        bn._variance.scale_(-m * (k - 1)).add_(var, alpha=k)
    return y
'''
_BATCH_NORM = '''class {0}(nn.{0}):
    """Paddle's {0}, run as onespec's build runs it (``batch_norm``)."""

    def __init__(self, *args, in_place=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.in_place = in_place

    def forward(self, x):
        return batch_norm(self, x, super().forward)
'''
HELPERS.update({c: _BATCH_NORM.format(c) for c in ("BatchNorm1D", "BatchNorm2D", "BatchNorm3D")})


def _bn(n, x, path, fresh: bool = False):
    check_supported(n.affine, path, "batchnorm without affine parameters")
    cls = {1: "BatchNorm1D", 2: "BatchNorm1D", 3: "BatchNorm2D", 4: "BatchNorm3D"}[len(x)]
    return Call(cls, (Arg("num_features", x[0]), Arg("momentum", round(1.0 - n.momentum, 12), True, 0.9),
                      Arg("epsilon", n.eps, True, 1e-5), Arg("in_place", fresh and len(x) == 3, True, False)),
                ("batch_norm", cls))


def _pool(n, x, path):
    nd = len(x) - 1
    stride = n.kernel if n.stride is None else n.stride
    args = (Arg("kernel_size", one(ntuple(n.kernel, nd))), Arg("stride", one(ntuple(stride, nd))),
            Arg("padding", _padding(n, x), True, 0), Arg("ceil_mode", n.effective_ceil(x), True, False))
    if n.op == "avgpool":
        return Call(f"nn.AvgPool{nd}D", args + (Arg("exclusive", not n.count_include_pad, True, True),))
    return Call(f"nn.MaxPool{nd}D", args)


def _act(n, x, path):
    if n.fn == "gelu_tanh":
        return Call("nn.GELU", (Arg("approximate", True, True),))
    return Call(_ACTS[n.fn])


def _conv_transpose(n, x, path):
    return Call("nn.Conv2DTranspose", (
        Arg("in_channels", x[0]), Arg("out_channels", n.out_channels), Arg("kernel_size", one(ntuple(n.kernel, 2))),
        Arg("stride", one(ntuple(n.stride, 2)), True, 1), Arg("padding", one(ntuple(n.padding, 2)), True, 0),
        Arg("output_padding", one(ntuple(n.output_padding, 2)), True, 0), Arg("dilation", one(ntuple(n.dilation, 2)),
                                                                             True, 1),
        Arg("groups", n.groups, True, 1), Arg("bias_attr", None if n.bias else False, True, None)))


def _layernorm(n, x, path):
    check_supported(n.affine, path, "layernorm without affine parameters")
    if n.last_axis:
        return Call("nn.LayerNorm", (Arg("normalized_shape", x[-1]), Arg("epsilon", n.eps, True, 1e-5)))
    check_supported(len(x) == 3, path, "a channels-first layernorm on features")
    return Call("LayerNorm2d", (Arg("channels", x[0]), Arg("epsilon", n.eps, True, 1e-5)), ("LayerNorm2d",))


def _groupnorm(n, x, path):
    check_supported(n.affine, path, "groupnorm without affine parameters")
    return Call("GroupNorm", (Arg("num_groups", n.groups), Arg("num_channels", x[0]), Arg("epsilon", n.eps, True, 1e-5)),
                ("GroupNorm",))


def _upsample(n, x, path):
    s = ntuple(n.scale, 2)
    args = (Arg("size", [x[1] * s[0], x[2] * s[1]], True), Arg("mode", n.mode, True))
    if n.mode == "bilinear":
        args += (Arg("align_corners", n.align_corners, True), Arg("align_mode", 0, True))
    return Call("nn.Upsample", args)


def _pad(n, x, path):
    flat = [p for pair in reversed(n.pads) for p in pair]  # the last dim's (before, after) first
    return Call(f"nn.Pad{len(x) - 1}D", (Arg("padding", flat), Arg("value", n.value, True, 0.0)))


def _axis(n, x):
    return n.axis % len(x) + 1


def _view(n, x, last_axis: bool):
    return [-1] if last_axis else [-1] + [1] * (len(x) - 1)


LEAVES = {
    "conv": _conv,
    "batchnorm": _bn,
    "maxpool": _pool,
    "avgpool": _pool,
    "hardsigmoid": lambda n, x, p: Call("HardSigmoid", (Arg("slope", n.slope), Arg("offset", n.offset)),
                                        ("HardSigmoid",)),
    "act": _act,
    "global_avgpool": lambda n, x, p: Call(f"nn.AdaptiveAvgPool{len(x) - 1}D", (Arg("output_size", 1),)),
    "adaptive_avgpool": lambda n, x, p: Call("nn.AdaptiveAvgPool2D",
                                             (Arg("output_size", one(ntuple(n.output_size, 2))),)),
    "flatten": lambda n, x, p: Call("nn.Flatten"),
    "reshape": lambda n, x, p: Call("Reshape", (Arg("shape", tuple(n.shape)),), ("Reshape",)),
    "linear": lambda n, x, p: Call("nn.Linear", (Arg("in_features", x[-1]), Arg("out_features", n.out_features),
                                                 Arg("bias_attr", None if n.bias else False, True, None))),
    "dropout": lambda n, x, p: Call("nn.Dropout", (Arg("p", n.p),)),
    "identity": lambda n, x, p: Call("nn.Identity"),
    "channel_shuffle": lambda n, x, p: Call("nn.ChannelShuffle", (Arg("groups", n.groups),)),
    "conv_transpose": _conv_transpose,
    "groupnorm": _groupnorm,
    "layernorm": _layernorm,
    "upsample": _upsample,
    "prelu": lambda n, x, p: Call("PReLU", (Arg("channels", 1 if n.shared else x[0]),
                                            Arg("view", [1] if n.shared else [1, -1] + [1] * (len(x) - 1))),
                                  ("PReLU",)),
    "hardtanh": lambda n, x, p: Call("nn.Hardtanh", (Arg("min", n.min_val), Arg("max", n.max_val))),
    "softmax": lambda n, x, p: Call("nn.Softmax", (Arg("axis", _axis(n, x), True),)),
    "l2norm": lambda n, x, p: Call("L2Normalize", (Arg("axis", _axis(n, x)), Arg("eps", n.eps)), ("L2Normalize",)),
    "permute": lambda n, x, p: Call("Permute", (Arg("perm", [0] + [d + 1 for d in n.dims]),), ("Permute",)),
    "mean": lambda n, x, p: Call("Mean", (Arg("axes", [a + 1 for a in n.resolved(x)]),
                                          Arg("keepdim", n.keepdim, True, False)), ("Mean",)),
    "pad": _pad,
    "affine": lambda n, x, p: Call("Affine", (Arg("scale", n.scale), Arg("shift", n.shift)), ("Affine",)),
    "layer_scale": lambda n, x, p: Call("LayerScale", (Arg("channels", x[-1] if n.last_axis else x[0]),
                                                       Arg("view", _view(n, x, n.last_axis))), ("LayerScale",)),
    "slice": lambda n, x, p: Call("Slice", (Arg("axis", _axis(n, x)), Arg("start", n.start), Arg("stop", n.stop)),
                                  ("Slice",)),
    "pixel_shuffle": lambda n, x, p: Call("nn.PixelShuffle", (Arg("upscale_factor", n.factor),)),
}


def leaf(n, x, path: str, fresh: bool = False, new: bool = False) -> Call:
    """``n``'s layer; ``new``: its input is a new tensor only it reads (a 2d BatchNorm then
    normalizes in place in eager eval forwards, as onespec's build does)."""
    check_supported(n.op in LEAVES, path, f"op {n.op!r}")
    if n.op == "batchnorm":
        return _bn(n, x, path, new)
    return LEAVES[n.op](n, x, path)


# how a user loads a port (the README onespec port writes)
LOAD_EXAMPLE = ("import paddle\nfrom model import build\n\nnet = build()\n"
              "missing, unexpected = net.set_state_dict(paddle.load(\"weights.pdparams\"))\n"
              "assert not missing and not unexpected\nnet.eval()")

WEIGHTS_EXT = "pdparams"
# the generated side of ``onespec.codegen.verify``: set_state_dict with nothing missing or
# unexpected, eager output, paddle.jit.to_static's
RUN = '''import paddle
net = mod.build()
missing, unexpected = net.set_state_dict(paddle.load(WEIGHTS))
if missing or unexpected:
    raise SystemExit(f"set_state_dict: missing {missing}, unexpected {unexpected}")
net.eval()
x = paddle.to_tensor(np.load(X))
with paddle.no_grad():
    save(OUT + ".eager.npz", net(x), lambda t: t.numpy())
    static = paddle.jit.to_static(net, full_graph=True)
    save(OUT + ".compiled.npz", static(x), lambda t: t.numpy())
json.dump({"loader": "set_state_dict (nothing missing or unexpected)", "compiler": "paddle.jit.to_static",
           "framework": "paddle " + paddle.__version__}, open(OUT + ".json", "w"))
'''
