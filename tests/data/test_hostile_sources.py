"""Hostile data sets: small files that would grow into gigabytes, folders that repeat or share
images, labels that would be truncated, images that fail only when their batch comes. Each is
refused with a DataError naming the file, before training starts."""
from __future__ import annotations

import os
import pickle
import struct
import time
import tracemalloc
import zlib

import numpy as np
import pytest

from fixtures_data import cifar10, image_folder, mat_cube
from onespec import data as D
from onespec.errors import OnespecError


def _codec_chain(rounds: int) -> bytes:
    """An ~800-byte protocol-2 pickle: ``_codecs.encode`` applied ``rounds`` times with the hex
    codec, each round doubling the bytes (2**rounds times the seed string)."""
    out = b"\x80\x02c_codecs\nencode\nq\x00"
    inner = b"X\x00\x02\x00\x00" + b"ab" * 256 + b"X\x06\x00\x00\x00latin1\x86R"   # encode('ab'*256, 'latin1')
    for _ in range(rounds):
        inner = b"h\x00" + inner + b"X\x03\x00\x00\x00hex\x86R"
    return out + inner + b"."


def test_cifar_batch_codec_chain_is_refused_within_its_budget(tmp_path):
    root = cifar10(str(tmp_path / "c"), per_batch=4)
    bomb = _codec_chain(17)           # 512 bytes doubled 17 times: 64 MiB, from a file under 1 KB
    assert len(bomb) < 1000
    (tmp_path / "c" / "test_batch").write_bytes(bomb)
    tracemalloc.start()
    try:
        with pytest.raises(D.DataError, match=r"test_batch: .*_codecs\.encode with 'hex'"):
            D.cifar10(root)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak >> 20} MiB allocated for an 800-byte file"


def test_cifar_batch_labels_are_checked(tmp_path):
    root = cifar10(str(tmp_path / "c"), per_batch=4)
    data = np.zeros((2, 3072), np.uint8)
    for labels, msg in (([0, 10], "label 10 outside the 10 classes"), ([0, 1.5], "a list of 2 integers")):
        with open(os.path.join(root, "test_batch"), "wb") as f:
            pickle.dump({b"data": data, b"labels": labels}, f, protocol=2)
        with pytest.raises(D.DataError, match=msg):
            D.cifar10(root)


# ------------------------------------------------------------------------------ .mat
def _gt(tmp_path, gt: np.ndarray) -> tuple[str, str]:
    import scipy.io

    cube, _ = mat_cube(str(tmp_path / "m"))
    path = str(tmp_path / "m" / "bad_gt.mat")
    scipy.io.savemat(path, {"gt": gt})
    return cube, path


def test_mat_label_of_3e8_is_refused_without_building_its_classes(tmp_path):
    gt = np.zeros((24, 20))
    gt[3, 4], gt[5, 5] = 3e8, 1
    cube, path = _gt(tmp_path, gt)
    t = time.monotonic()
    with pytest.raises(D.DataError, match=r"bad_gt\.mat: label 3+\S* at \(3, 4\) is outside 0\.\.65536"):
        D.mat_cube(cube, path, pca=4, patch=5)
    assert time.monotonic() - t < 10


def test_mat_fractional_labels_are_refused_not_truncated(tmp_path):
    gt = np.ones((24, 20))
    gt[7, 2] = 2.5
    cube, path = _gt(tmp_path, gt)
    with pytest.raises(D.DataError, match=r"bad_gt\.mat: label 2\.5 at \(7, 2\) is not an integer class"):
        D.mat_cube(cube, path, pca=4, patch=5)


def test_mat_decompression_bomb_is_refused_before_scipy_reads_it(tmp_path):
    """A compressed variable whose data element inflates far past the 4x4 array it declares."""
    import scipy.io

    cube, _ = mat_cube(str(tmp_path / "m"))
    path = str(tmp_path / "bomb_gt.mat")
    scipy.io.savemat(path, {"gt": np.ones((4, 4))}, do_compression=False)
    raw = open(path, "rb").read()
    head, var = raw[:128], raw[128:]
    # the matrix element with its data grown to 64 MiB of zeros, then compressed (~64 KB)
    mdtype, size = struct.unpack("<II", var[:8])
    body = bytearray(var[8:8 + size])
    data_tag = body.rfind(struct.pack("<II", 9, 128))        # miDOUBLE, 16 doubles
    body[data_tag:] = struct.pack("<II", 9, 64 << 20) + bytes(64 << 20)
    element = struct.pack("<II", mdtype, len(body)) + bytes(body)
    z = zlib.compress(element, 9)
    open(path, "wb").write(head + struct.pack("<II", 15, len(z)) + z)
    tracemalloc.start()
    try:
        with pytest.raises(D.DataError, match=r"bomb_gt\.mat: a variable decompresses to more than the 1 MiB its "
                                              r"header declares"):
            D.mat_cube(cube, path, pca=4, patch=5)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20


