"""Data sources: where samples come from, decoded once in onespec for every framework.

A source is a list of samples with integer labels and class names. Image sources hand out
``uint8`` HWC arrays decoded by Pillow (RGB); array sources (hyperspectral patches) hand out
``float32`` arrays already shaped like the model input. Everything is checked when the source
is opened, before any training starts: a missing or empty folder, a class folder without
images, an image that does not decode completely or is larger than ``MAX_IMAGE_PIXELS`` (named),
an image in both splits, a malformed CIFAR batch or ``.mat`` cube, labels that are not integers
of a known class. Every reader has a byte budget checked before it allocates (``onespec.readers``).

Sources shipped:
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), as RGB;
  the default, needs no download.
- ``imagefolder``: ``root/train/<class>/*`` and ``root/val/<class>/*``, or ``root/<class>/*``
  split with a stratified ratio (torchvision ``ImageFolder`` layout).
- ``cifar10``: the python batches of CIFAR-10 (``cifar-10-batches-py``: ``data_batch_1..5``,
  ``test_batch``, ``batches.meta``), read with onespec's budgeted unpickler (arrays, lists, dicts).
- ``mat``: an Indian Pines-style hyperspectral cube (``H x W x bands`` in a MATLAB v5/v7 ``.mat``,
  read by onespec's own reader) and its ground-truth map; PCA (whitened) to ``pca`` components,
  ``patch x patch`` windows around each labelled pixel with a zero-padded margin, label 0 dropped
  (HybridSN, Roy et al. 2019, Sec. III).
"""
from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import MissingFileError, OnespecError
from ..readers import MiB, Budget, ReadError, read_bytes, read_pickle

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
# Budgets of what one file may make onespec allocate (each refusal names its budget).
MAX_IMAGE_BYTES = 256 * MiB      # one image file
MAX_IMAGE_PIXELS = 64 << 20      # one decoded image (8192 x 8192); Pillow's own bomb limit is higher
MAX_BATCH_BYTES = 1024 * MiB     # one CIFAR python batch file (the real ones are 30 MiB)
MAX_MAT_BYTES = 4096 * MiB       # the arrays a .mat declares, decompressed
MAX_CLASSES = 65536              # labels of a .mat ground truth (0 is unlabelled)


class DataError(OnespecError, ValueError):
    """A data set cannot be used: the message names the file or folder and what is wrong."""


@dataclass
class Source:
    """Samples of one split. ``items`` are file paths (images) or arrays; ``labels`` int64."""
    kind: str                      # "image" (uint8 HWC from Pillow) | "array" (float32, model-shaped)
    items: list
    labels: np.ndarray
    classes: list[str]
    name: str = ""
    root: str = field(default="", repr=False)
    hashes: list = field(default_factory=list, repr=False)   # sha256 of each image file (folders)

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int) -> np.ndarray:
        item = self.items[i]
        if isinstance(item, str):
            return decode(item)
        return item

    def subset(self, idx) -> "Source":
        idx = np.asarray(idx, dtype=np.int64)
        hashes = [self.hashes[i] for i in idx] if self.hashes else []
        return Source(self.kind, [self.items[i] for i in idx], self.labels[idx], self.classes, self.name,
                      self.root, hashes)


def decode(path: str) -> np.ndarray:
    """RGB ``uint8`` HWC array of an image file; names the file when Pillow cannot read it."""
    return _decode_bytes(path, read_bytes(path, MAX_IMAGE_BYTES, "image"))


def _decode_bytes(path: str, data: bytes) -> np.ndarray:
    import io
    import warnings

    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel budget below rules
            im = Image.open(io.BytesIO(data))
        with im:
            w, h = im.size
            if w < 1 or h < 1:
                raise DataError(f"{path}: empty image ({w}x{h})")
            if w * h > MAX_IMAGE_PIXELS:
                raise DataError(f"{path}: {w}x{h} image is larger than {MAX_IMAGE_PIXELS >> 20}M pixels")
            return np.asarray(im.convert("RGB"))
    except DataError:
        raise
    except Exception as err:  # Pillow raises OSError, SyntaxError, DecompressionBombError, struct.error ...
        raise DataError(f"{path}: unreadable image ({type(err).__name__}: {err})") from None


