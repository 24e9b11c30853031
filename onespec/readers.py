"""Readers of users' files with a byte budget, checked before anything is allocated.

Files from users are hostile: a small file must not grow into gigabytes in memory, and nothing
in it may run code. Every format onespec reads goes through one function here:

- :func:`read_bytes`: a whole file, refused when it is larger than the budget (before reading).
- :func:`unpickle`: a pickle evaluated by a small interpreter over ``pickletools.genops`` that
  knows only data opcodes and the globals the caller admits, each admitted global turned into
  a checked constructor (:data:`NUMPY_ARRAYS`: numpy arrays rebuilt from the bytes the file holds,
  ``_codecs.encode`` with latin-1 only). Every object it builds is charged to the budget before it
  is made, so memo references (one string encoded a million times) cannot multiply memory.
- :func:`read_pickle`: a whole pickled file of numpy arrays and plain data (both of the above).
- :func:`zip_members`: the directory of a zip file (``.npz``, torch's zip checkpoints) with every
  member's declared size charged to the budget, without decompressing anything.
- :func:`check_finite`: NaN/inf in a float tensor named.

A budget is a number of bytes: the callers derive it from what the file may hold (a model's
declared tensors, a multiple of the file's own size) and name it in the refusal.
"""
from __future__ import annotations

import io
import math
import os
import pickletools
import re
import warnings
from collections import OrderedDict
from typing import Callable, Mapping

import numpy as np

from .errors import MissingFileError, OnespecError

MiB = 1 << 20


class ReadError(OnespecError, ValueError):
    """A file is refused: it is malformed, declares more than its budget, or asks for code."""


class Budget:
    """Bytes a reader may still allocate for one file; :meth:`spend` refuses before allocation."""

    def __init__(self, limit: int, what: str):
        self.limit, self.used, self.what = int(limit), 0, what

    def spend(self, n: int, why: str) -> None:
        if n < 0 or self.used + n > self.limit:
            raise ReadError(f"{self.what}: {why} needs {n} bytes, over its budget of "
                            f"{_size(self.limit)} ({_size(self.used)} already used)")
        self.used += n


def _size(n: int) -> str:
    return f"{n / MiB:.1f} MiB" if n >= MiB else f"{n} bytes"


def read_bytes(path: str, limit: int, what: str = "file") -> bytes:
    """The bytes of ``path``; a file larger than ``limit`` is refused before it is read."""
    if not os.path.isfile(path):
        raise MissingFileError(path, f"no such {what}")
    size = os.path.getsize(path)
    if size > limit:
        raise ReadError(f"{path}: {what} of {_size(size)} is larger than its budget of {_size(limit)}")
    with open(path, "rb") as f:  # read(n) allocates n bytes first: ask for the size seen
        data = f.read(size)
    if len(data) != size:
        raise ReadError(f"{path}: {what} changed size while it was read")
    return data


# ---------------------------------------------------------------------------------------------
# pickles

class _Mark:
    pass


_MARK = _Mark()


class Stub:
    """An object an admitted constructor made that the pickle completes with BUILD (a numpy
    array, a dtype): ``finish(state, budget)`` returns the real object."""

    def __init__(self, finish: Callable, value=None):
        self.finish, self.value, self.done = finish, value, False


class Opaque:
    """What a scan-only constructor returns: the pickle is checked, not built (torch checkpoints,
    which the framework itself then loads)."""


OPAQUE = Opaque()


def _resolve(v):
    return v.value if isinstance(v, Stub) and v.done else v


_DTYPE = re.compile(r"[<>|=]?([biuf])(\d{1,2})")


def _dtype(code, align=False, copy=True):
    """``numpy.dtype(code, align, copy)`` for plain numbers only (no objects, fields, strings)."""
    if not isinstance(code, str) or not _DTYPE.fullmatch(code):
        raise ReadError(f"dtype {code!r} is not a plain number type")
    base = np.dtype(code)

    def finish(state, budget):
        # numpy's dtype state: (version, byte order, subdtype, names, fields, elsize, alignment, flags)
        if (not isinstance(state, tuple) or len(state) < 8 or state[0] not in (3, 4) or state[1] not in "<>|="
                or any(s is not None for s in state[2:5])):
            raise ReadError(f"dtype {code!r}: state {str(state)[:60]} is not a plain number type's")
        return base.newbyteorder(state[1]) if state[1] in "<>" else base

    return Stub(finish, base)


