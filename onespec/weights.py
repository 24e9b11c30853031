"""Canonical, framework-neutral weights.

A *state* is a ``dict[str, np.ndarray]`` keyed ``"<node path>.<tensor>"`` in one documented
layout (torch's names and layouts, which are also the papers'):

| op | tensors |
|---|---|
| conv | ``weight`` [out, in/groups, *kernel] (OIHW / OIDHW), ``bias`` [out] |
| conv_transpose | ``weight`` [in, out/groups, kH, kW], ``bias`` [out] |
| linear | ``weight`` [out, in], ``bias`` [out] |
| batchnorm | ``weight`` (gamma), ``bias`` (beta), ``running_mean``, ``running_var`` [C] |
| groupnorm, layernorm | ``weight`` (gamma), ``bias`` (beta) [C] |

The table is what the op classes declare (``onespec.spec.nodes``, ``tensors()``); nothing here
knows any op.

Each backend converts to and from its own layout in exactly one place
(``onespec.backends.<fw>.weights``). States are saved as ``.npz`` (numpy only), written atomically.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from .errors import MissingFileError, OnespecError
from .readers import Budget, ReadError, check_finite, zip_members
from .spec import ModelSpec, trace


class StateError(OnespecError, ValueError):
    """A state does not fit a spec: lists missing, unexpected and wrongly shaped tensors."""

    def __init__(self, what: str, missing=(), unexpected=(), mismatched=(), dtype=()):
        self.missing, self.unexpected = sorted(missing), sorted(unexpected)
        self.mismatched, self.dtype = sorted(mismatched), sorted(dtype)
        parts = [what]
        for label, items in (("missing", self.missing), ("unexpected", self.unexpected),
                             ("wrong shape", self.mismatched), ("wrong dtype", self.dtype)):
            if items:
                shown = ", ".join(items[:12]) + (f", ... ({len(items)} in all)" if len(items) > 12 else "")
                parts.append(f"{label}: {shown}")
        super().__init__("; ".join(parts))


@dataclass(frozen=True)
class TensorSpec:
    shape: tuple[int, ...]
    role: str        # weight | bias | gamma | beta | running_mean | running_var
    op: str          # the owning node's op
    trainable: bool


def layout(spec: ModelSpec) -> dict[str, TensorSpec]:
    """Every tensor of the spec's canonical state, in graph order, as each op declares it
    (``Node.tensors``)."""
    return {f"{r.path}.{t.name}": TensorSpec(t.shape, t.role, r.op, t.trainable)
            for r in trace(spec) for t in r.node.tensors(r.in_shape)}


def _rng(seed: int, name: str) -> np.random.Generator:
    # per-tensor stream: a tensor's values do not depend on which other tensors exist
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def init_state(spec: ModelSpec, seed: int = 0, dtype=np.float32, scheme: str = "test") -> dict[str, np.ndarray]:
    """Deterministic initialization independent of any framework's defaults.

    ``scheme="test"`` (conformance): conv/linear weights ~ N(0, 1/fan_in) (unit-variance
    activations), biases ~ N(0, 0.1); BN gamma ~ U(0.5, 1.5), beta ~ N(0, 0.1), running mean ~
    N(0, 0.1), running var ~ U(0.5, 1.5), so that inference exercises every BN term.
    ``scheme="train"`` (the start of training, torchvision's ResNet/MobileNet init): conv weights
    ~ N(0, 2/fan_out) (He et al. 2015, fan-out mode), linear ~ N(0, 0.01), biases 0; norms gamma
    1, beta 0, running mean 0, running var 1.
    """
    if scheme not in ("test", "train"):
        raise ValueError(f"init scheme {scheme!r}: choose test or train")
    state = {}
    for name, t in layout(spec).items():
        g = _rng(seed, name)
        if scheme == "train":
            if t.role == "weight" and t.op == "linear":
                v = 0.01 * g.standard_normal(t.shape)
            elif t.role == "weight":
                # fan-out: out channels x kernel; [in, out/g, *k] for a transposed conv
                out = t.shape[1] if t.op == "conv_transpose" else t.shape[0]
                v = g.standard_normal(t.shape) * np.sqrt(2.0 / (out * int(np.prod(t.shape[2:], dtype=np.int64))))
            elif t.role in ("gamma", "running_var"):
                v = np.ones(t.shape)
            elif t.role == "slope":  # PReLU's negative slope, He et al.'s 0.25
                v = np.full(t.shape, 0.25)
            else:
                v = np.zeros(t.shape)
            state[name] = v.astype(dtype)
            continue
        if t.role == "weight":
            # fan-in: [out, in, *k] for conv/linear; [in, out/g, *k] for a transposed conv, whose
            # output sums in/stride^2 products -- the product of the other dims is close enough
            fan_in = int(np.prod(t.shape[1:]))
            v = g.standard_normal(t.shape) / np.sqrt(fan_in)
        elif t.role in ("gamma", "running_var"):
            v = g.uniform(0.5, 1.5, t.shape)
        elif t.role == "slope":
            v = g.uniform(0.05, 0.5, t.shape)
        else:
            v = 0.1 * g.standard_normal(t.shape)
        state[name] = v.astype(dtype)
    return state


def check_state(spec: ModelSpec, state: Mapping[str, np.ndarray], what: str = "state") -> None:
    """Raise :class:`StateError` unless ``state`` has exactly the spec's tensors, shapes and a float dtype."""
    want = layout(spec)
    missing = set(want) - set(state)
    unexpected = set(state) - set(want)
    mismatched = [f"{k} {_shape_of(state[k])} != {want[k].shape}" for k in set(want) & set(state)
                  if _shape_of(state[k]) != want[k].shape]
    bad_dtype = [f"{k} ({_dtype_of(state[k])})" for k in set(want) & set(state)
                 if _dtype_of(state[k]).kind != "f"]
    if missing or unexpected or mismatched or bad_dtype:
        raise StateError(f"{what} does not fit {spec.name}", missing, unexpected, mismatched, bad_dtype)


def check_native(what: str, expected: Mapping[str, tuple], got: Mapping[str, np.ndarray]) -> None:
    """Compare a native checkpoint's tensors with a network's own (names, shapes, float dtype)."""
    missing = set(expected) - set(got)
    unexpected = set(got) - set(expected)
    common = set(expected) & set(got)
    mismatched = [f"{k} {_shape_of(got[k])} != {tuple(expected[k])}" for k in common
                  if _shape_of(got[k]) != tuple(expected[k])]
    bad_dtype = [f"{k} ({_dtype_of(got[k])})" for k in common if _dtype_of(got[k]).kind != "f"]
    if missing or unexpected or mismatched or bad_dtype:
        raise StateError(what, missing, unexpected, mismatched, bad_dtype)


def native_layout(spec: ModelSpec, roles: Mapping[str, str], transposed: frozenset = frozenset()
                  ) -> dict[str, tuple[str, bool]]:
    """Canonical name -> (native name, stored transposed), derived from each tensor's declared role:
    a backend names its tensors by role (``roles``, e.g. MindSpore ``gamma``) and lists the ops
    whose 2-D weight it stores transposed (Paddle's Linear)."""
    out = {}
    for name, t in layout(spec).items():
        path, leaf = name.rsplit(".", 1)
        out[name] = (f"{path}.{roles.get(t.role, leaf)}", t.op in transposed and t.role == "weight")
    return out


def atomic_write(path: str, write, suffix: str | None = None) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: readers never see a half-written file,
    and a failed or empty write leaves an existing ``path`` untouched. The temporary file sits in
    a private folder beside ``path``, removed whole afterwards, so side files a writer makes
    (MindSpore writes ``*.tmp`` before its ``.ckpt``) go with it even when it is interrupted.
    ``suffix``: the temporary file's extension, for writers that append their own (MindSpore
    adds ``.ckpt`` otherwise)."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StateError(f"cannot write {path}: directory {directory} does not exist")
    if os.path.isdir(path):
        raise StateError(f"cannot write {path}: it is a directory")
    tmpdir = tempfile.mkdtemp(prefix=".onespec-", dir=directory)
    tmp = os.path.join(tmpdir, "state" + (suffix or os.path.splitext(path)[1]))
    try:
        write(tmp)
        if not os.path.exists(tmp) or not os.path.getsize(tmp):
            raise StateError(f"writing {path} produced an empty file; the destination is unchanged")
        # the mode of any file the user creates: MindSpore makes its checkpoints read-only (0400)
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def save_state(state: Mapping[str, np.ndarray], path: str) -> None:
    """Save a canonical state as ``.npz`` (atomically)."""
    def write(tmp):
        with open(tmp, "wb") as f:
            np.savez(f, **{k: np.asarray(v) for k, v in state.items()})
    atomic_write(path, write)