def _check_image(path: str) -> str:
    """Decode ``path`` completely (a truncated file is found here, not when its batch comes);
    the sha256 of its bytes."""
    try:
        data = read_bytes(path, MAX_IMAGE_BYTES, "image")
    except ReadError as err:
        raise DataError(str(err)) from None
    _decode_bytes(path, data)
    return hashlib.sha256(data).hexdigest()


def stratified_split(labels: np.ndarray, test_ratio: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(train indices, test indices), every class in the same proportion (scikit-learn)."""
    from sklearn.model_selection import train_test_split

    if not 0 < test_ratio < 1:
        raise DataError(f"split ratio {test_ratio} must be between 0 and 1")
    idx = np.arange(len(labels))
    try:
        tr, te = train_test_split(idx, test_size=test_ratio, random_state=seed, stratify=labels)
    except ValueError as err:
        raise DataError(f"cannot split {len(labels)} samples stratified at {test_ratio}: {err}") from None
    return np.sort(tr), np.sort(te)


def infer_source(path: str) -> str:
    """The source a ``--data`` path holds: ``mat`` (a ``.mat`` cube), ``cifar10`` (a folder of
    CIFAR-10 python batches), ``imagefolder`` (a folder of class folders, or of ``train/`` and
    ``val/``); anything else is refused, so a path is never silently ignored for the default."""
    if not os.path.exists(path):
        raise MissingFileError(path, "no such data folder or file")
    if os.path.isfile(path):
        if path.lower().endswith(".mat"):
            return "mat"
        raise DataError(f"{path}: cannot tell what data this file holds (a .mat cube, or a folder of "
                        "class folders or CIFAR-10 batches); name the source (--source)")
    names = set(os.listdir(path))
    if "batches.meta" in names or "data_batch_1" in names:
        return "cifar10"
    if any(not n.startswith(".") and os.path.isdir(os.path.join(path, n)) for n in names):
        return "imagefolder"
    raise DataError(f"{path}: holds neither class folders (imagefolder) nor CIFAR-10 python batches; "
                    "name the source (--source)")


# ---------------------------------------------------------------------------------------------
def digits(seed: int = 0, test_ratio: float = 0.2) -> tuple[Source, Source]:
    """scikit-learn's bundled digits as RGB uint8 8x8 images, stratified train/test split."""
    from sklearn.datasets import load_digits

    d = load_digits()
    img = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)           # 0..16 -> 0..255
    items = list(np.repeat(img[..., None], 3, axis=-1))                  # gray -> RGB, HWC
    src = Source("image", items, d.target.astype(np.int64), [str(c) for c in range(10)], "digits")
    tr, te = stratified_split(src.labels, test_ratio, seed)
    return src.subset(tr), src.subset(te)


def _images_under(folder: str, seen: set[str]) -> list[str]:
    """Image files under ``folder``, symlinks followed but every real folder walked once
    (``seen``: real paths already walked, shared by the whole scan), so a link to an ancestor
    neither repeats images nor makes the walk exponential."""
    out, todo = [], [folder]
    while todo:
        d = todo.pop()
        real = os.path.realpath(d)
        if real in seen and d != folder:
            continue
        seen.add(real)
        try:
            entries = list(os.scandir(d))
        except OSError as err:
            raise DataError(f"{d}: cannot list the folder ({err.strerror})") from None
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_dir():
                todo.append(e.path)
            elif e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS):
                out.append(e.path)
    return sorted(out)


