"""Source text of each op for generated torch files (``onespec.codegen``): the classes and
arguments of ``emit.py``, written out. Importing this module imports no framework."""
from __future__ import annotations

from ...codegen.layout import Arg, Call, check_supported, one, symmetric_padding
from ..tree import ntuple

FRAMEWORK = "torch"
BASE = "nn.Module"
FORWARD = "forward"
SEQUENTIAL = "Sequential"
CAT = "torch.cat({}, 1)"
CAT_AT = "torch.cat({}, {})"
VARARGS = "{}"
GLOBALS = ("torch", "nn", "OrderedDict")
MAXIMUM = "torch.maximum({}, {})"
SPLIT = "torch.split({}, {}, 1)"
LOADER = "``net.load_state_dict(torch.load(path), strict=True)``"
RESERVED = frozenset({"Sequential", "HardSigmoid", "Reshape", "Module", "Network", "LayerNorm2d", "L2Normalize",
                      "Permute", "Mean", "Affine", "LayerScale", "Slice", "ChannelShuffle"})
IMPORTS = "from collections import OrderedDict\n\nimport torch\nfrom torch import nn\n"
# (ops it concerns, what is translated): a file states those of the ops its model uses
CONVENTIONS = [
    (('batchnorm',), "BatchNorm momentum 0.1 is the weight of the new batch statistic (torch's own convention)."),
    (('conv', 'maxpool', 'avgpool'), "Padding is explicit and symmetric on every conv and pool."),
    (('hardsigmoid',), "hardsigmoid is clamp(slope * x + offset, 0, 1); torch's nn.Hardsigmoid where slope is "
     "1/6."),
]
DOCS = {"parallel": "Branches on the same input, merged.", "scale": "x times a gate computed from x.",
        "shift_max": "Dynamic Shift-Max (MicroNet).", "seq": "Layers applied in order.",
        "graph": "Layers wired by name."}

HELPERS = {
    "Sequential": '''class Sequential(nn.Sequential):
    """Layers applied in order, registered under their names."""

    def __init__(self, *named):
        super().__init__(OrderedDict(named))
''',
    "HardSigmoid": '''class HardSigmoid(nn.Module):
    """clamp(slope * x + offset, 0, 1)."""

    def __init__(self, slope, offset):
        super().__init__()
        self.slope, self.offset = slope, offset

    def forward(self, x):
        return (x * self.slope + self.offset).clamp(0.0, 1.0)
''',
    "Reshape": '''class Reshape(nn.Module):
    def __init__(self, shape):
        super().__init__()
        self.shape = tuple(shape)

    def forward(self, x):
        return x.reshape((-1,) + self.shape)
''',
    "ChannelShuffle": '''class ChannelShuffle(nn.Module):
    """(groups, C / groups) channels -> (C / groups, groups)."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return x.unflatten(1, (self.groups, -1)).transpose(1, 2).flatten(1, 2)
''',
    "shift_max": '''def shift_max(x, coefficients, shape, groups, fusions, scale, init_a, init_b):
    """max_k(a_k * x + b_k * shift(x)); shift rolls the channels, seen as (groups, C / groups),
    by one along both axes."""
    c = shape[0]
    y = (coefficients.reshape(-1, 2 * fusions * c, 1, 1) - 0.5) * scale
    s = x.unflatten(1, (groups, c // groups))
    if groups > 1:
        s = torch.cat([s[:, 1:], s[:, :1]], 1)
    if c // groups > 1:
        s = torch.cat([s[:, :, 1:], s[:, :, :1]], 2)
    x2 = s.flatten(1, 2)
    out = x * (y[:, :c] + init_a[0]) + x2 * (y[:, c:2 * c] + init_b[0])
    if fusions == 2:
        second = x * (y[:, 2 * c:3 * c] + init_a[1]) + x2 * (y[:, 3 * c:] + init_b[1])
        out = torch.maximum(out, second)
    return out
''',
}