# A state file whose header declares more than this without a spec to check it against is refused;
# so is a framework checkpoint file larger than this.
MAX_UNCHECKED_BYTES = 8 << 30


def npz_headers(path, limit: int = MAX_UNCHECKED_BYTES) -> dict[str, tuple[tuple[int, ...], np.dtype, int]]:
    """name -> (shape, dtype, uncompressed member size) of every array in an ``.npz``, read from the
    zip directory and the ``.npy`` headers only: nothing is decompressed beyond the headers, and
    the members' declared sizes together stay within ``limit`` bytes."""
    import zipfile

    out = {}
    try:
        infos = zip_members(path, Budget(limit, str(path)), what="onespec .npz state")
        with zipfile.ZipFile(path) as zf:
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise StateError(f"{path}: member {info.filename!r} is not a .npy array")
                with zf.open(info) as f:
                    version = np.lib.format.read_magic(f)
                    if version not in ((1, 0), (2, 0)):
                        raise StateError(f"{info.filename}: unsupported .npy format version {version}")
                    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                        np.lib.format.read_array_header_2_0
                    shape, fortran, dtype = reader(f)
                    header_len = f.tell() if hasattr(f, "tell") else None
                if dtype.hasobject or dtype.kind not in "fiub":
                    raise StateError(f"{path}: array {info.filename[:-4]!r} has dtype {dtype}, not a number type")
                nbytes = math.prod(shape) * dtype.itemsize
                if info.file_size < nbytes or (header_len is not None and info.file_size != header_len + nbytes):
                    raise StateError(f"{path}: array {info.filename[:-4]!r} declares {shape} {dtype} but its member "
                                     f"holds {info.file_size} bytes")
                out[info.filename[:-4]] = (tuple(shape), dtype, info.file_size)
    except (StateError, ReadError) as err:
        raise StateError(str(err)) from None
    except Exception as err:
        raise StateError(f"{path} is not a readable onespec .npz state ({type(err).__name__}: {err})") from None
    return out


