"""Spec -> ``paddle.nn.Layer``. The only place Paddle conventions are applied:
- BN momentum is ``1 - m`` (Paddle weights the running value), and BN's running variance is
  made unbiased like torch's (see ``_unbiased_running_var``);
- AvgPool's ``exclusive`` is the negation of ``count_include_pad``;
- a conv's bias is added by ``affine_channel`` without gradients and expanded to the output's
  shape with them from batch 2 on (``_bias_added``: Paddle's broadcasting add is slower than the
  conv on CPU);
- padding that differs before and after (spec ``"same"`` at a stride) is Paddle's flat
  ``[before, after, ...]`` list on convs and pools;
- ceil-mode pools whose extra window torch would drop run in floor mode (Paddle keeps the
  window that starts in the right padding; the floor-mode pool has exactly torch's windows);
- Dropout uses ``upscale_in_train`` (inverted dropout);
- Linear stores its weight [in, out] (``TRANSPOSED``, applied by ``weights``);
- bilinear upsampling passes ``align_mode=0`` (half-pixel, torch's) with ``align_corners``;
- the channels-first LayerNorm permutes around ``nn.LayerNorm``;
- a layer whose input is a new tensor only it reads works in place where no gradient is wanted
  (and relu, sigmoid, tanh and a residual sum with gradients too; ``_InPlace``): Paddle gives
  each new CPU tensor fresh pages; eager channel shuffles use Paddle's ``channel_shuffle`` kernel;
- GroupNorm without affine parameters avoids ``nn.GroupNorm(weight_attr=False)``, whose backward
  is wrong in Paddle 3.3 (``GroupNormNoAffine``); every GroupNorm centers its groups first
  (``_group_centered``: Paddle's one-pass variance cancels).
"""
from __future__ import annotations

import math

import paddle
from paddle import _C_ops, nn

from ...spec import ModelSpec
from . import FRAMEWORK
from ..tree import emit, fresh_branch, fresh_inputs, ntuple


def _grad_free(*tensors) -> bool:
    """Eager and no gradient wanted through these operands: in-place kernels are safe. Paddle takes
    every new CPU tensor from glibc's malloc, which maps large blocks afresh, so a new output pays
    its page faults, several times what an in-place kernel costs."""
    if not paddle.in_dynamic_mode():
        return False
    return not paddle.is_grad_enabled() or all(t.stop_gradient for t in tensors if t is not None)


class _Named(nn.Layer):
    """Children registered under their spec names, iterated from a fixed tuple so the
    forward is static under ``paddle.jit.to_static``."""

    def __init__(self, named):
        super().__init__()
        for name, layer in named:
            self.add_sublayer(name, layer)
        self._children_t = tuple(layer for _, layer in named)


class _InPlace:
    """A layer that may overwrite its input where that is a new tensor only it reads and no
    gradient is wanted (``inplace``, ``_grad_free``), or also with gradients where the layer
    before keeps no output for its backward (``inplace_autograd``); both set from the spec by
    ``_seq``."""
    inplace = inplace_autograd = False


class Sequential(_Named):
    def forward(self, x):
        for layer in self._children_t:
            x = layer(x)
        return x


class Parallel(_Named):
    def __init__(self, named, merge: str, split=None, into=None):
        super().__init__(named)
        self._merge = merge
        self._split = list(split) if split else None
        self._into = into  # an add's branch whose output is new: the others are summed into it in place

    def forward(self, x):
        if self._split is None:
            outs = [layer(x) for layer in self._children_t]
        else:
            outs = [layer(xi) for layer, xi in zip(self._children_t, paddle.split(x, self._split, axis=1))]
        if self._merge == "concat":
            return paddle.concat(outs, axis=1)
        if self._merge == "add" and self._into is not None and paddle.in_dynamic_mode():
            # with gradients too: an add's backward reads neither operand, and the fresh branch's
            # last op keeps no output for its own
            y = outs[self._into]
            for i, o in enumerate(outs):
                if i != self._into:
                    y = y.add_(o)
            return y
        y = outs[0]
        for o in outs[1:]:
            y = y + o if self._merge == "add" else paddle.maximum(y, o)
        return y


class Scale(_Named, _InPlace):
    def __init__(self, name, gate):
        super().__init__([(name, gate)])

    def forward(self, x):
        g = self._children_t[0](x)
        return x.multiply_(g) if self.inplace and _grad_free(x, g) else x * g