HELPERS.update({
    "LayerNorm2d": '''class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels at every position (channels first)."""

    def forward(self, x):
        return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
''',
    "L2Normalize": '''class L2Normalize(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x):
        return nn.functional.normalize(x, dim=self.dim, eps=self.eps)
''',
    "Permute": '''class Permute(nn.Module):
    def __init__(self, dims):
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x):
        return x.permute(self.dims)
''',
    "Mean": '''class Mean(nn.Module):
    def __init__(self, dims, keepdim=False):
        super().__init__()
        self.dims, self.keepdim = list(dims), keepdim

    def forward(self, x):
        return x.mean(self.dims, keepdim=self.keepdim)
''',
    "Affine": '''class Affine(nn.Module):
    """x * scale + shift, constants."""

    def __init__(self, scale, shift):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return x * self.scale + self.shift
''',
    "LayerScale": '''class LayerScale(nn.Module):
    """x * gamma, gamma broadcast as ``view`` (over the channels or the last dim)."""

    def __init__(self, channels, view):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.view = tuple(view)

    def forward(self, x):
        return x * self.gamma.view(self.view)
''',
    "Slice": '''class Slice(nn.Module):
    def __init__(self, dim, start, stop):
        super().__init__()
        self.dim, self.start, self.length = dim, start, stop - start

    def forward(self, x):
        return x.narrow(self.dim, self.start, self.length)
''',
})

_ACTS = {"relu": "nn.ReLU", "relu6": "nn.ReLU6", "hardswish": "nn.Hardswish", "sigmoid": "nn.Sigmoid",
         "swish": "nn.SiLU", "tanh": "nn.Tanh", "gelu": "nn.GELU"}


def network_extras(input_rank: int) -> tuple[list[str], list[str]]:
    """(first lines of the network's forward, its further methods): an image network's eval
    forwards in channels-last, with its conv weights moved there on ``eval()``, as onespec's
    build runs them (oneDNN's NHWC kernels, without reordering the weights at each call);
    training stays in torch's default format (its channels-last BatchNorm takes the batch
    variance in one pass, which loses digits)."""
    if input_rank != 3:
        return [], []
    return ([
        "        if not self.training:",
        "            x = x.contiguous(memory_format=torch.channels_last)",
    ], [
        "",
        "    def train(self, mode=True):",
        '        """Conv weights in channels-last for eval forwards, contiguous for training."""',
        "        super().train(mode)",
        "        fmt = torch.contiguous_format if mode else torch.channels_last",
        "        with torch.no_grad():",
        "            for p in self.parameters():",
        "                if p.dim() == 4:  # a copy: a 1x1 weight counts as contiguous in both formats",
        "                    p.data = torch.empty_like(p.data, memory_format=fmt).copy_(p.data)",
        "        return self",
    ])


def register(name: str, value: str) -> str:
    return f"self.add_module({name}, {value})"


def _conv(n, x, path):
    nd = len(x) - 1
    return Call(f"nn.Conv{nd}d", (
        Arg("in_channels", x[0]), Arg("out_channels", n.out_channels), Arg("kernel_size", one(ntuple(n.kernel, nd))),
        Arg("stride", one(ntuple(n.stride, nd)), True, 1), Arg("padding", symmetric_padding(n, x, path), True, 0),
        Arg("dilation", one(ntuple(n.dilation, nd)), True, 1), Arg("groups", n.groups, True, 1),
        Arg("bias", n.bias, True, True)))


def _bn(n, x, path):
    check_supported(n.affine, path, "batchnorm without affine parameters")
    cls = {1: "nn.BatchNorm1d", 2: "nn.BatchNorm1d", 3: "nn.BatchNorm2d", 4: "nn.BatchNorm3d"}[len(x)]
    return Call(cls, (Arg("num_features", x[0]), Arg("eps", n.eps, True, 1e-5), Arg("momentum", n.momentum, True, 0.1)))