def load_state(path, spec: ModelSpec | None = None, finite: bool = True) -> dict[str, np.ndarray]:
    """Load a canonical ``.npz`` state; a truncated or foreign file raises :class:`StateError`.

    The file is untrusted: no pickled objects; every array's name, shape and dtype are checked
    from the headers before anything is decompressed -- against ``spec``'s layout when given
    (so the file can never allocate more than the spec's tensors need), else against
    ``MAX_UNCHECKED_BYTES`` in all. ``finite``: a NaN or infinity in a float array is refused,
    naming the array (``False`` for files that may hold them, such as recorded outputs)."""
    if isinstance(path, (str, os.PathLike)) and not os.path.exists(path):
        raise MissingFileError(path)
    heads = npz_headers(path)
    if hasattr(path, "seek"):
        path.seek(0)
    if spec is not None:
        check_state(spec, {k: _Shaped(s, d) for k, (s, d, _) in heads.items()}, what=path)
    return _npz_arrays(path, list(heads), finite)


def load_partial(path, shapes: Mapping[str, tuple], finite: bool = True) -> dict[str, np.ndarray]:
    """Every array of an ``.npz`` for a partial load (transfer learning): the arrays named in
    ``shapes`` with as many elements as asked are read; any other array is returned as a
    read-only zero view of its declared shape and dtype (``numpy.broadcast_to``), which costs no
    memory, so the caller can list it as skipped or unexpected. Nothing beyond what ``shapes``
    declares is ever decompressed, whatever the file's headers say."""
    if not os.path.exists(path):
        raise MissingFileError(path)
    heads = npz_headers(path)
    wanted = [k for k, (s, _, _) in heads.items() if k in shapes and math.prod(s) == math.prod(shapes[k])]
    out = {k: np.broadcast_to(np.zeros((), d), s) for k, (s, d, _) in heads.items()}
    out.update(_npz_arrays(path, wanted, finite))
    return out


def _npz_arrays(path, names, finite: bool) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in names}
    except Exception as err:
        raise StateError(f"{path} is not a readable onespec .npz state ({type(err).__name__}: {err})") from None
    if finite:
        checked(arrays, path)
    return arrays


def checked(tensors: Mapping[str, np.ndarray], where) -> Mapping[str, np.ndarray]:
    """``tensors``, after refusing NaN/inf in any float tensor (:class:`StateError` naming it)."""
    try:
        check_finite(tensors, str(where))
    except ReadError as err:
        raise StateError(str(err)) from None
    return tensors


class _Shaped:
    """Shape and dtype of an array not read yet (what ``check_state`` looks at)."""

    def __init__(self, shape, dtype):
        self.shape, self.dtype = tuple(shape), np.dtype(dtype)



def _shape_of(v) -> tuple:
    return tuple(v.shape) if hasattr(v, "shape") else tuple(np.shape(v))


def _dtype_of(v) -> np.dtype:
    return np.dtype(v.dtype) if isinstance(getattr(v, "dtype", None), np.dtype) else np.asarray(v).dtype