class ShiftMax(_Named):
    """Dynamic Shift-Max: ``max_k(a_k * x + b_k * shift(x))`` with coefficients from ``gate``."""

    def __init__(self, node, gate, shape):
        super().__init__([(node.gate.name, gate)])
        self._c, self._groups, self._hw = shape[0], node.groups, list(shape[1:])
        self._fusions, self._scale = node.fusions, 2.0 * node.act_max
        self._init_a, self._init_b = tuple(node.init_a), tuple(node.init_b)

    def shift(self, x):
        gc = self._c // self._groups
        s = paddle.reshape(x, [-1, self._groups, gc] + self._hw)
        if self._groups > 1:
            s = paddle.concat([s[:, 1:], s[:, :1]], axis=1)
        if gc > 1:
            s = paddle.concat([s[:, :, 1:], s[:, :, :1]], axis=2)
        return paddle.reshape(s, [-1, self._c] + self._hw)

    def forward(self, x):
        c = self._c
        y = (paddle.reshape(self._children_t[0](x), [-1, 2 * self._fusions * c, 1, 1]) - 0.5) * self._scale
        x2 = self.shift(x)
        out = x * (y[:, :c] + self._init_a[0]) + x2 * (y[:, c:2 * c] + self._init_b[0])
        if self._fusions == 2:
            out = paddle.maximum(out, x * (y[:, 2 * c:3 * c] + self._init_a[1]) + x2 * (y[:, 3 * c:] + self._init_b[1]))
        return out


class HardSigmoid(nn.Layer):
    def __init__(self, slope: float, offset: float):
        super().__init__()
        self.slope, self.offset = slope, offset

    def forward(self, x):
        # Paddle's own kernel takes any slope and offset: the same float32 numbers as
        # clip(x * slope + offset, 0, 1), one pass instead of three,
        # and one hard_sigmoid op that Paddle Inference's oneDNN passes fuse
        return nn.functional.hardsigmoid(x, slope=self.slope, offset=self.offset)


