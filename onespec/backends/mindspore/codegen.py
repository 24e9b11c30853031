"""Source text of each op for generated MindSpore files (``onespec.codegen``): the classes and
arguments of ``emit.py``, written out (2d convs as the emitter's: im2col products on CPU, where
MindSpore's conv kernel is slow; pools as ``nn`` pools). Importing this module imports no framework."""
from __future__ import annotations

from ...codegen.layout import Arg, Call, check_supported, one
from ..tree import ntuple

FRAMEWORK = "mindspore"
BASE = "nn.Cell"
FORWARD = "construct"
SEQUENTIAL = "Sequential"
CAT = "ops.cat({}, 1)"
CAT_AT = "ops.cat({}, {})"
VARARGS = "{}"
GLOBALS = ("ms", "mindspore", "nn", "ops", "np")
MAXIMUM = "ops.maximum({}, {})"
SPLIT = "ops.split({}, {}, 1)"
LOADER = ("``mindspore.load_param_into_net(net, mindspore.load_checkpoint(path), strict_load=True)`` "
          "(nothing left unloaded)")
RESERVED = frozenset({"Sequential", "HardSigmoid", "Reshape", "Cell", "Network", "ChannelShuffle", "GlobalAvgPool",
                      "BatchNorm3d", "LayerNorm2d", "L2Normalize", "Permute", "Mean", "Affine", "LayerScale", "Slice",
                      "PReLU", "HardTanh", "Pad", "Upsample", "PixelShuffle", "Conv2d"})
IMPORTS = "import mindspore as ms\nfrom mindspore import nn, ops\n"
# (ops it concerns, what is translated): a file states those of the ops its model uses
CONVENTIONS = [
    (('batchnorm',), "BatchNorm momentum is 1 - m (MindSpore weights the running value: 0.9 for torch's 0.1)."),
    (('conv', 'maxpool', 'avgpool'), "Convs and pools take pad_mode='pad' with the explicit padding (MindSpore's "
     "default 'same' would change shapes)."),
    (('hardsigmoid',), "hardsigmoid is clamp(slope * x + offset, 0, 1) with the spec's slope (not MindSpore's "
     "HSigmoid)."),
    (('batchnorm3d',), "3d BatchNorm runs as 2d BatchNorm over folded spatial dims (MindSpore's BatchNorm3d nests "
     "a cell and so renames the parameters)."),
    ((), "Forwards iterate fixed tuples of cells, so the network compiles in GRAPH_MODE."),
]
DOCS = {"parallel": "Branches on the same input, merged.", "scale": "x times a gate computed from x.",
        "shift_max": "Dynamic Shift-Max (MicroNet).", "seq": "Layers applied in order.",
        "graph": "Layers wired by name."}

HELPERS = {
    "Sequential": '''class Sequential(nn.Cell):
    """Layers applied in order, registered under their names."""

    def __init__(self, *named):
        super().__init__()
        for name, cell in named:
            setattr(self, name, cell)
        self._children_t = tuple(cell for _, cell in named)  # a name no spec node takes

    def construct(self, x):
        for cell in self._children_t:
            x = cell(x)
        return x
''',
    "HardSigmoid": '''class HardSigmoid(nn.Cell):
    """clamp(slope * x + offset, 0, 1)."""

    def __init__(self, slope, offset):
        super().__init__()
        self.slope, self.offset = slope, offset

    def construct(self, x):
        return ops.clamp(x * self.slope + self.offset, 0.0, 1.0)
''',
    "Reshape": '''class Reshape(nn.Cell):
    def __init__(self, shape):
        super().__init__()
        self.shape = (-1,) + tuple(shape)

    def construct(self, x):
        return ops.reshape(x, self.shape)
''',
    "GlobalAvgPool": '''class GlobalAvgPool(nn.Cell):
    """Mean over the spatial dims, kept as size 1."""

    def __init__(self, nd):
        super().__init__()
        self.axes = tuple(range(2, 2 + nd))

    def construct(self, x):
        return ops.mean(x, self.axes, True)
''',
    "ChannelShuffle": '''class ChannelShuffle(nn.Cell):
    """(groups, C / groups) channels -> (C / groups, groups); shape is one sample's."""

    def __init__(self, groups, shape):
        super().__init__()
        c, rest = shape[0], tuple(shape[1:])
        self.split_shape = (-1, groups, c // groups) + rest
        self.merged_shape = (-1, c) + rest
        self.perm = (0, 2, 1) + tuple(range(3, 3 + len(rest)))

    def construct(self, x):
        x = ops.transpose(ops.reshape(x, self.split_shape), self.perm)
        return ops.reshape(x, self.merged_shape)
''',
    "BatchNorm3d": '''class BatchNorm3d(nn.BatchNorm2d):
    """3d BN as 2d BN over (N, C, D*H, W): per-channel statistics either way."""

    def __init__(self, shape, **kw):
        super().__init__(shape[0], **kw)
        c, d, h, w = shape
        self.folded, self.unfolded = (-1, c, d * h, w), (-1, c, d, h, w)

    def construct(self, x):
        y = nn.BatchNorm2d.construct(self, ops.reshape(x, self.folded))
        return ops.reshape(y, self.unfolded)
''',
    "shift_max": '''def shift_max(x, coefficients, shape, groups, fusions, scale, init_a, init_b):
    """max_k(a_k * x + b_k * shift(x)); shift rolls the channels, seen as (groups, C / groups),
    by one along both axes."""
    c, hw = shape[0], tuple(shape[1:])
    y = (ops.reshape(coefficients, (-1, 2 * fusions * c, 1, 1)) - 0.5) * scale
    s = ops.reshape(x, (-1, groups, c // groups) + hw)
    if groups > 1:
        s = ops.cat((s[:, 1:], s[:, :1]), 1)
    if c // groups > 1:
        s = ops.cat((s[:, :, 1:], s[:, :, :1]), 2)
    x2 = ops.reshape(s, (-1, c) + hw)
    out = x * (y[:, :c] + init_a[0]) + x2 * (y[:, c:2 * c] + init_b[0])
    if fusions == 2:
        second = x * (y[:, 2 * c:3 * c] + init_a[1]) + x2 * (y[:, 3 * c:] + init_b[1])
        out = ops.maximum(out, second)
    return out
''',
}