# ------------------------------------------------------------------------------ image folders
def test_symlink_loops_are_walked_once(tmp_path):
    root = image_folder(str(tmp_path / "d"), per_class=4, split=False)
    os.symlink(".", os.path.join(root, "cat", "loop"))
    os.symlink("..", os.path.join(root, "dog", "up"))
    os.symlink(os.path.join(root, "fox"), os.path.join(root, "fox", "again"))
    t = time.monotonic()
    tr, va = D.image_folder(root)
    assert time.monotonic() - t < 30
    assert len(tr) + len(va) == 12 and not set(tr.items) & set(va.items)


def test_a_linked_image_counted_twice_is_refused(tmp_path):
    root = image_folder(str(tmp_path / "d"), per_class=4, split=False)
    os.symlink(os.path.join(root, "cat", "0.png"), os.path.join(root, "dog", "cat0.png"))
    with pytest.raises(D.DataError, match=r"dog/cat0\.png: the same file as .*cat/0\.png"):
        D.image_folder(root)


@pytest.mark.parametrize("how", ["copy", "link"])
def test_train_val_overlap_is_refused(tmp_path, how):
    root = image_folder(str(tmp_path / "d"), per_class=4)
    src, dst = os.path.join(root, "train", "cat", "1.png"), os.path.join(root, "val", "cat", "dup.png")
    if how == "copy":
        open(dst, "wb").write(open(src, "rb").read())
    else:
        os.symlink(src, dst)
    with pytest.raises(D.DataError, match=r"val/cat/dup\.png \(validation\) is the same image as .*train/cat/1\.png"):
        D.image_folder(root)


def test_truncated_jpeg_is_found_before_training(tmp_path):
    from PIL import Image

    root = image_folder(str(tmp_path / "d"), per_class=4, split=False)
    path = os.path.join(root, "dog", "photo.jpg")
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(path)
    raw = open(path, "rb").read()
    open(path, "wb").write(raw[: len(raw) // 2])
    with pytest.raises(D.DataError, match=r"dog/photo\.jpg: unreadable image"):
        D.image_folder(root)


def _png_header_only(w: int, h: int) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 1, 0, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.parametrize("side, msg", [(10000, "10000x10000 image is larger than 64M pixels"),
                                      (40000, "unreadable image .DecompressionBombError")])
def test_decompression_bomb_image_is_one_line_naming_the_file(tmp_path, side, msg):
    root = image_folder(str(tmp_path / "d"), per_class=4, split=False)
    open(os.path.join(root, "fox", "huge.png"), "wb").write(_png_header_only(side, side))
    with pytest.raises(D.DataError, match=r"fox/huge\.png: " + msg):
        D.image_folder(root)


# ------------------------------------------------------------------------------ --data
def test_the_source_is_inferred_from_the_path_or_refused(tmp_path):
    folder = image_folder(str(tmp_path / "d"), per_class=2, split=False)
    assert D.infer_source(folder) == "imagefolder"
    assert D.infer_source(cifar10(str(tmp_path / "c"), per_batch=2)) == "cifar10"
    cube, gt = mat_cube(str(tmp_path / "m"))
    assert D.infer_source(cube) == "mat"
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "empty").mkdir()
    for bad in ("notes.txt", "empty"):
        with pytest.raises(D.DataError, match="name the source"):
            D.infer_source(str(tmp_path / bad))
    with pytest.raises(OnespecError, match="no such data"):
        D.infer_source(str(tmp_path / "absent"))


def test_train_with_data_uses_that_data_or_refuses(tmp_path):
    import subprocess
    import sys

    (tmp_path / "notes.txt").write_text("x")
    proc = subprocess.run([sys.executable, "-m", "onespec", "train", "squeezenet1_1", "--data",
                           str(tmp_path / "notes.txt"), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "notes.txt: cannot tell what data" in proc.stderr, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and not (tmp_path / "run").exists()