def _pool(n, x, path):
    nd = len(x) - 1
    stride = n.kernel if n.stride is None else n.stride
    args = (Arg("kernel_size", one(ntuple(n.kernel, nd))), Arg("stride", one(ntuple(stride, nd))),
            Arg("padding", symmetric_padding(n, x, path), True, 0), Arg("ceil_mode", n.ceil_mode, True, False))
    if n.op == "avgpool":
        return Call(f"nn.AvgPool{nd}d", args + (Arg("count_include_pad", n.count_include_pad, True, True),))
    return Call(f"nn.MaxPool{nd}d", args)


def _hardsigmoid(n, x, path):
    if abs(n.slope - 1 / 6) < 1e-12 and n.offset == 0.5:
        return Call("nn.Hardsigmoid")
    return Call("HardSigmoid", (Arg("slope", n.slope), Arg("offset", n.offset)), ("HardSigmoid",))


_INPLACE = ("relu", "relu6", "hardswish", "swish")  # nn modules with an ``inplace`` flag


def _act(n, x, path):
    if n.fn == "gelu_tanh":
        return Call("nn.GELU", (Arg("approximate", "tanh", True),))
    return Call(_ACTS[n.fn])


def _conv_transpose(n, x, path):
    return Call("nn.ConvTranspose2d", (
        Arg("in_channels", x[0]), Arg("out_channels", n.out_channels), Arg("kernel_size", one(ntuple(n.kernel, 2))),
        Arg("stride", one(ntuple(n.stride, 2)), True, 1), Arg("padding", one(ntuple(n.padding, 2)), True, 0),
        Arg("output_padding", one(ntuple(n.output_padding, 2)), True, 0), Arg("groups", n.groups, True, 1),
        Arg("bias", n.bias, True, True), Arg("dilation", one(ntuple(n.dilation, 2)), True, 1)))


def _layernorm(n, x, path):
    check_supported(n.affine, path, "layernorm without affine parameters")
    if n.last_axis:
        return Call("nn.LayerNorm", (Arg("normalized_shape", x[-1]), Arg("eps", n.eps, True, 1e-5)))
    check_supported(len(x) == 3, path, "a channels-first layernorm on features")
    return Call("LayerNorm2d", (Arg("channels", x[0]), Arg("eps", n.eps, True, 1e-5)), ("LayerNorm2d",))


def _upsample(n, x, path):
    args = (Arg("scale_factor", tuple(float(v) for v in ntuple(n.scale, 2)), True), Arg("mode", n.mode, True))
    if n.mode == "bilinear":
        args += (Arg("align_corners", n.align_corners, True),)
    return Call("nn.Upsample", args)


def _pad(n, x, path):
    flat = tuple(p for pair in reversed(n.pads) for p in pair)  # the last dim's (before, after) first
    if n.value == 0.0 and len(x) == 3:
        return Call("nn.ZeroPad2d", (Arg("padding", flat),))
    return Call(f"nn.ConstantPad{len(x) - 1}d", (Arg("padding", flat), Arg("value", n.value)))


def _groupnorm(n, x, path):
    check_supported(n.affine, path, "groupnorm without affine parameters")
    return Call("nn.GroupNorm", (Arg("num_groups", n.groups), Arg("num_channels", x[0]), Arg("eps", n.eps, True, 1e-5)))


def _dim(n, x):
    return n.axis % len(x) + 1