HELPERS.update({
    "LayerNorm2d": '''class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels at every position (channels first)."""

    def __init__(self, channels, eps):
        super().__init__((channels,), -1, -1, epsilon=eps)

    def construct(self, x):
        return ops.transpose(super().construct(ops.transpose(x, (0, 2, 3, 1))), (0, 3, 1, 2))
''',
    "PReLU": '''class PReLU(nn.Cell):
    """max(0, x) + a * min(0, x), a per channel or shared (``view``), named ``weight``."""

    def __init__(self, channels, view):
        super().__init__()
        self.weight = ms.Parameter(ms.Tensor(np.full((channels,), 0.25, np.float32)), name="weight")
        self.view = tuple(view)

    def construct(self, x):
        return ops.relu(x) + self.weight.reshape(self.view) * ops.minimum(x, 0.0)
''',
    "HardTanh": '''class HardTanh(nn.Cell):
    def __init__(self, lo, hi):
        super().__init__()
        self.lo, self.hi = lo, hi

    def construct(self, x):
        return ops.clamp(x, self.lo, self.hi)
''',
    "L2Normalize": '''class L2Normalize(nn.Cell):
    """x / max(||x||, eps) along ``axis``."""

    def __init__(self, axis, eps):
        super().__init__()
        self.axis, self.eps = axis, eps

    def construct(self, x):
        return x / ops.clamp(ops.sqrt((x * x).sum(self.axis, keepdims=True)), min=self.eps)
''',
    "Permute": '''class Permute(nn.Cell):
    def __init__(self, perm):
        super().__init__()
        self.perm = tuple(perm)

    def construct(self, x):
        return ops.transpose(x, self.perm)
''',
    "Mean": '''class Mean(nn.Cell):
    def __init__(self, axes, keepdim=False):
        super().__init__()
        self.axes, self.keepdim = tuple(axes), keepdim

    def construct(self, x):
        return ops.mean(x, self.axes, self.keepdim)
''',
    "Pad": '''class Pad(nn.Cell):
    """Constant padding; ``pads`` holds the last dim's (before, after) first."""

    def __init__(self, pads, value=0.0):
        super().__init__()
        self.pads, self.value = tuple(pads), value

    def construct(self, x):
        return ops.pad(x, self.pads, mode="constant", value=self.value)
''',
    "Affine": '''class Affine(nn.Cell):
    """x * scale + shift, constants."""

    def __init__(self, scale, shift):
        super().__init__()
        self.scale, self.shift = scale, shift

    def construct(self, x):
        return x * self.scale + self.shift
''',
    "LayerScale": '''class LayerScale(nn.Cell):
    """x * gamma, gamma broadcast as ``view`` (over the channels or the last dim)."""

    def __init__(self, channels, view):
        super().__init__()
        self.gamma = ms.Parameter(ms.Tensor(np.ones((channels,), np.float32)), name="gamma")
        self.view = tuple(view)

    def construct(self, x):
        return x * self.gamma.reshape(self.view)
''',
    "Slice": '''class Slice(nn.Cell):
    def __init__(self, axis, start, stop):
        super().__init__()
        self.axis, self.start, self.length = axis, start, stop - start

    def construct(self, x):
        return ops.narrow(x, self.axis, self.start, self.length)
''',
    "PixelShuffle": '''class PixelShuffle(nn.Cell):
    def __init__(self, factor):
        super().__init__()
        self.factor = factor

    def construct(self, x):
        return ops.pixel_shuffle(x, self.factor)
''',
    "Upsample": '''class Upsample(nn.Cell):
    """Resize to the fixed output ``size`` (the input's times the scale)."""

    def __init__(self, size, mode, align_corners=None):
        super().__init__()
        self.size, self.mode, self.align_corners = tuple(size), mode, align_corners

    def construct(self, x):
        return ops.interpolate(x, size=self.size, mode=self.mode, align_corners=self.align_corners)
''',
})