class ChannelShuffle(nn.Layer):
    def __init__(self, groups: int, shape):
        super().__init__()
        self.groups, self.shape = groups, list(shape)

    def forward(self, x):
        if x.ndim == 4 and paddle.in_dynamic_mode():
            # Paddle's own kernel: the same permutation; eager, the reshape of the transposed view
            # below runs Paddle's strided copy, half of paddle.vision's ShuffleNet V2 time. Static
            # programs keep the reshapes: paddle2onnx aborts on channel_shuffle,
            # and Paddle Inference detects the pattern itself
            return nn.functional.channel_shuffle(x, self.groups)
        c, rest = self.shape[0], self.shape[1:]
        x = paddle.reshape(x, [-1, self.groups, c // self.groups] + rest)
        perm = [0, 2, 1] + list(range(3, 3 + len(rest)))
        return paddle.reshape(paddle.transpose(x, perm), [-1, c] + rest)


class Reshape(nn.Layer):
    def __init__(self, shape):
        super().__init__()
        self.shape = [-1] + list(shape)

    def forward(self, x):
        return paddle.reshape(x, self.shape)


class GlobalAvgPool(nn.Layer):
    def forward(self, x):
        # an adaptive pool, not a mean: Paddle Inference runs pool2d in oneDNN but falls back to
        # the plain kernel for a reduce_mean, with layout reorders around it (MobileNetV3's eight
        # SE blocks pay it eight times)
        if x.ndim in (4, 5):
            pool = nn.functional.adaptive_avg_pool2d if x.ndim == 4 else nn.functional.adaptive_avg_pool3d
            return pool(x, 1)
        return paddle.mean(x, axis=list(range(2, x.ndim)), keepdim=True)


def _inplace_act(base, kernel_, grad_from_output: bool):
    """``base`` that applies Paddle's in-place kernel (the same numbers) where ``inplace`` and no
    gradient is wanted, or ``inplace_autograd`` and its backward reads its output, not its input
    (relu, sigmoid, tanh; Paddle's inplace-version check guards the rest)."""

    class Act(base, _InPlace):
        def forward(self, x):
            if paddle.in_dynamic_mode() and (self.inplace_autograd and grad_from_output
                                             or self.inplace and _grad_free(x)):
                return kernel_(x)
            return super().forward(x)

    Act.__name__ = base.__name__
    return Act


class Gelu(nn.GELU):
    def __init__(self):
        super().__init__(approximate=False)


class GeluTanh(nn.GELU):
    def __init__(self):
        super().__init__(approximate=True)


class _Param(nn.Layer):
    """A layer owning one 1-d parameter under a given attribute name (the canonical tensor name)."""

    def __init__(self, attr: str, size: int, value: float):
        super().__init__()
        setattr(self, attr, self.create_parameter(
            [size], default_initializer=nn.initializer.Constant(value)))


class PReLU(_Param):
    """max(0, x) + a * min(0, x), ``a`` per channel (axis 1) or shared."""

    def __init__(self, n, x):
        super().__init__("weight", 1 if n.shared else x[0], 0.25)
        self._view = [1] if n.shared else [1, -1] + [1] * (len(x) - 1)

    def forward(self, x):
        return paddle.maximum(x, paddle.zeros([1], x.dtype)) + paddle.reshape(self.weight, self._view) * paddle.minimum(
            x, paddle.zeros([1], x.dtype))


class LayerScale(_Param):
    def __init__(self, n, x):
        super().__init__("gamma", x[-1] if n.last_axis else x[0], 1.0)
        self._view = [-1] if n.last_axis else [-1] + [1] * (len(x) - 1)

    def forward(self, x):
        return x * paddle.reshape(self.gamma, self._view)


class _Axis(nn.Layer):
    def __init__(self, n, x):
        super().__init__()
        self.axis = n.axis % len(x) + 1


class Softmax(_Axis):
    def forward(self, x):
        return nn.functional.softmax(x, axis=self.axis)


class L2Normalize(_Axis):
    def __init__(self, n, x):
        super().__init__(n, x)
        self.eps = n.eps

    def forward(self, x):
        return nn.functional.normalize(x, p=2, axis=self.axis, epsilon=self.eps)


class Slice(_Axis):
    def __init__(self, n, x):
        super().__init__(n, x)
        self.start, self.stop = n.start, n.stop

    def forward(self, x):
        return paddle.slice(x, axes=[self.axis], starts=[self.start], ends=[self.stop])


class Permute(nn.Layer):
    def __init__(self, dims):
        super().__init__()
        self.perm = [0] + [d + 1 for d in dims]

    def forward(self, x):
        return paddle.transpose(x, self.perm)


class Mean(nn.Layer):
    def __init__(self, n, x):
        super().__init__()
        self.axes, self.keepdim = [a + 1 for a in n.resolved(x)], n.keepdim

    def forward(self, x):
        return paddle.mean(x, axis=self.axes, keepdim=self.keepdim)


class Pad(nn.Layer):
    def __init__(self, pads, value: float):
        super().__init__()
        # Paddle's flat list for NC* inputs, like torch's: the last dim's (before, after) first
        self.pads, self.value = [p for pair in reversed(pads) for p in pair], value

    def forward(self, x):
        return nn.functional.pad(x, self.pads, mode="constant", value=self.value)


class Affine(nn.Layer):
    def __init__(self, scale: float, shift: float):
        super().__init__()
        self.scale, self.shift = scale, shift

    def forward(self, x):
        return x * self.scale + self.shift


class Merge(nn.Layer):
    def __init__(self, n, x):
        super().__init__()
        self.mode, self.axis = n.mode, n.axis % len(x[0]) + 1

    def forward(self, *xs):
        if self.mode == "concat":
            return paddle.concat(list(xs), axis=self.axis)
        y = xs[0]
        for o in xs[1:]:
            y = y + o if self.mode == "add" else y * o if self.mode == "mul" else paddle.maximum(y, o)
        return y


class Graph(_Named):
    """Children under their node names, each called on the tensors its node reads; several
    outputs are returned as a tuple."""

    def __init__(self, n, named):
        super().__init__(named)
        order = n.input_names() + [name for name, _ in named]
        self._refs = tuple(tuple(order.index(r) for r in refs) for refs in n.refs())
        self._outs = tuple(order.index(o) for o in n.output_names())

    def forward(self, x, *rest):  # one named first input: paddle.jit.to_static counts it against input_spec
        env = [x, *rest]
        for layer, refs in zip(self._children_t, self._refs):
            env.append(layer(*[env[i] for i in refs]))
        if len(self._outs) == 1:
            return env[self._outs[0]]
        return tuple(env[i] for i in self._outs)


_ACTS = {"relu": _inplace_act(nn.ReLU, _C_ops.relu_, True),
         "relu6": _inplace_act(nn.ReLU6, lambda x: _C_ops.hardtanh_(x, 0.0, 6.0), False),
         "hardswish": nn.Hardswish,  # Paddle has no in-place hardswish
         "sigmoid": _inplace_act(nn.Sigmoid, _C_ops.sigmoid_, True),
         "swish": _inplace_act(nn.Silu, _C_ops.silu_, False),
         "tanh": _inplace_act(nn.Tanh, _C_ops.tanh_, True), "gelu": Gelu, "gelu_tanh": GeluTanh}


def _nd(shape) -> int:
    return len(shape) - 1


def _padding(n, x):
    """Explicit padding: per dim when symmetric, else Paddle's flat (before, after) list."""
    pads = n.pads(x)
    return [b for b, _ in pads] if all(b == a for b, a in pads) else [p for pair in pads for p in pair]


def _bias_added(base, conv, data_format: str):
    """A biased conv whose bias is added by the fastest exact kernel: Paddle's own conv adds it
    with a broadcasting ``elementwise_add`` that on CPU costs more than the conv from batch 2 on;
    an add of the bias expanded to the output's shape costs less, and ``affine_channel`` with
    scale 1 (the kernel of an inference BatchNorm) least (figures: docs/deploy.md). Without gradients (eval
    under ``no_grad``: what makes folded networks pay) ``affine_channel``; with gradients the
    expanded add from batch 2 on and Paddle's own add at batch 1, because ``affine_channel``'s
    backward returns a wrong bias gradient (ones) when its scale needs none (Paddle 3.3). The same
    float32 numbers every way (x * 1 + b; Paddle's inference batch_norm kernel would be as fast
    but scales by a 1/sqrt(1) an ulp off, which MicroNet's shift-max chains amplify to 1e-5)."""

    class Conv(base):
        def forward(self, x):
            # a static program (to_static, export): Paddle Inference and paddle2onnx fuse the bias
            # themselves, and paddle2onnx mistranslates expand_as
            if not paddle.in_dynamic_mode():
                return super().forward(x)
            grads = paddle.is_grad_enabled() and not (x.stop_gradient and self.weight.stop_gradient
                                                       and self.bias.stop_gradient)
            if grads and x.shape[0] == 1:
                return super().forward(x)
            y = conv(x, self.weight, None, stride=self._stride, padding=self._padding, dilation=self._dilation,
                     groups=self._groups, data_format=data_format)
            if not grads:  # in place on the conv's own new output
                ones = self.__dict__.get("_bias_ones")
                if ones is None or ones.shape != self.bias.shape:
                    # a constant kept out of Paddle's buffer registry (not state, never saved)
                    ones = self.__dict__["_bias_ones"] = paddle.ones_like(self.bias)
                return _C_ops.affine_channel_(y, ones, self.bias, "NCHW")
            return y + paddle.expand_as(self.bias.reshape([1, -1] + [1] * (y.ndim - 2)), y)

    Conv.__name__ = base.__name__
    return Conv


_BIASED = {2: _bias_added(nn.Conv2D, nn.functional.conv2d, "NCHW"),
           3: _bias_added(nn.Conv3D, nn.functional.conv3d, "NCDHW")}


def _conv(n, x):
    nd = _nd(x)
    cls = _BIASED[nd] if n.bias else {2: nn.Conv2D, 3: nn.Conv3D}[nd]
    return cls(x[0], n.out_channels, ntuple(n.kernel, nd), stride=ntuple(n.stride, nd),
               padding=_padding(n, x), dilation=ntuple(n.dilation, nd), groups=n.groups,
               bias_attr=None if n.bias else False)


def _unbiased_running_var(base):
    """Paddle updates ``_variance`` with the *biased* batch variance; torch and MindSpore (and
    the spec) use the unbiased one. In training, Paddle's own kernel updates the running mean and
    a copy of the running variance; its updated copy ``v' = m v + (1 - m) b`` (b: the biased batch
    variance) gives the spec's update ``m v + (1 - m) k b`` (k = n / (n - 1)) as ``k v' - m (k - 1) v``:
    C numbers, no extra pass over the activations, three small ops per BN (a copy, ``scale_``,
    ``add_``) against the six of copying both. The variance buffer
    is never an input of the autograd graph, so Paddle's inplace-version check is not involved."""

    class BatchNorm(base, _InPlace):
        def forward(self, x):
            if not self.training:
                if self.inplace and x.ndim == 4 and self._data_format == "NCHW" and _grad_free(x, self.weight, self.bias):
                    # x * s + (b - mean s), s = w / sqrt(var + eps), in place on a new input; by
                    # _C_ops, since at batch 1 these C-sized ops' Python wrappers cost more than the
                    # affine itself
                    s = _C_ops.rsqrt(_C_ops.scale(self._variance, 1.0, self._epsilon, True))
                    s = s if self.weight is None else _C_ops.multiply(s, self.weight)
                    t = _C_ops.multiply(self._mean, s)
                    t = _C_ops.scale(t, -1.0, 0.0, True) if self.bias is None else _C_ops.subtract(self.bias, t)
                    return _C_ops.affine_channel_(x, s, t, "NCHW")
                return super().forward(x)
            m = self._momentum
            count = math.prod(x.shape) // x.shape[1]
            k = count / max(count - 1, 1)
            # the mean buffer is Paddle's to update (its update is the spec's); the variance goes
            # through a copy: the kernel's inputs are kept for its backward, and an in-place op on
            # one before that backward fails Paddle's version check
            var = self._variance.clone()
            y = paddle.nn.functional.batch_norm(x, self._mean, var, self.weight, self.bias, training=True,
                                                momentum=m, epsilon=self._epsilon, data_format=self._data_format)
            with paddle.no_grad():
                # Paddle's copy holds m v + (1 - m) b; the spec's update m v + (1 - m) k b is k times
                # that minus m (k - 1) v: two in-place ops on the buffer (a batch-1 ShuffleNet V2
                # train step spent 20% more than paddle.vision's in the longer form)
                self._variance.scale_(-m * (k - 1)).add_(var, alpha=k)
            return y

    BatchNorm.__name__ = base.__name__
    return BatchNorm


_BN = {r: _unbiased_running_var(c) for r, c in ((1, nn.BatchNorm1D), (2, nn.BatchNorm1D), (3, nn.BatchNorm2D),
                                                (4, nn.BatchNorm3D))}


def _batchnorm(n, x):
    off = None if n.affine else False
    return _BN[len(x)](x[0], momentum=1.0 - n.momentum, epsilon=n.eps, weight_attr=off, bias_attr=off)


def _maxpool(n, x):
    nd = _nd(x)
    stride = n.kernel if n.stride is None else n.stride
    return {2: nn.MaxPool2D, 3: nn.MaxPool3D}[nd](ntuple(n.kernel, nd), ntuple(stride, nd), _padding(n, x),
                                                 ceil_mode=n.effective_ceil(x))


def _avgpool(n, x):
    nd = _nd(x)
    stride = n.kernel if n.stride is None else n.stride
    return {2: nn.AvgPool2D, 3: nn.AvgPool3D}[nd](ntuple(n.kernel, nd), ntuple(stride, nd), _padding(n, x),
                                                 ceil_mode=n.effective_ceil(x), exclusive=not n.count_include_pad)


class LayerNorm(nn.LayerNorm):
    """LayerNorm over channels at every position (permute to channels-last and back)."""

    def forward(self, x):
        if len(x.shape) == 2:
            return super().forward(x)
        return paddle.transpose(super().forward(paddle.transpose(x, [0, 2, 3, 1])), [0, 3, 1, 2])


def _upsample(n, x):
    size = [x[1] * ntuple(n.scale, 2)[0], x[2] * ntuple(n.scale, 2)[1]]
    if n.mode == "nearest":
        return nn.Upsample(size=size, mode="nearest")
    return nn.Upsample(size=size, mode="bilinear", align_corners=n.align_corners, align_mode=0)


def _norm_attr(affine):
    return None if affine else False


def _group_centered(x, groups: int):
    """``x`` minus its mean over each group: Paddle's CPU ``group_norm`` takes the variance in one
    pass (E[x^2] - E[x]^2), which cancels where the mean is large against the spread (mean 0.6,
    std 0.014, as after saturated hardsigmoids: 3.2e-4 relative error; centered first: 8.9e-8;
    found by the property tests). GroupNorm is invariant to this shift, value and gradient."""
    g = x.reshape([0, groups, -1])
    return (g - g.mean(axis=2, keepdim=True)).reshape([0] + list(x.shape[1:]))


class GroupNorm(nn.GroupNorm):
    def forward(self, x):
        return super().forward(_group_centered(x, self._num_groups))


class GroupNormNoAffine(nn.Layer):
    """GroupNorm without affine parameters through ``F.group_norm`` with constant ones/zeros:
    Paddle 3.3's ``nn.GroupNorm(weight_attr=False, bias_attr=False)`` computes the right forward
    but an input gradient 7.8% off torch's (found by the property tests; with weights it is right)."""

    def __init__(self, groups: int, channels: int, eps: float):
        super().__init__()
        self._groups, self._eps = groups, eps
        self.register_buffer("_ones", paddle.ones([channels]), persistable=False)
        self.register_buffer("_zeros", paddle.zeros([channels]), persistable=False)

    def forward(self, x):
        return paddle.nn.functional.group_norm(_group_centered(x, self._groups), self._groups, epsilon=self._eps,
                                               weight=self._ones, bias=self._zeros)


def _groupnorm(n, x):
    if n.affine:
        return GroupNorm(n.groups, x[0], epsilon=n.eps)
    return GroupNormNoAffine(n.groups, x[0], n.eps)


def _seq(n, x, kids):
    for new, fresh, (_, m) in zip(fresh_inputs(n, autograd=False), fresh_inputs(n), kids):
        if isinstance(m, _InPlace):
            m.inplace, m.inplace_autograd = new, fresh
    return Sequential(kids)


TRANSPOSED = FRAMEWORK.transposed  # Linear: [in, out]

EMIT = {
    "conv": _conv,
    "conv_transpose": lambda n, x: nn.Conv2DTranspose(
        x[0], n.out_channels, ntuple(n.kernel, 2), stride=ntuple(n.stride, 2), padding=ntuple(n.padding, 2),
        output_padding=ntuple(n.output_padding, 2), dilation=ntuple(n.dilation, 2), groups=n.groups,
        bias_attr=None if n.bias else False),
    "groupnorm": _groupnorm,
    "layernorm": lambda n, x: (nn.LayerNorm if n.last_axis else LayerNorm)(
        x[-1] if n.last_axis else x[0], epsilon=n.eps, weight_attr=_norm_attr(n.affine), bias_attr=_norm_attr(n.affine)),
    "upsample": _upsample,
    "batchnorm": _batchnorm,
    "act": lambda n, x: _ACTS[n.fn](),
    "hardsigmoid": lambda n, x: HardSigmoid(n.slope, n.offset),
    "maxpool": _maxpool,
    "avgpool": _avgpool,
    "global_avgpool": lambda n, x: GlobalAvgPool(),
    "adaptive_avgpool": lambda n, x: nn.AdaptiveAvgPool2D(ntuple(n.output_size, 2)),
    "flatten": lambda n, x: nn.Flatten(start_axis=1),
    "reshape": lambda n, x: Reshape(n.shape),
    "linear": lambda n, x: nn.Linear(x[-1], n.out_features, bias_attr=None if n.bias else False),
    "dropout": lambda n, x: nn.Dropout(n.p, mode="upscale_in_train"),
    "identity": lambda n, x: nn.Identity(),
    "channel_shuffle": lambda n, x: ChannelShuffle(n.groups, x),
    "prelu": PReLU,
    "hardtanh": lambda n, x: nn.Hardtanh(n.min_val, n.max_val),
    "softmax": Softmax,
    "l2norm": L2Normalize,
    "permute": lambda n, x: Permute(n.dims),
    "mean": Mean,
    "pad": lambda n, x: Pad(n.pads, n.value),
    "affine": lambda n, x: Affine(n.scale, n.shift),
    "layer_scale": LayerScale,
    "slice": Slice,
    "pixel_shuffle": lambda n, x: nn.PixelShuffle(n.factor),
    "merge": Merge,
    "graph": lambda n, x, kids: Graph(n, kids),
    "seq": _seq,
    "parallel": lambda n, x, kids: Parallel(kids, n.merge, n.split, fresh_branch(n)),
    "scale": lambda n, x, kids: Scale(*kids[0]),
    "shift_max": lambda n, x, kids: ShiftMax(n, kids[0][1], x),
}


def build(spec: ModelSpec) -> nn.Layer:
    return emit(spec, EMIT, Sequential)
