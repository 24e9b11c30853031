"""Data sources: where samples come from, decoded once in onespec for every framework.

A source is a list of samples with integer labels and class names. Image sources hand out
``uint8`` HWC arrays decoded by Pillow (RGB); array sources (hyperspectral patches) hand out
``float32`` arrays already shaped like the model input. Everything is checked when the source
is opened, before any training starts: a missing or empty folder, a class folder without
images, a file Pillow cannot identify (named), a malformed CIFAR batch or ``.mat`` cube.

Sources shipped:
- ``digits``: scikit-learn's bundled 8x8 handwritten digits (1,797 images, 10 classes), as RGB;
  the default, needs no download.
- ``imagefolder``: ``root/train/<class>/*`` and ``root/val/<class>/*``, or ``root/<class>/*``
  split with a stratified ratio (torchvision ``ImageFolder`` layout).
- ``cifar10``: the python batches of CIFAR-10 (``cifar-10-batches-py``: ``data_batch_1..5``,
  ``test_batch``, ``batches.meta``), read with a restricted unpickler (arrays, lists, dicts only).
- ``mat``: an Indian Pines-style hyperspectral cube (``H x W x bands`` in a MATLAB ``.mat``) and
  its ground-truth map; PCA (whitened) to ``pca`` components, ``patch x patch`` windows around each
  labelled pixel with a zero-padded margin, label 0 dropped (HybridSN, Roy et al. 2019, Sec. III).
"""
from __future__ import annotations

import hashlib
import os
import struct
import zlib
from dataclasses import dataclass, field

import numpy as np

from ..errors import MissingFileError, OnespecError
from ..readers import NUMPY_ARRAYS, MiB, Budget, ReadError, read_bytes, unpickle

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
        with warnings.catch_warnings(), Image.open(io.BytesIO(data)) as im:
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # the pixel budget below rules
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
        data = read_bytes(path, MAX_BATCH_BYTES, "CIFAR-10 batch")
        d = unpickle(data, NUMPY_ARRAYS, Budget(2 * len(data) + MiB, path))
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


_MAT_NUMERIC = {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64",
                "uint64", "logical"}


def _mat_declared(head: bytes, end: str) -> int:
    """Bytes a MATLAB v5 matrix element may inflate to, from its own header (the dimensions
    subelement): complex doubles for every declared element, plus its name and flags."""
    def sub(pos):  # (data start, data length, next subelement) of a tag, small or full
        t, n = struct.unpack(end + "II", head[pos:pos + 8])
        return (pos + 4, t >> 16, pos + 8) if t >> 16 else (pos + 8, n, pos + 8 + n + (-n % 8))
    try:
        if struct.unpack(end + "I", head[:4])[0] != 14:  # not miMATRIX: scipy refuses it
            return MiB
        _, _, pos = sub(8)                                 # array flags
        at, n, _ = sub(pos)                                # dimensions, int32
        dims = struct.unpack(end + f"{n // 4}i", head[at:at + 4 * (n // 4)])
    except struct.error:
        return MiB
    return int(np.prod([max(d, 0) for d in dims], dtype=object)) * 16 + MiB


def _mat_inflated(path: str) -> int:
    """Total bytes the variables of a ``.mat`` inflate to (MATLAB v5), each compressed variable
    decompressed in 1 MiB pieces and counted (nothing kept) against what its own header declares
    and ``MAX_MAT_BYTES`` in all: a bomb is refused before scipy inflates anything."""
    with open(path, "rb") as f:
        head = f.read(128)
        if len(head) < 128 or head[126:128] not in (b"IM", b"MI"):
            return os.path.getsize(path)  # MATLAB v4: nothing compressed, scipy reads what the file holds
        end, total = ("<" if head[126:128] == b"IM" else ">"), 0
        while len(tag := f.read(8)) == 8:
            mdtype, count = struct.unpack(end + "II", tag)
            if mdtype != 15:  # not miCOMPRESSED
                f.seek(count + (-count % 8), os.SEEK_CUR)
                total += count
                continue
            z, left, limit, inflated = zlib.decompressobj(), count, None, 0
            while left > 0 and (piece := f.read(min(left, MiB))):
                left -= len(piece)
                while piece:
                    out = z.decompress(piece, MiB)
                    piece = z.unconsumed_tail
                    limit = _mat_declared(out, end) if limit is None else limit
                    inflated += len(out)
                    if inflated > limit or total + inflated > MAX_MAT_BYTES:
                        raise DataError(f"{path}: a variable decompresses to more than the {limit >> 20} MiB its "
                                        "header declares (a decompression bomb or a corrupt file)")
            total += inflated
    return total


def _mat_array(path: str, ndim: int) -> np.ndarray:
    """The one ``ndim``-d numeric array of a ``.mat`` file; each variable's decompressed size is
    checked against what its header declares, and the total against ``MAX_MAT_BYTES``, before
    scipy reads anything."""
    import scipy.io

    if not os.path.isfile(path):
        raise MissingFileError(path, "no such .mat file")
    _mat_inflated(path)
    try:
        heads = scipy.io.whosmat(path)  # names, shapes, classes
    except Exception as err:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(err).__name__}: {err})") from None
    mine = [(n, s) for n, s, c in heads if len(s) == ndim and c in _MAT_NUMERIC]
    if len(mine) != 1:
        raise DataError(f"{path}: expected exactly one numeric {ndim}-d array, found "
                        f"{[n for n, _ in mine] or 'none'} (all: {[(n, c) for n, _, c in heads][:8]})")
    declared = int(np.prod(mine[0][1], dtype=object)) * 16
    if declared > MAX_MAT_BYTES:
        raise DataError(f"{path}: declares {declared >> 20} MiB of arrays, more than {MAX_MAT_BYTES >> 20} MiB")
    try:
        d = scipy.io.loadmat(path, variable_names=[mine[0][0]])  # MATLAB containers: data only, no code
    except Exception as err:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(err).__name__}: {err})") from None
    a = d.get(mine[0][0])
    if not isinstance(a, np.ndarray) or a.ndim != ndim or a.dtype.kind not in "biuf":
        raise DataError(f"{path}: variable {mine[0][0]!r} is not a numeric {ndim}-d array")
    return a


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