_ACTS = {"relu": "nn.ReLU", "relu6": "nn.ReLU6", "hardswish": "nn.HSwish", "sigmoid": "nn.Sigmoid",
         "swish": "nn.SiLU", "tanh": "nn.Tanh"}


def network_extras(input_rank: int) -> tuple[list[str], list[str]]:
    """(first lines of the network's forward, its further methods): none."""
    return [], []


def register(name: str, value: str) -> str:
    return f"setattr(self, {name}, {value})"


HELPERS["Conv2d"] = '''def _pair(v):
    return (v, v) if isinstance(v, int) else tuple(v)[-2:]


class Conv2d(nn.Conv2d):
    """nn.Conv2d (the same parameters); on CPU a k x k conv (k > 1) runs as its im2col matrix
    product (ops.unfold, then one ops.matmul per group): the same function, an order of magnitude
    faster than MindSpore's CPU conv kernel, but for a depthwise conv on a small map (under 28 x 28
    outputs and 56 x 56 positions in the batch), where many tiny products cost more."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.kernel, self.dil = _pair(self.kernel_size), _pair(self.dilation)
        self.step = _pair(self.stride)
        t, b, l, r = (self.padding,) * 4 if isinstance(self.padding, int) else self.padding
        self.symmetric = t == b and l == r
        self.pad2 = (t, l) if self.symmetric else (0, 0)
        self.pad4, self.pad_hw = (l, r, t, b), (t + b, l + r)
        cpu = ms.get_context("device_target") == "CPU"
        self.im2col = cpu and self.kernel[0] * self.kernel[1] > 1
        self.depthwise = self.in_channels == self.group

    def construct(self, x):
        n, c, h, w = x.shape
        (kh, kw), (dh, dw), (sh, sw), (ph, pw) = self.kernel, self.dil, self.step, self.pad_hw
        ho = (h + ph - dh * (kh - 1) - 1) // sh + 1
        wo = (w + pw - dw * (kw - 1) - 1) // sw + 1
        if not self.im2col or self.depthwise and ho * wo < 28 * 28 and n * ho * wo < 56 * 56:
            return super().construct(x)
        if not self.symmetric:
            x = ops.pad(x, self.pad4)
        g = self.group
        cols = ops.unfold(x, kernel_size=self.kernel, dilation=self.dil, padding=self.pad2,
                          stride=self.step)
        cols = cols.reshape(n, g, c // g * kh * kw, ho * wo)
        y = ops.matmul(self.weight.reshape(g, self.out_channels // g, c // g * kh * kw), cols)
        y = y.reshape(n, self.out_channels, ho, wo)
        if self.has_bias:
            y = ops.bias_add(y, self.bias)
        return y
'''


def _conv(n, x, path):
    nd = len(x) - 1
    pads = n.pads(x)
    flat = tuple(p for pair in pads for p in pair)
    return Call("Conv2d" if nd == 2 else "nn.Conv3d", (
        Arg("in_channels", x[0]), Arg("out_channels", n.out_channels), Arg("kernel_size", one(ntuple(n.kernel, nd))),
        Arg("stride", one(ntuple(n.stride, nd)), True, 1), Arg("pad_mode", "pad", True),
        Arg("padding", one(flat), True), Arg("dilation", one(ntuple(n.dilation, nd)), True, 1),
        Arg("group", n.groups, True, 1), Arg("has_bias", n.bias, True)), ("Conv2d",) if nd == 2 else ())


