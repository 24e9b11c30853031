"""The framework-neutral data pipeline: sources, transforms, deterministic batches."""
import os
import pickle

import numpy as np
import pytest

from conftest import require
from fixtures_data import cifar10, image_folder, mat_cube
from onespec import data as D
from onespec.errors import MissingFileError


def test_digits_split_is_stratified_and_rgb():
    tr, te = D.digits(seed=0, test_ratio=0.2)
    assert len(tr) + len(te) == 1797 and tr.classes == [str(i) for i in range(10)]
    assert tr.load(0).shape == (8, 8, 3) and tr.load(0).dtype == np.uint8
    frac = np.bincount(te.labels) / np.bincount(np.concatenate([tr.labels, te.labels]))
    assert np.allclose(frac, 0.2, atol=0.02)


def test_image_folder_train_val_and_single_folder(tmp_path):
    root = image_folder(str(tmp_path / "split"))
    tr, va = D.image_folder(root)
    assert tr.classes == va.classes == ["cat", "dog", "fox"]
    assert len(tr) == 36 and len(va) == 12
    assert tr.load(0).dtype == np.uint8 and tr.load(0).shape[2] == 3
    one = image_folder(str(tmp_path / "one"), split=False, per_class=10)
    tr, te = D.image_folder(one, seed=1, test_ratio=0.3)
    assert len(tr) + len(te) == 30 and sorted(np.bincount(te.labels)) == [3, 3, 3]


def test_image_folder_errors_name_the_culprit(tmp_path):
    with pytest.raises(MissingFileError, match="no such data folder"):
        D.image_folder(str(tmp_path / "nope"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(D.DataError, match="no class folders"):
        D.image_folder(str(tmp_path / "empty"))
    root = image_folder(str(tmp_path / "d"), split=False)
    (tmp_path / "d" / "zebra").mkdir()
    with pytest.raises(D.DataError, match="zebra: class folder has no images"):
        D.image_folder(root)
    os.rmdir(tmp_path / "d" / "zebra")
    (tmp_path / "d" / "cat" / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(D.DataError, match=r"broken\.png: unreadable image"):
        D.image_folder(root)


def test_cifar10_batches_and_hostile_pickle(tmp_path):
    root = cifar10(str(tmp_path / "c"))
    tr, te = D.cifar10(root)
    assert (len(tr), len(te)) == (100, 20) and tr.load(3).shape == (32, 32, 3)
    assert tr.classes[0] == "class0"

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    with open(os.path.join(root, "test_batch"), "wb") as f:
        pickle.dump({b"data": Evil()}, f)
    with pytest.raises(D.DataError, match="refusing to load"):
        D.cifar10(root)
    assert not (tmp_path / "pwned").exists()


def test_mat_cube_pca_patches_split(tmp_path):
    cube, gt = mat_cube(str(tmp_path))
    tr, te = D.mat_cube(cube, gt, pca=5, patch=7, test_ratio=0.5, seed=345)
    assert tr.kind == "array" and tr.load(0).shape == (1, 5, 7, 7) and tr.load(0).dtype == np.float32
    import scipy.io
    labelled = int((scipy.io.loadmat(gt)["gt"] > 0).sum())
    assert len(tr) + len(te) == labelled and set(tr.labels) == {0, 1, 2}
    with pytest.raises(D.DataError, match="odd"):
        D.mat_cube(cube, gt, pca=5, patch=6)


def test_resize_center_crop_match_torchvision_on_pil():
    require("torchvision")
    from PIL import Image
    from torchvision import transforms as T

    img = np.random.default_rng(0).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    ours = D.apply([D.Resize(size=24), D.CenterCrop(size=20)], img, np.random.default_rng(0))
    theirs = T.Compose([T.Resize(24), T.CenterCrop(20), T.ToTensor()])(Image.fromarray(img)).numpy()
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_random_transforms_follow_their_rules():
    img = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    rng = np.random.default_rng(1)
    out = D.RandomCrop(size=32, padding=4)(img, rng)
    assert out.shape == (32, 32, 3)
    rrc = D.RandomResizedCrop(size=24)
    a = [rrc(img, np.random.default_rng((5, 0, i))) for i in range(4)]
    b = [rrc(img, np.random.default_rng((5, 0, i))) for i in range(4)]
    assert all(x.shape == (24, 24, 3) and np.array_equal(x, y) for x, y in zip(a, b))
    assert not np.array_equal(a[0], a[1])
    assert np.array_equal(D.HorizontalFlip(p=1.0)(img, rng), img[:, ::-1])
    x = D.Normalize(mean=(0.5,) * 3, std=(0.25,) * 3)(np.full((2, 2, 3), 255, np.uint8), rng)
    assert x.shape == (3, 2, 2) and np.allclose(x, 2.0)


def test_batches_independent_of_workers_and_ranks(tmp_path):
    root = image_folder(str(tmp_path / "d"), per_class=8)
    tr, _ = D.image_folder(root)
    tf = (D.RandomResizedCrop(size=16), D.HorizontalFlip(), D.Normalize())
    serial = D.Loader(tr, tf, batch_size=4, shuffle=True, seed=3)
    workers = D.Loader(tr, tf, batch_size=4, shuffle=True, seed=3, workers=2)
    try:
        for e in (0, 1):
            s, w = list(serial.epoch(e)), list(workers.epoch(e))
            assert len(s) == len(w) == 6
            assert all(np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) for a, b in zip(s, w))
        assert not np.array_equal(list(serial.epoch(0))[0][0], list(serial.epoch(1))[0][0])
    finally:
        workers.close()
    # two data-parallel ranks of batch 2 see exactly one process's batch of 4
    ranks = [list(D.Loader(tr, tf, batch_size=2, shuffle=True, seed=3, rank=r, world=2).epoch(0)) for r in (0, 1)]
    for a, b, whole in zip(ranks[0], ranks[1], serial.epoch(0)):
        assert np.array_equal(np.concatenate([a[0], b[0]]), whole[0])


@pytest.mark.parametrize("compressed", [False, True])
def test_mat_reader_matches_scipy(tmp_path, compressed):
    """onespec reads MATLAB v5 itself (budgeted); every numeric variable as scipy.io.loadmat reads it."""
    import scipy.io

    from onespec.data.sources import _mat_variables

    rng = np.random.default_rng(0)
    arrays = {"cube": rng.normal(size=(5, 4, 3)), "indian_pines": rng.integers(0, 9000, (7, 6, 5)).astype(np.int16),
              "gt": rng.integers(0, 17, (7, 6)).astype(np.uint8), "f": rng.normal(size=(3, 2)).astype(np.float32),
              "mask": rng.random((3, 3)) > 0.5, "empty": np.zeros((0, 3))}
    path = str(tmp_path / "x.mat")
    scipy.io.savemat(path, {**arrays, "text": "hello", "cell": np.array([[1, 2]], dtype=object)},
                     do_compression=compressed)
    mine, ref = _mat_variables(path), scipy.io.loadmat(path)
    assert mine["text"] is None and mine["cell"] is None
    for k in arrays:
        assert mine[k].shape == ref[k].shape and mine[k].dtype == ref[k].dtype and np.array_equal(mine[k], ref[k]), k
