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

import os
import pickle
from dataclasses import dataclass, field

import numpy as np

from ..errors import MissingFileError, OnespecError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


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

    def __len__(self) -> int:
        return len(self.labels)

    def load(self, i: int) -> np.ndarray:
        item = self.items[i]
        if isinstance(item, str):
            return decode(item)
        return item

    def subset(self, idx) -> "Source":
        idx = np.asarray(idx, dtype=np.int64)
        return Source(self.kind, [self.items[i] for i in idx], self.labels[idx], self.classes, self.name, self.root)


def decode(path: str) -> np.ndarray:
    """RGB ``uint8`` HWC array of an image file; names the file when Pillow cannot read it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable image ({err})") from None


def _check_image(path: str) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:  # reads the header only; decoding errors surface in decode()
            if im.width < 1 or im.height < 1:
                raise DataError(f"{path}: empty image")
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DataError(f"{path}: unreadable image ({err})") from None


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


def _scan_folder(root: str) -> Source:
    if not os.path.isdir(root):
        raise MissingFileError(root, "no such data folder")
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: no class folders (expected {root}/<class>/<image>)")
    items, labels = [], []
    for c, name in enumerate(classes):
        folder = os.path.join(root, name)
        files = sorted(os.path.join(dp, f) for dp, _, fs in os.walk(folder, followlinks=True) for f in fs
                       if f.lower().endswith(IMAGE_EXTENSIONS))
        if not files:
            raise DataError(f"{folder}: class folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
        for f in files:
            _check_image(f)
        items += files
        labels += [c] * len(files)
    return Source("image", items, np.asarray(labels, np.int64), classes, os.path.basename(root.rstrip("/")), root)


def image_folder(root: str, seed: int = 0, test_ratio: float = 0.2) -> tuple[Source, Source]:
    """``root/train`` + ``root/val`` when both exist, else ``root/<class>`` split stratified."""
    if not os.path.isdir(root):
        raise MissingFileError(root, "no such data folder")
    train, val = os.path.join(root, "train"), os.path.join(root, "val")
    if os.path.isdir(train) and os.path.isdir(val):
        tr, va = _scan_folder(train), _scan_folder(val)
        if tr.classes != va.classes:
            raise DataError(f"{root}: train/ and val/ have different class folders "
                            f"({len(tr.classes)} vs {len(va.classes)})")
        return tr, va
    src = _scan_folder(root)
    tr, te = stratified_split(src.labels, test_ratio, seed)
    return src.subset(tr), src.subset(te)


class _BatchUnpickler(pickle.Unpickler):
    """CIFAR-10 batches hold a dict of bytes keys, a uint8 array and lists; nothing else loads."""

    def find_class(self, module, name):
        if module in ("numpy.core.multiarray", "numpy._core.multiarray") and name == "_reconstruct":
            import numpy.core.multiarray as ma
            return ma._reconstruct
        if module == "numpy" and name in ("ndarray", "dtype"):
            return getattr(np, name)
        if (module, name) == ("_codecs", "encode"):  # how Python 3 pickles bytes at protocol 2
            import codecs
            return codecs.encode
        raise DataError(f"refusing to load {module}.{name}: a CIFAR-10 batch holds only arrays and lists")


def _cifar_batch(path: str) -> dict:
    if not os.path.isfile(path):
        raise MissingFileError(path, "missing CIFAR-10 batch")
    try:
        with open(path, "rb") as f:
            d = _BatchUnpickler(f, encoding="bytes").load()
    except DataError as err:
        raise DataError(f"{path}: {err}") from None
    except Exception as err:
        raise DataError(f"{path}: not a CIFAR-10 python batch ({type(err).__name__}: {err})") from None
    if not isinstance(d, dict):
        raise DataError(f"{path}: not a CIFAR-10 python batch (a {type(d).__name__})")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in d.items()}


def cifar10(root: str) -> tuple[Source, Source]:
    """CIFAR-10 python batches: 5 training batches and the test batch, 32x32 RGB."""
    if not os.path.isdir(root):
        raise MissingFileError(root, "no such data folder")
    meta = _cifar_batch(os.path.join(root, "batches.meta"))
    classes = [c.decode() if isinstance(c, bytes) else str(c) for c in meta.get("label_names", [])]
    out = []
    for names in ([f"data_batch_{i}" for i in range(1, 6)], ["test_batch"]):
        xs, ys = [], []
        for n in names:
            path = os.path.join(root, n)
            d = _cifar_batch(path)
            data, labels = d.get("data"), d.get("labels")
            if (not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2
                    or data.shape[1] != 3072 or not isinstance(labels, list) or len(labels) != len(data)):
                raise DataError(f"{path}: expected 'data' uint8 [N, 3072] and N 'labels'")
            xs.append(data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1))
            ys.append(np.asarray(labels, np.int64))
        x, y = np.concatenate(xs), np.concatenate(ys)
        if len(classes) < 1 or y.min() < 0 or y.max() >= len(classes):
            raise DataError(f"{root}: labels outside the {len(classes)} classes of batches.meta")
        out.append(Source("image", list(x), y, classes, "cifar10", root))
    return out[0], out[1]


def _mat_array(path: str, ndim: int) -> np.ndarray:
    import scipy.io

    if not os.path.isfile(path):
        raise MissingFileError(path, "no such .mat file")
    try:
        d = scipy.io.loadmat(path)  # MATLAB v5 containers: data only, nothing executes
    except Exception as err:
        raise DataError(f"{path}: not a readable MATLAB .mat file ({type(err).__name__}: {err})") from None
    arrays = [(k, v) for k, v in d.items() if not k.startswith("__") and isinstance(v, np.ndarray) and v.ndim == ndim]
    if len(arrays) != 1:
        raise DataError(f"{path}: expected exactly one {ndim}-d array, found "
                        f"{[k for k, _ in arrays] or 'none'}")
    return arrays[0][1]


def mat_cube(path: str, gt_path: str, pca: int = 30, patch: int = 25, test_ratio: float = 0.9,
             seed: int = 345) -> tuple[Source, Source]:
    """Hyperspectral cube -> PCA -> zero-padded ``patch`` windows -> stratified split.

    Samples are float32 ``(1, pca, patch, patch)`` (one input channel for the 3D convolutions)."""
    from sklearn.decomposition import PCA

    cube = _mat_array(path, 3).astype(np.float64)
    gt = _mat_array(gt_path, 2)
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