def _reconstruct(cls, shape, typecode):
    """``numpy.core.multiarray._reconstruct(ndarray, (0,), b'b')``: an array completed by BUILD
    from the bytes in the file; nothing is allocated until those bytes are there."""
    if cls is not np.ndarray:
        raise ReadError(f"_reconstruct of {cls!r}: only numpy.ndarray is admitted")

    def finish(state, budget):
        if not (isinstance(state, tuple) and len(state) == 5):
            raise ReadError("array state is not (version, shape, dtype, fortran, data)")
        _, shp, dt, fortran, raw = state
        dt = _resolve(dt)
        if not isinstance(dt, np.dtype) or dt.hasobject or dt.kind not in "biuf":
            raise ReadError(f"array dtype {dt!r} is not a plain number type")
        if not (isinstance(shp, tuple) and all(type(d) is int and 0 <= d < 1 << 48 for d in shp)):
            raise ReadError(f"array shape {str(shp)[:60]} is not a tuple of sizes")
        if not isinstance(raw, (bytes, bytearray)):
            raise ReadError("array data is not bytes (an object array)")
        n = math.prod(shp) * dt.itemsize
        if n != len(raw):
            raise ReadError(f"array {shp} {dt} declares {n} bytes but holds {len(raw)}")
        budget.spend(n, f"array {shp} {dt}")
        return np.frombuffer(raw, dt).reshape(shp, order="F" if fortran else "C").copy()

    return Stub(finish)


def _encode(obj, encoding="utf-8", *rest, budget=None):
    """``_codecs.encode(str, 'latin1')``, how Python 3 pickles ``bytes`` at protocol 2; any other
    codec (``hex``, ``zlib``) would let chained calls grow a small file without bound."""
    codec = str(encoding).lower().replace("-", "").replace("_", "")
    if rest or not isinstance(obj, str) or codec not in ("latin1", "iso88591"):
        raise ReadError(f"_codecs.encode with {str(encoding)[:20]!r}: only latin-1 strings are admitted")
    budget.spend(len(obj), "an encoded string")
    return obj.encode("latin-1")


def _ordered_dict(items=()):
    if items != () and not isinstance(items, list):
        raise ReadError("OrderedDict from something other than a list")
    return OrderedDict(items)


# the globals a pickle of numpy arrays in dicts and lists needs
NUMPY_ARRAYS: dict[tuple[str, str], Callable | None] = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): None,               # only as _reconstruct's argument
    ("numpy", "dtype"): _dtype,
    ("_codecs", "encode"): _encode,
    ("collections", "OrderedDict"): _ordered_dict,
}
_GLOBAL_VALUES = {("numpy", "ndarray"): np.ndarray}

_PUSH = {"NONE": lambda a: None, "NEWTRUE": lambda a: True, "NEWFALSE": lambda a: False,
         "EMPTY_DICT": lambda a: {}, "EMPTY_LIST": lambda a: [], "EMPTY_TUPLE": lambda a: ()}
_SCALARS = {"BININT", "BININT1", "BININT2", "LONG1", "BINFLOAT", "SHORT_BINUNICODE", "BINUNICODE",
            "BINUNICODE8", "SHORT_BINBYTES", "BINBYTES", "BINBYTES8", "SHORT_BINSTRING", "BINSTRING"}
_NOOPS = {"PROTO", "FRAME"}


def unpickle(data, admitted: Mapping[tuple[str, str], Callable | None], budget: Budget,
             persistent: Callable | None = None):
    """Evaluate the pickle ``data`` (bytes, or a binary stream such as an ``mmap``: read from its
    position to the pickle's end, where it is left) with the globals ``admitted`` only
    ((module, name) -> the constructor called in its place, or ``None`` for a global usable only
    as an argument), every made object charged to ``budget``. ``persistent``: called with each
    persistent id. Python 2 ``str`` loads as ``bytes``. Raises :class:`ReadError` naming the
    refused global or opcode."""
    try:
        with warnings.catch_warnings():  # genops decodes text opcodes (refused here) with escape_decode
            warnings.simplefilter("ignore", DeprecationWarning)
            return _run(data, admitted, budget, persistent)
    except ReadError as err:
        msg = str(err)
    except RecursionError:
        msg = "pickle nests too deeply"
    except Exception as err:  # malformed opcodes, wrong argument types, unhashable keys
        msg = f"malformed pickle ({type(err).__name__}: {str(err)[:120]})"
    raise ReadError(msg if msg.startswith(budget.what) else f"{budget.what}: {msg}") from None