LEAVES = {
    "conv": _conv,
    "batchnorm": _bn,
    "maxpool": _pool,
    "avgpool": _pool,
    "hardsigmoid": _hardsigmoid,
    "act": _act,
    "global_avgpool": lambda n, x, p: Call(f"nn.AdaptiveAvgPool{len(x) - 1}d", (Arg("output_size", 1),)),
    "adaptive_avgpool": lambda n, x, p: Call("nn.AdaptiveAvgPool2d",
                                             (Arg("output_size", one(ntuple(n.output_size, 2))),)),
    "flatten": lambda n, x, p: Call("nn.Flatten"),
    "reshape": lambda n, x, p: Call("Reshape", (Arg("shape", tuple(n.shape)),), ("Reshape",)),
    "linear": lambda n, x, p: Call("nn.Linear", (Arg("in_features", x[-1]), Arg("out_features", n.out_features),
                                                 Arg("bias", n.bias, True, True))),
    "dropout": lambda n, x, p: Call("nn.Dropout", (Arg("p", n.p),)),
    "identity": lambda n, x, p: Call("nn.Identity"),
    "channel_shuffle": lambda n, x, p: Call("ChannelShuffle", (Arg("groups", n.groups),), ("ChannelShuffle",)),
    "conv_transpose": _conv_transpose,
    "groupnorm": _groupnorm,
    "layernorm": _layernorm,
    "upsample": _upsample,
    "prelu": lambda n, x, p: Call("nn.PReLU", (Arg("num_parameters", 1 if n.shared else x[0], True, 1),)),
    "hardtanh": lambda n, x, p: Call("nn.Hardtanh", (Arg("min_val", n.min_val), Arg("max_val", n.max_val))),
    "softmax": lambda n, x, p: Call("nn.Softmax", (Arg("dim", _dim(n, x), True),)),
    "l2norm": lambda n, x, p: Call("L2Normalize", (Arg("dim", _dim(n, x)), Arg("eps", n.eps)), ("L2Normalize",)),
    "permute": lambda n, x, p: Call("Permute", (Arg("dims", (0, *(d + 1 for d in n.dims))),), ("Permute",)),
    "mean": lambda n, x, p: Call("Mean", (Arg("dims", tuple(a + 1 for a in n.resolved(x))),
                                          Arg("keepdim", n.keepdim, True, False)), ("Mean",)),
    "pad": _pad,
    "affine": lambda n, x, p: Call("Affine", (Arg("scale", n.scale), Arg("shift", n.shift)), ("Affine",)),
    "layer_scale": lambda n, x, p: Call("LayerScale", (
        Arg("channels", x[-1] if n.last_axis else x[0]),
        Arg("view", (-1,) if n.last_axis else (-1,) + (1,) * (len(x) - 1))), ("LayerScale",)),
    "slice": lambda n, x, p: Call("Slice", (Arg("dim", _dim(n, x)), Arg("start", n.start), Arg("stop", n.stop)),
                                  ("Slice",)),
    "pixel_shuffle": lambda n, x, p: Call("nn.PixelShuffle", (Arg("upscale_factor", n.factor),)),
}


def leaf(n, x, path: str, fresh: bool = False, new: bool = False) -> Call:
    """``n``'s layer; ``fresh``: its input is a new tensor only it reads, whose maker keeps no
    output for its backward (an activation then runs in place, as torchvision's and onespec's
    build do)."""
    check_supported(n.op in LEAVES, path, f"op {n.op!r}")
    if n.op == "act" and n.fn in _INPLACE:
        return Call(_ACTS[n.fn], (Arg("inplace", fresh, True, False),))
    return LEAVES[n.op](n, x, path)

# how a user loads a port (the README onespec port writes)
LOAD_EXAMPLE = ("import torch\nfrom model import build\n\nnet = build()\n"
             "net.load_state_dict(torch.load(\"weights.pth\"), strict=True)\nnet.eval()")

WEIGHTS_EXT = "pth"
# the generated side of ``onespec.codegen.verify``: strict load, eager output, torch.export's
RUN = '''import torch
net = mod.build()
net.load_state_dict(torch.load(WEIGHTS, weights_only=True), strict=True)
net.eval()
x = torch.from_numpy(np.load(X))
with torch.no_grad():
    save(OUT + ".eager.npz", net(x), lambda t: t.numpy())
    program = torch.export.export(net, (x,))
    save(OUT + ".compiled.npz", program.module()(x), lambda t: t.numpy())
json.dump({"loader": "load_state_dict(strict=True)", "compiler": "torch.export",
           "framework": "torch " + torch.__version__}, open(OUT + ".json", "w"))
'''