def _scan_folder(root: str) -> Source:
    if not os.path.isdir(root):
        raise MissingFileError(root, "no such data folder")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    # the root and every class folder count as walked: a link into another class is not followed
    seen = {os.path.realpath(p) for p in [root] + [os.path.join(root, c) for c in classes]}
    items, labels, hashes, owner = [], [], [], {}
    for c, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = _images_under(folder, seen)
        if not files:
            raise DataError(f"{folder}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        for f in files:
            real = os.path.realpath(f)
            if real in owner:
                raise DataError(f"{f}: the same file as {owner[real]} (one image counted twice)")
            owner[real] = f
            hashes.append(_check_image(f))
        items += files
        labels += [c] * len(files)
    return Source("image", items, np.asarray(labels, np.int64), classes, os.path.basename(root.rstrip("/")),
                  root, hashes)


def _refuse_overlap(root: str, train: Source, val: Source) -> None:
    """A file in both splits (the same real path or the same bytes) would make validation
    measure memorisation: refused, naming both files."""
    seen = {}
    for f, h in zip(train.items, train.hashes):
        seen.setdefault(os.path.realpath(f), f)
        seen.setdefault(h, f)
    for f, h in zip(val.items, val.hashes):
        other = seen.get(os.path.realpath(f)) or seen.get(h)
        if other is not None:
            raise DataError(f"{root}: {f} (validation) is the same image as {other} (training)")


def image_folder(root: str, seed: int = 0, test_ratio: float = 0.2) -> tuple[Source, Source]:
    """``root/train`` + ``root/val`` when both exist, else ``root/<class>`` split stratified.
    Every image is decoded here; an image in both splits is refused."""
    if not os.path.isdir(root):
        raise MissingFileError(root, "no such data folder")
    train, val = os.path.join(root, "train"), os.path.join(root, "val")
    if os.path.isdir(train) and os.path.isdir(val):
        tr, va = _scan_folder(train), _scan_folder(val)
        if tr.classes != va.classes:
            raise DataError(f"{root}: train/ and val/ have different class folders "
                            f"({len(tr.classes)} vs {len(va.classes)})")
    else:
        src = _scan_folder(root)
        a, b = stratified_split(src.labels, test_ratio, seed)
        tr, va = src.subset(a), src.subset(b)
    _refuse_overlap(root, tr, va)
    return tr, va


def _cifar_batch(path: str) -> dict:
    """A CIFAR-10 python batch: a dict of bytes keys, a uint8 array and lists, evaluated by
    onespec's budgeted unpickler (numpy arrays and latin-1 strings only; no code runs)."""
    try:
        d = read_pickle(path, MAX_BATCH_BYTES, "CIFAR-10 batch")
    except ReadError as err:
        raise DataError(str(err)) from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (a {type(d).__name__})")
    return {(k.decode("latin-1") if isinstance(k, bytes) else str(k)): v for k, v in d.items()}


def _cifar_labels(path: str, labels, n: int, classes: int) -> np.ndarray:
    if not isinstance(labels, list) or len(labels) != n or not all(type(v) is int for v in labels):
        raise DataError(f"{path}: expected 'labels', a list of {n} integers")
    y = np.asarray(labels, np.int64)
    if n and (y.min() < 0 or y.max() >= classes):
        raise DataError(f"{path}: label {int(y.min() if y.min() < 0 else y.max())} outside the "
                        f"{classes} classes of batches.meta")
    return y


def cifar10(root: str) -> tuple[Source, Source]:
    """CIFAR-10 python batches: 5 training batches and the test batch, 32x32 RGB."""
    if not os.path.isdir(root):
        raise MissingFileError(root, "no such data folder")
    meta = _cifar_batch(os.path.join(root, "batches.meta"))
    names = meta.get("label_names")
    if not isinstance(names, list) or not names or not all(isinstance(c, (bytes, str)) for c in names):
        raise DataError(f"{os.path.join(root, 'batches.meta')}: expected 'label_names', a list of class names")
    classes = [c.decode("utf-8", "replace") if isinstance(c, bytes) else c for c in names]
    out = []
    for names in ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]):
        xs, ys = [], []
        for n in names:
            path = os.path.join(root, n)
            d = _cifar_batch(path)
            data, labels = d.get("data"), d.get("labels")
            if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
                raise DataError(f"{path}: expected 'data' uint8 [N, 3072]")
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(_cifar_labels(path, labels, len(data), len(classes)))
        x, y = np.concatenate(xs), np.concatenate(ys)
        out.append(Source("image", list(x), y, classes, "cifar10", root))
    return out[0], out[1]


# MATLAB v5 (MAT-File Format, MathWorks 2013): data element types -> numpy, numeric classes -> numpy
_MI = {1: "i1", 2: "u1", 3: "i2", 4: "u2", 5: "i4", 6: "u4", 7: "f4", 9: "f8", 12: "i8", 13: "u8"}
_MX = {6: "f8", 7: "f4", 8: "i1", 9: "u1", 10: "i2", 11: "u2", 12: "i4", 13: "u4", 14: "i8", 15: "u8"}
_MI_MATRIX, _MI_COMPRESSED = 14, 15