def _bn(n, x, path):
    check_supported(n.affine, path, "batchnorm without affine parameters")
    kw = (Arg("eps", n.eps, True, 1e-5), Arg("momentum", round(1.0 - n.momentum, 12), True, 0.9))
    if len(x) == 4:
        return Call("BatchNorm3d", (Arg("shape", tuple(x)),) + kw, ("BatchNorm3d",))
    cls = {1: "nn.BatchNorm1d", 2: "nn.BatchNorm1d", 3: "nn.BatchNorm2d"}[len(x)]
    return Call(cls, (Arg("num_features", x[0]),) + kw)


def _pool(n, x, path):
    nd = len(x) - 1
    stride = n.kernel if n.stride is None else n.stride
    check_supported(n.padding != "same", path, "a pool with padding 'same'")
    args = (Arg("kernel_size", one(ntuple(n.kernel, nd)), True), Arg("stride", one(ntuple(stride, nd)), True),
            Arg("pad_mode", "pad", True), Arg("padding", one(ntuple(n.padding, nd)), True, 0),
            Arg("ceil_mode", n.ceil_mode, True, False))
    if n.op == "avgpool":
        return Call(f"nn.AvgPool{nd}d", args + (Arg("count_include_pad", n.count_include_pad, True, True),))
    return Call(f"nn.MaxPool{nd}d", args)


def _act(n, x, path):
    if n.fn in ("gelu", "gelu_tanh"):  # MindSpore's default is the tanh approximation
        return Call("nn.GELU", (Arg("approximate", n.fn == "gelu_tanh", True),))
    return Call(_ACTS[n.fn])


def _conv_transpose(n, x, path):
    return Call("nn.Conv2dTranspose", (
        Arg("in_channels", x[0]), Arg("out_channels", n.out_channels), Arg("kernel_size", one(ntuple(n.kernel, 2))),
        Arg("stride", one(ntuple(n.stride, 2)), True, 1), Arg("pad_mode", "pad", True),
        Arg("padding", one(tuple(p for p in ntuple(n.padding, 2) for _ in (0, 1))), True),
        Arg("output_padding", one(ntuple(n.output_padding, 2)), True, 0),
        Arg("dilation", one(ntuple(n.dilation, 2)), True, 1), Arg("group", n.groups, True, 1),
        Arg("has_bias", n.bias, True)))


def _layernorm(n, x, path):
    check_supported(n.affine, path, "layernorm without affine parameters")
    if n.last_axis:  # MindSpore's default eps is 1e-7: always passed
        return Call("nn.LayerNorm", (Arg("normalized_shape", (x[-1],)), Arg("begin_norm_axis", -1),
                                     Arg("begin_params_axis", -1), Arg("epsilon", n.eps, True)))
    check_supported(len(x) == 3, path, "a channels-first layernorm on features")
    return Call("LayerNorm2d", (Arg("channels", x[0]), Arg("eps", n.eps)), ("LayerNorm2d",))


def _groupnorm(n, x, path):
    check_supported(n.affine, path, "groupnorm without affine parameters")
    return Call("nn.GroupNorm", (Arg("num_groups", n.groups), Arg("num_channels", x[0]), Arg("eps", n.eps, True, 1e-5)))


def _upsample(n, x, path):
    s = ntuple(n.scale, 2)
    args = (Arg("size", (x[1] * s[0], x[2] * s[1])), Arg("mode", n.mode))
    if n.mode == "bilinear":
        args += (Arg("align_corners", n.align_corners),)
    return Call("Upsample", args, ("Upsample",))


def _axis(n, x):
    return n.axis % len(x) + 1


