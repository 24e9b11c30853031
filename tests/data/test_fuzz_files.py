"""Mutated data files and checkpoints: every reader either reads the file or raises an
``OnespecError``, never another exception, within a bounded time and memory.

``ONESPEC_FUZZ_FILES`` sets the mutants per format (``make test``: a few dozen; ``make fuzz``:
thousands)."""
from __future__ import annotations

import os
import pickle
import resource
import time

import numpy as np
import pytest

from conftest import require
from fixtures_data import cifar10, mat_cube, tiny
from onespec.data import sources
from onespec.errors import OnespecError
from onespec.readers import NUMPY_ARRAYS, MiB, Budget, unpickle
from onespec.weights import init_state, layout, load_partial, load_state, save_state

COUNT = int(os.environ.get("ONESPEC_FUZZ_FILES", "40"))


def _pdparams(path):
    state = {k: v for k, v in init_state(tiny(), 0).items()}
    state["nested"] = {"StructuredToParameterName@@": {"a": "b"}, "list": [1, 2.5, b"x", None, True]}
    with open(path, "wb") as f:
        pickle.dump(state, f, protocol=4)


def _read_pickle(path):
    data = open(path, "rb").read()
    unpickle(data, NUMPY_ARRAYS, Budget(2 * len(data) + MiB, path))


def _torch_files(root) -> dict:
    """A zip and a legacy torch checkpoint, read by the torch backend (when torch is installed)."""
    import importlib.util

    if importlib.util.find_spec("torch") is None:
        return {}
    import torch

    from onespec.backends import load_backend

    sd = {k: torch.from_numpy(v) for k, v in init_state(tiny(), 0).items()}
    out = {}
    for fmt, zipped in (("pth", True), ("pth_legacy", False)):
        path = os.path.join(root, f"{fmt}.pth")
        torch.save(sd, path, _use_new_zipfile_serialization=zipped)
        out[fmt] = (path, load_backend("torch").read)
    return out


def _image(path, fmt):
    from PIL import Image

    Image.fromarray(np.random.default_rng(1).integers(0, 255, (24, 20, 3), dtype=np.uint8)).save(path, fmt)


def _corpus(root):
    """(format, path of a good file, reader) per format."""
    import scipy.io

    c = cifar10(os.path.join(root, "c"), per_batch=3)
    cube, gt = mat_cube(os.path.join(root, "m"), h=8, w=8, bands=4)
    zgt = os.path.join(root, "m", "zgt.mat")
    scipy.io.savemat(zgt, {"gt": scipy.io.loadmat(gt)["gt"]}, do_compression=True)
    npz = os.path.join(root, "state.npz")
    save_state(init_state(tiny(), 0), npz)
    znpz = os.path.join(root, "zstate.npz")
    np.savez_compressed(znpz, **init_state(tiny(), 0))
    shapes = {k: t.shape for k, t in layout(tiny()).items()}
    png, jpg, pdp = (os.path.join(root, n) for n in ("a.png", "a.jpg", "a.pdparams"))
    _image(png, "PNG")
    _image(jpg, "JPEG")
    _pdparams(pdp)
    mat2 = lambda p: sources._mat_labels(p, sources._mat_array(p, 2))  # noqa: E731
    torch_files = _torch_files(root)
    return {**torch_files,"cifar_batch": (os.path.join(c, "data_batch_1"), sources._cifar_batch),
            "cifar_meta": (os.path.join(c, "batches.meta"), sources._cifar_batch),
            "mat_cube": (cube, lambda p: sources._mat_array(p, 3)),
            "mat_gt": (gt, mat2), "mat_gt_compressed": (zgt, mat2),
            "npz": (npz, load_state), "npz_compressed": (znpz, lambda p: load_partial(p, shapes)),
            "png": (png, sources._check_image), "jpeg": (jpg, sources._check_image),
            "pdparams": (pdp, _read_pickle)}


def _mutate(data: bytes, rng: np.random.Generator) -> bytes:
    b = bytearray(data)
    for _ in range(int(rng.integers(1, 4))):
        kind = int(rng.integers(0, 6))
        at = int(rng.integers(0, max(1, len(b))))
        if kind == 0 and b:  # flip bytes
            for i in rng.integers(0, len(b), int(rng.integers(1, 9))):
                b[int(i)] ^= int(rng.integers(1, 256))
        elif kind == 1:      # truncate
            del b[at:]
        elif kind == 2:      # insert random bytes
            b[at:at] = rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8).tobytes()
        elif kind == 3:      # repeat a slice
            n = int(rng.integers(1, 512))
            b[at:at] = b[at:at + n] * int(rng.integers(2, 8))
        elif kind == 4:      # a size field made huge
            b[at:at + 4] = int(rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 30, 0])).to_bytes(4, "little")
        elif kind == 5:      # a size field made huge, big-endian
            b[at:at + 4] = int(rng.choice([0xFFFFFFFF, 0x7FFFFFFF, 1 << 24])).to_bytes(4, "big")
    return bytes(b)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return _corpus(str(tmp_path_factory.mktemp("corpus")))


FORMATS = ["cifar_batch", "cifar_meta", "mat_cube", "mat_gt", "mat_gt_compressed", "npz", "npz_compressed",
           "png", "jpeg", "pdparams", "pth", "pth_legacy"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_mutated_files_raise_only_onespec_errors(corpus, tmp_path, fmt):
    if fmt not in corpus:
        require("torch")
    good, read = corpus[fmt]
    read(good)  # the unmutated file reads
    data = open(good, "rb").read()
    rng = np.random.default_rng([COUNT, FORMATS.index(fmt)])
    path = str(tmp_path / os.path.basename(good))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for i in range(COUNT):
        mutant = _mutate(data, rng)
        with open(path, "wb") as f:
            f.write(mutant)
        t = time.monotonic()
        try:
            read(path)
        except OnespecError:
            pass
        except Exception as err:
            keep = str(tmp_path.parent / f"fuzz-{fmt}-{i}")
            with open(keep, "wb") as f:
                f.write(mutant)
            raise AssertionError(f"mutant {i} of {fmt} (kept at {keep}): {type(err).__name__}: {err}") from err
        assert time.monotonic() - t < 10, f"mutant {i} of {fmt} took {time.monotonic() - t:.1f} s"
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss
    assert grown < 512 << 10, f"{fmt}: peak memory grew by {grown >> 10} MiB reading {COUNT} mutants"