def _run(data, admitted, budget, persistent):
    vm = _Machine(admitted, budget, persistent)
    stream = io.BytesIO(data) if isinstance(data, (bytes, bytearray)) else data
    for op, arg, pos in pickletools.genops(stream):
        name = op.name
        if name == "STOP":
            if len(vm.stack) != 1:
                raise ReadError("pickle ends with an unbalanced stack")
            return _resolve(vm.stack[0])
        if name in _NOOPS:
            continue
        if name in _SCALARS:
            vm.stack.append(arg.encode("latin-1") if name.endswith("BINSTRING") else arg)
        elif name in _PUSH:
            vm.stack.append(_PUSH[name](arg))
        elif name in _Machine.OPS:
            getattr(vm, _Machine.OPS[name])(name, arg)
        else:
            raise ReadError(f"opcode {name} at byte {pos} is not admitted (data pickles only)")
    raise ReadError("pickle ends without STOP")


class _Machine:
    """The pickle machine's stack, memo and marks, and the opcodes that combine objects."""
    OPS = {"MARK": "mark", "TUPLE": "sequence", "LIST": "sequence", "TUPLE1": "small_tuple",
           "TUPLE2": "small_tuple", "TUPLE3": "small_tuple", "APPEND": "append", "APPENDS": "append",
           "SETITEM": "setitem", "SETITEMS": "setitem", "DICT": "setitem", "BINPUT": "put",
           "LONG_BINPUT": "put", "MEMOIZE": "put", "BINGET": "get", "LONG_BINGET": "get",
           "GLOBAL": "global_", "STACK_GLOBAL": "global_", "REDUCE": "reduce", "BUILD": "build",
           "BINPERSID": "persid", "POP": "pop"}

    MAX_DEPTH = 64  # containers in containers: deeper ones would overflow C recursion (hash, repr)

    def __init__(self, admitted, budget, persistent):
        self.admitted, self.budget, self.persistent = admitted, budget, persistent
        self.stack, self.memo, self.marks, self.depth = [], {}, [], {}

    def _nest(self, obj, items):
        """Record ``obj``'s nesting depth (it holds ``items``); refuse past ``MAX_DEPTH``."""
        d = max([self.depth.get(id(obj), 1)] + [self.depth.get(id(v), 0) + 1 for v in items])
        if d > self.MAX_DEPTH:
            raise ReadError(f"containers nested deeper than {self.MAX_DEPTH}")
        self.depth[id(obj)] = d
        return obj

    def _pop_mark(self) -> list:
        at = self.marks.pop()
        items = self.stack[at + 1:]
        del self.stack[at:]
        return items

    def mark(self, name, arg):
        self.marks.append(len(self.stack))
        self.stack.append(_MARK)

    def sequence(self, name, arg):
        items = self._pop_mark()
        self.budget.spend(8 * len(items), "a tuple or list")
        self.stack.append(self._nest(tuple(items) if name == "TUPLE" else list(items), items))

    def small_tuple(self, name, arg):
        k = int(name[-1])
        items = tuple(self.stack[-k:])
        del self.stack[-k:]
        self.stack.append(self._nest(items, items))

    def append(self, name, arg):
        items = [self.stack.pop()] if name == "APPEND" else self._pop_mark()
        target = self.stack[-1]
        self.budget.spend(8 * len(items), "list items")
        if isinstance(target, list):
            self._nest(target, items)
            target.extend(_resolve(v) for v in items)
        elif not isinstance(target, Opaque):
            raise ReadError(f"APPEND to a {type(target).__name__}")

    def setitem(self, name, arg):
        if name == "SETITEM":
            v = self.stack.pop()
            pairs = [self.stack.pop(), v]
        else:
            pairs = self._pop_mark()
        if name == "DICT":
            self.stack.append({})
        target = self.stack[-1]
        self.budget.spend(32 * len(pairs), "dict items")
        if isinstance(target, dict) and not len(pairs) % 2:
            self._nest(target, pairs)
            for k, v in zip(pairs[::2], pairs[1::2]):
                target[_resolve(k)] = _resolve(v)
        elif not isinstance(target, Opaque):
            raise ReadError(f"SETITEM on a {type(target).__name__}")

    def put(self, name, arg):
        self.memo[len(self.memo) if name == "MEMOIZE" else arg] = self.stack[-1]

    def get(self, name, arg):
        self.stack.append(_resolve(self.memo[arg]))

    def global_(self, name, arg):
        if name == "GLOBAL":
            module, _, qual = arg.partition(" ")
        else:
            qual = self.stack.pop()
            module = self.stack.pop()
        key = (str(module), str(qual))
        if key not in self.admitted:
            raise ReadError(f"refusing to load {key[0]}.{key[1]}: the file may hold only data")
        self.stack.append(Global(key, self.admitted[key]))

    def reduce(self, name, arg):
        args = self.stack.pop()
        fn = self.stack.pop()
        if not isinstance(fn, Global) or fn.call is None or not isinstance(args, tuple):
            raise ReadError(f"refusing to call {fn!r}")
        args = tuple(_GLOBAL_VALUES.get(a.key, a) if isinstance(a, Global) else _resolve(a) for a in args)
        self.stack.append(fn.call(*args, budget=self.budget) if fn.call is _encode else fn.call(*args))

    def build(self, name, arg):
        state = _resolve(self.stack.pop())
        obj = self.stack[-1]
        if isinstance(obj, Stub) and not obj.done:
            obj.value, obj.done = obj.finish(state, self.budget), True
            self.stack[-1] = obj.value
        elif not isinstance(obj, Opaque):
            raise ReadError(f"BUILD on a {type(obj).__name__}")

    def persid(self, name, arg):
        if self.persistent is None:
            raise ReadError("persistent ids are not admitted in this file")
        self.stack.append(self.persistent(self.stack.pop()))

    def pop(self, name, arg):
        self.stack.pop()