LEAVES = {
    "conv": _conv,
    "batchnorm": _bn,
    "maxpool": _pool,
    "avgpool": _pool,
    "hardsigmoid": lambda n, x, p: Call("HardSigmoid", (Arg("slope", n.slope), Arg("offset", n.offset)),
                                        ("HardSigmoid",)),
    "act": _act,
    "global_avgpool": lambda n, x, p: Call("GlobalAvgPool", (Arg("nd", len(x) - 1),), ("GlobalAvgPool",)),
    "adaptive_avgpool": lambda n, x, p: Call("nn.AdaptiveAvgPool2d",
                                             (Arg("output_size", one(ntuple(n.output_size, 2))),)),
    "flatten": lambda n, x, p: Call("nn.Flatten"),
    "reshape": lambda n, x, p: Call("Reshape", (Arg("shape", tuple(n.shape)),), ("Reshape",)),
    "linear": lambda n, x, p: Call("nn.Dense", (Arg("in_channels", x[-1]), Arg("out_channels", n.out_features),
                                                Arg("has_bias", n.bias, True, True))),
    "dropout": lambda n, x, p: Call("nn.Dropout", (Arg("p", n.p, True),)),
    "identity": lambda n, x, p: Call("nn.Identity"),
    "channel_shuffle": lambda n, x, p: Call("ChannelShuffle", (Arg("groups", n.groups), Arg("shape", tuple(x))),
                                            ("ChannelShuffle",)),
    "conv_transpose": _conv_transpose,
    "groupnorm": _groupnorm,
    "layernorm": _layernorm,
    "upsample": _upsample,
    "prelu": lambda n, x, p: Call("PReLU", (Arg("channels", 1 if n.shared else x[0]),
                                            Arg("view", (1,) if n.shared else (1, -1) + (1,) * (len(x) - 1))),
                                  ("PReLU",)),
    "hardtanh": lambda n, x, p: Call("HardTanh", (Arg("lo", n.min_val), Arg("hi", n.max_val)), ("HardTanh",)),
    "softmax": lambda n, x, p: Call("nn.Softmax", (Arg("axis", _axis(n, x), True),)),
    "l2norm": lambda n, x, p: Call("L2Normalize", (Arg("axis", _axis(n, x)), Arg("eps", n.eps)), ("L2Normalize",)),
    "permute": lambda n, x, p: Call("Permute", (Arg("perm", (0,) + tuple(d + 1 for d in n.dims)),), ("Permute",)),
    "mean": lambda n, x, p: Call("Mean", (Arg("axes", tuple(a + 1 for a in n.resolved(x))),
                                          Arg("keepdim", n.keepdim, True, False)), ("Mean",)),
    "pad": lambda n, x, p: Call("Pad", (Arg("pads", tuple(v for pair in reversed(n.pads) for v in pair)),
                                        Arg("value", n.value, True, 0.0)), ("Pad",)),
    "affine": lambda n, x, p: Call("Affine", (Arg("scale", n.scale), Arg("shift", n.shift)), ("Affine",)),
    "layer_scale": lambda n, x, p: Call("LayerScale", (
        Arg("channels", x[-1] if n.last_axis else x[0]),
        Arg("view", (-1,) if n.last_axis else (-1,) + (1,) * (len(x) - 1))), ("LayerScale",)),
    "slice": lambda n, x, p: Call("Slice", (Arg("axis", _axis(n, x)), Arg("start", n.start), Arg("stop", n.stop)),
                                  ("Slice",)),
    "pixel_shuffle": lambda n, x, p: Call("PixelShuffle", (Arg("factor", n.factor),), ("PixelShuffle",)),
}


def leaf(n, x, path: str, fresh: bool = False, new: bool = False) -> Call:
    """``n``'s layer (MindSpore's graphs run nothing in place: ``fresh`` and ``new`` unused)."""
    check_supported(n.op in LEAVES, path, f"op {n.op!r}")
    return LEAVES[n.op](n, x, path)


# how a user loads a port (the README onespec port writes)
LOAD_EXAMPLE = ("import mindspore as ms\nfrom model import build\n\nnet = build()\n"
                 "left, unused = ms.load_param_into_net(net, ms.load_checkpoint(\"weights.ckpt\"), "
                 "strict_load=True)\nassert not left and not unused\nnet.set_train(False)")

WEIGHTS_EXT = "ckpt"
# the generated side of ``onespec.codegen.verify``: load_param_into_net(strict_load=True) with
# nothing left over, PYNATIVE output, GRAPH_MODE's
RUN = '''import mindspore as ms
ms.set_context(mode=ms.PYNATIVE_MODE)
net = mod.build()
left, unused = ms.load_param_into_net(net, ms.load_checkpoint(WEIGHTS), strict_load=True)
if left or unused:
    raise SystemExit(f"load_param_into_net: not loaded {left}, unused {unused}")
net.set_train(False)
x = ms.Tensor(np.load(X))
save(OUT + ".eager.npz", net(x), lambda t: t.asnumpy())
ms.set_context(mode=ms.GRAPH_MODE)
save(OUT + ".compiled.npz", net(x), lambda t: t.asnumpy())
json.dump({"loader": "load_param_into_net(strict_load=True)", "compiler": "GRAPH_MODE",
           "framework": "mindspore " + ms.__version__}, open(OUT + ".json", "w"))
'''
