"""Translations shared by the recorded frontends (``record``): a framework's call, its arguments
already read, -> an onespec :class:`Op`. Shapes are sample shapes (no batch dim); axes are the
framework's, batch included."""
from __future__ import annotations

from ..spec import nodes as N
from .ir import DROP, Op, Unsupported


def one(v):
    """A per-dim tuple as one int where all dims agree (the spec's compact form)."""
    v = tuple(v) if isinstance(v, (list, tuple)) else (v,)
    return v[0] if len(set(v)) == 1 else v


def axis(d: int, x_shape) -> int:
    """A framework axis (batch included) as a sample axis; the batch dim itself is refused."""
    d = d % (len(x_shape) + 1)
    if d == 0:
        raise Unsupported("it works along the batch dim")
    return d - 1


def act(fn: str, x) -> Op:
    return Op(N.Act(name="op", fn=fn), [x])


def binary(mode: str, x, y, shape) -> Op:
    """add/mul/sub/div of two recorded tensors (add and mul: a merge), or of a tensor and a
    number (an affine); numbers on either side of add and mul."""
    number = (int, float)
    if isinstance(x, number) and not isinstance(x, bool) and mode in ("add", "mul"):
        x, y = y, x
    if isinstance(x, number):
        raise Unsupported(f"{mode} of a number by a tensor" if not isinstance(y, number) else "arithmetic on numbers")
    if isinstance(y, number) and not isinstance(y, bool):
        y = float(y)
        kw = {"add": dict(shift=y), "mul": dict(scale=y), "sub": dict(shift=-y), "div": dict(scale=1.0 / y)}[mode]
        return Op(N.Affine(name="op", **kw), [x])
    if mode in ("sub", "div"):
        raise Unsupported(f"{mode} of two tensors")
    if len(shape(x)) != len(shape(y)):
        raise Unsupported(f"{mode} of tensors of different ranks {shape(x)} and {shape(y)}")
    return Op(N.Merge(name="op", mode=mode), [x, y])


def binary_call(mode: str, names: tuple[str, str], reflected: bool = False):
    """The translation of a framework's binary function or operator whose two arguments are
    named ``names`` (``reflected``: ``__radd__`` and the like, the operands swapped)."""
    def make(c) -> Op:
        x, y = c.arg(0, names[0]), c.arg(1, names[1])
        return binary(mode, *((y, x) if reflected else (x, y)), c.shape)
    return make


def concat(ts, dim: int, shape) -> Op | str:
    ts = list(ts)
    if len(ts) == 1:
        return DROP
    return Op(N.Merge(name="op", mode="concat", axis=axis(dim, shape(ts[0]))), ts)


def flatten(x, x_shape, start: int, stop: int, out_shape) -> Op:
    rank = len(x_shape) + 1
    start, stop = start % rank, stop % rank
    if start == 0:
        raise Unsupported("a flatten that merges the batch dim")
    node = N.Flatten(name="op") if (start, stop) == (1, rank - 1) else N.Reshape(name="op", shape=tuple(out_shape))
    return Op(node, [x])


def reshape(x, batch_in: int, out_full) -> Op:
    """A reshape or view to ``out_full`` (batch included), which must keep the batch dim."""
    if not out_full or out_full[0] != batch_in:
        raise Unsupported("a reshape that changes the batch dim")
    out = tuple(out_full[1:])
    return Op(N.Flatten(name="op") if len(out) == 1 else N.Reshape(name="op", shape=out), [x])


def mean(x, x_shape, axes, keep: bool) -> Op:
    if axes is None or axes == () or axes == []:
        raise Unsupported("a mean over every dim, the batch included")
    axes = tuple(sorted(axis(a, x_shape) for a in (axes if isinstance(axes, (list, tuple)) else [axes])))
    if keep and len(x_shape) == 3 and axes == (1, 2):
        return Op(N.GlobalAvgPool(name="op"), [x])
    return Op(N.Mean(name="op", axes=axes, keepdim=bool(keep)), [x])


def permute(x, perm, rank: int) -> Op:
    perm = [p % rank for p in perm]
    if perm[0] != 0:
        raise Unsupported("a permute that moves the batch dim")
    return Op(N.Permute(name="op", dims=tuple(p - 1 for p in perm[1:])), [x])


def adaptive(x, size) -> Op:
    size = one(size)
    return Op(N.GlobalAvgPool(name="op") if size == 1 else N.AdaptiveAvgPool(name="op", output_size=size), [x])


def hardtanh(x, lo: float, hi: float) -> Op:
    lo, hi = float(lo), float(hi)
    return Op(N.Act(name="op", fn="relu6") if (lo, hi) == (0.0, 6.0) else N.HardTanh(name="op", min_val=lo, max_val=hi), [x])


def pool(cls, x, kernel, stride, padding, ceil_mode: bool, **extra) -> Op:
    return Op(cls(name="op", kernel=one(kernel), stride=one(stride if stride is not None else kernel),
                  padding=padding if padding == "same" else one(padding), ceil_mode=bool(ceil_mode), **extra), [x])


def getitem(x, index, full_shape) -> Op | str:
    """``x[index]`` by slices: one step-1 slice along one sample dim (a channel slice), or the
    whole tensor (DROP); anything else (an integer index, a strided slice) is refused."""
    idx = list(index) if isinstance(index, tuple) else [index]
    if Ellipsis in idx:
        i = idx.index(Ellipsis)
        idx[i:i + 1] = [slice(None)] * (len(full_shape) - len(idx) + 1)
    if len(idx) > len(full_shape) or not all(isinstance(i, slice) for i in idx):
        raise Unsupported(f"indexing by {index!r}: only slices are captured (x[:, 0] reads one position)")
    cut = []
    for d, sl in enumerate(idx):
        start, stop, step = sl.indices(full_shape[d])
        if step != 1:
            raise Unsupported("a strided slice")
        if (start, stop) != (0, full_shape[d]):
            cut.append((d, start, stop))
    if not cut:
        return DROP
    if len(cut) > 1 or cut[0][0] == 0:
        raise Unsupported("a slice along several dims or along the batch dim")
    d, start, stop = cut[0]
    return Op(N.Slice(name="op", axis=d - 1, start=start, stop=stop), [x])