class Global:
    """An admitted global as the pickle names it (``key``: (module, name)); what a scan-only
    pickle's persistent ids hold in place of classes."""

    def __init__(self, key, call):
        self.key, self.call = key, call

    def __repr__(self):
        return ".".join(self.key)


def read_pickle(path: str, limit: int, what: str):
    """A pickled file of plain data and numpy arrays (:data:`NUMPY_ARRAYS`): at most ``limit``
    bytes on disk, and twice its size (plus 1 MiB) in memory."""
    data = read_bytes(path, limit, what)
    return unpickle(data, NUMPY_ARRAYS, Budget(2 * len(data) + MiB, path))


def scan_only(names) -> dict[tuple[str, str], Callable]:
    """Admitted globals for a pickle that is only checked: each call returns :data:`OPAQUE`."""
    return {k: (lambda *a, **kw: OPAQUE) for k in names}


# ---------------------------------------------------------------------------------------------
# zip containers

def zip_members(path, budget: Budget, stored_only: bool = False, what: str = "zip container") -> list:
    """``zipfile.ZipInfo`` of every member, each declared (uncompressed) size charged to
    ``budget``; ``stored_only``: compressed members refused (torch writes none, so one is a
    decompression bomb or a foreign file)."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ReadError(f"{path} is not a readable {what} ({err})") from None
    budget.spend(256 * len(infos), f"{len(infos)} zip members")
    for info in infos:
        if stored_only and info.compress_type != zipfile.ZIP_STORED:
            raise ReadError(f"{path}: member {info.filename!r} is compressed; this format stores its data uncompressed")
        budget.spend(info.file_size, f"member {info.filename!r}")
    return infos


# ---------------------------------------------------------------------------------------------
def check_finite(tensors: Mapping[str, np.ndarray], where: str) -> None:
    """Refuse NaN or infinity in any float tensor, naming the first such tensor and the count."""
    for name, a in tensors.items():
        a = np.asarray(a)
        if a.dtype.kind in "fc" and a.size and not np.isfinite(a).all():
            bad = int(a.size - np.count_nonzero(np.isfinite(a)))
            raise ReadError(f"{where}: tensor {name} holds {bad} NaN/inf value{'s' * (bad > 1)} of {a.size}")