def _mat_elements(buf, end: str, path: str, padded: bool):
    """(type, data) of the data elements in ``buf``; small elements (data in the tag) included.
    Sub-elements of a matrix are padded to 8 bytes; top-level ones are not (compressed ones)."""
    pos = 0
    while pos + 8 <= len(buf):
        t, n = struct.unpack_from(end + "II", buf, pos)
        if t >> 16:
            yield t & 0xFFFF, buf[pos + 4:pos + 4 + min(t >> 16, 4)]
            pos += 8
            continue
        if pos + 8 + n > len(buf):
            raise DataError(f"{path}: truncated MATLAB data element at byte {pos}")
        yield t, buf[pos + 8:pos + 8 + n]
        pos += 8 + n + (-n % 8 if padded else 0)


def _mat_matrix(buf, end: str, path: str, budget: Budget):
    """(name, numeric array or None for another class) of one miMATRIX element's contents."""
    parts = _mat_elements(buf, end, path, padded=True)
    try:
        (_, flags), (_, dims), (_, name) = next(parts), next(parts), next(parts)
    except StopIteration:
        raise DataError(f"{path}: MATLAB matrix without flags, dimensions and name") from None
    if len(flags) < 4:
        raise DataError(f"{path}: MATLAB matrix flags are truncated")
    word = struct.unpack_from(end + "I", flags)[0]
    shape = tuple(int(d) for d in np.frombuffer(dims[:len(dims) // 4 * 4], end + "i4"))
    name = bytes(name).decode("latin-1")
    if word & 0xFF not in _MX:
        return name, None
    if word & 0x800 or any(d < 0 for d in shape):
        raise DataError(f"{path}: variable {name!r} is complex or has negative dimensions {shape}")
    t, data = next(parts, (None, b""))
    n = int(np.prod(shape, dtype=object))
    if t not in _MI or len(data) != n * np.dtype(_MI[t]).itemsize:
        raise DataError(f"{path}: variable {name!r} declares {shape} but holds {len(data)} bytes of type {t}")
    budget.spend(n * np.dtype(_MX[word & 0xFF]).itemsize, f"variable {name!r} {shape}")
    return name, np.frombuffer(data, end + _MI[t]).astype(_MX[word & 0xFF]).reshape(shape, order="F")


def _mat_declared(head: bytes, end: str) -> int:
    """Bytes a compressed matrix may inflate to, from its own header (the dimensions
    sub-element): 8 bytes for every declared element, plus 1 MiB for name, flags and padding."""
    try:  # the element's tag (8 bytes), its flags (16), then its dimensions
        _, dims = next(_mat_elements(head[24:], end, "", True))
        dims = np.frombuffer(dims[:len(dims) // 4 * 4], end + "i4")
    except (StopIteration, DataError, struct.error):
        return MiB
    return int(np.prod([max(int(d), 0) for d in dims], dtype=object)) * 8 + MiB


def _mat_inflate(path: str, data, end: str, budget: Budget) -> bytes:
    """A compressed element's contents, decompressed no further than its header declares."""
    z = zlib.decompressobj()
    try:
        head = z.decompress(data, 4096)
        limit = _mat_declared(head, end)
        budget.spend(limit, "a compressed variable")
        rest = z.decompress(z.unconsumed_tail, limit - len(head) + 1)
    except zlib.error as err:
        raise DataError(f"{path}: corrupt compressed variable ({err})") from None
    if len(head) + len(rest) > limit:
        raise DataError(f"{path}: a variable decompresses to more than the {limit >> 20} MiB its header "
                        "declares (a decompression bomb or a corrupt file)")
    return head + rest


def _mat_variables(path: str) -> dict:
    """name -> numeric array (or None) of every variable of a MATLAB v5 ``.mat`` file, read by
    onespec: each compressed variable inflated no further than its header declares, every
    array charged to ``MAX_MAT_BYTES`` before it is made. (scipy.io.loadmat crashes the
    process on some corrupt files.)"""
    try:
        raw = read_bytes(path, MAX_MAT_BYTES, ".mat file")
    except ReadError as err:
        raise DataError(str(err)) from None
    if len(raw) < 128 or raw[126:128] not in (b"IM", b"MI"):
        raise DataError(f"{path}: not a MATLAB v5/v7 .mat file (v4 and v7.3/HDF5 files: save with -v7)")
    end, budget, out = ("<" if raw[126:128] == b"IM" else ">"), Budget(MAX_MAT_BYTES, path), {}
    for t, data in _mat_elements(memoryview(raw)[128:], end, path, padded=False):
        if t == _MI_COMPRESSED:
            inner = _mat_inflate(path, data, end, budget)
            t, n = struct.unpack_from(end + "II", inner) if len(inner) >= 8 else (0, 0)
            data = memoryview(inner)[8:8 + n]
        if t == _MI_MATRIX and len(data):
            name, value = _mat_matrix(data, end, path, budget)
            out[name] = value
    return out


def _mat_array(path: str, ndim: int) -> np.ndarray:
    """The one numeric ``ndim``-d array of a ``.mat`` file."""
    if not os.path.isfile(path):
        raise MissingFileError(path, "no such .mat file")
    variables = _mat_variables(path)
    mine = [k for k, v in variables.items() if v is not None and v.ndim == ndim]
    if len(mine) != 1:
        raise DataError(f"{path}: expected exactly one numeric {ndim}-d array, found {mine or 'none'} "
                        f"(all: {list(variables)[:8]})")
    return variables[mine[0]]


def _mat_labels(path: str, gt: np.ndarray) -> np.ndarray:
    """Integral labels 0 (unlabelled) .. ``MAX_CLASSES``: a fractional, negative, non-finite or
    absurd label is refused rather than truncated into another class."""
    if gt.dtype.kind == "f":
        bad = ~np.isfinite(gt) | (gt != np.round(gt))
        if bad.any():
            r, c = np.argwhere(bad)[0]
            raise DataError(f"{path}: label {gt[r, c]!r} at ({r}, {c}) is not an integer class")
    if gt.size and (gt.min() < 0 or gt.max() > MAX_CLASSES):
        v = gt.min() if gt.min() < 0 else gt.max()
        r, c = np.argwhere(gt == v)[0]
        raise DataError(f"{path}: label {v} at ({r}, {c}) is outside 0..{MAX_CLASSES} (0: unlabelled)")
    return gt.astype(np.int64)


def mat_cube(path: str, gt_path: str, pca: int = 30, patch: int = 25, test_ratio: float = 0.9,
             seed: int = 345) -> tuple[Source, Source]:
    """Hyperspectral cube -> PCA -> zero-padded ``patch`` windows -> stratified split.

    Samples are float32 ``(1, pca, patch, patch)`` (one input channel for the 3D convolutions)."""
    from sklearn.decomposition import PCA

    cube = _mat_array(path, 3).astype(np.float64)
    if not np.isfinite(cube).all():
        raise DataError(f"{path}: the cube holds {int(np.size(cube) - np.isfinite(cube).sum())} NaN/inf values")
    gt = _mat_labels(gt_path, _mat_array(gt_path, 2))
    if gt.shape != cube.shape[:2]:
        raise DataError(f"{gt_path}: ground truth {gt.shape} does not match the cube's {cube.shape[:2]}")
    h, w, bands = cube.shape
    if not 1 <= pca <= bands or patch < 1 or patch % 2 == 0:
        raise DataError(f"{path}: pca={pca} must be within 1..{bands} bands and patch={patch} odd")
    flat = PCA(n_components=pca, whiten=True, random_state=seed).fit_transform(cube.reshape(-1, bands))
    reduced = flat.reshape(h, w, pca).astype(np.float32)
    m = patch // 2
    padded = np.zeros((h + 2 * m, w + 2 * m, pca), np.float32)
    padded[m:m + h, m:m + w] = reduced
    rows, cols = np.nonzero(gt > 0)
    if len(rows) == 0:
        raise DataError(f"{gt_path}: no labelled pixels (all zero)")
    items = [np.ascontiguousarray(padded[r:r + patch, c:c + patch].transpose(2, 0, 1)[None]) for r, c in zip(rows, cols)]
    labels = gt[rows, cols].astype(np.int64) - 1
    classes = [str(c) for c in range(1, int(labels.max()) + 2)]
    src = Source("array", items, labels, classes, os.path.splitext(os.path.basename(path))[0], path)
    tr, te = stratified_split(labels, test_ratio, seed)
    return src.subset(tr), src.subset(te)
