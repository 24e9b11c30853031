"""Small data sets the tests make: ImageFolder trees, CIFAR-10 python batches, an Indian
Pines-style .mat cube, and a tiny network. Class-dependent content so a model can learn them."""
from __future__ import annotations

import os
import pickle

import numpy as np

from onespec.spec import ModelSpec
from onespec.spec.nodes import Act, BatchNorm, Conv, Flatten, GlobalAvgPool, Linear, MaxPool, Sequential
from onespec.zoo.common import model


def tiny(num_classes: int = 10, input_size: int = 16, in_channels: int = 3, bn: bool = True) -> ModelSpec:
    """conv-BN-ReLU-pool x2, global pool, linear: trains in seconds in every framework. Without
    ``bn`` a batch's gradient is the mean of its halves' (data-parallel runs equal one process)."""
    def block(name, out):
        norm = [BatchNorm(name="bn")] if bn else []
        return Sequential(name=name, layers=[Conv(name="conv", out_channels=out, kernel=3, padding=1, bias=not bn),
                                             *norm, Act(name="relu", fn="relu"),
                                             MaxPool(name="pool", kernel=2, stride=2)])
    return model("tiny", (in_channels, input_size, input_size),
                 [Sequential(name="features", layers=[block("b1", 8), block("b2", 16)]),
                  GlobalAvgPool(name="pool"), Flatten(name="flatten"), Linear(name="fc", out_features=num_classes)],
                 family="test", paper="", source="", num_classes=num_classes)


def _img(rng, cls: int, size: int) -> np.ndarray:
    img = rng.integers(0, 60, (size, size, 3), dtype=np.uint8)
    img[:, :, cls % 3] += np.uint8(120 + 40 * (cls // 3))  # class colour
    return img


def image_folder(root: str, classes=("cat", "dog", "fox"), per_class: int = 12, size: int = 20,
                 split: bool = True, seed: int = 0) -> str:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for part in (("train", "val") if split else ("",)):
        for c, name in enumerate(classes):
            d = os.path.join(root, part, name)
            os.makedirs(d, exist_ok=True)
            for i in range(per_class if part != "val" else max(2, per_class // 3)):
                Image.fromarray(_img(rng, c, size + i % 3)).save(os.path.join(d, f"{i}.png"))
    return root


def cifar10(root: str, per_batch: int = 20, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    os.makedirs(root, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for n in names:
        labels = [int(v) for v in rng.integers(0, 10, per_batch)]
        data = np.stack([_img(rng, c, 32).transpose(2, 0, 1).reshape(-1) for c in labels])
        with open(os.path.join(root, n), "wb") as f:
            pickle.dump({b"batch_label": n.encode(), b"labels": labels, b"data": data,
                         b"filenames": [f"{i}.png".encode() for i in range(per_batch)]}, f, protocol=2)
    with open(os.path.join(root, "batches.meta"), "wb") as f:
        pickle.dump({b"label_names": [f"class{i}".encode() for i in range(10)], b"num_vis": 3072}, f, protocol=2)
    return root


def mat_cube(root: str, h: int = 24, w: int = 20, bands: int = 12, classes: int = 3, seed: int = 0):
    import scipy.io

    rng = np.random.default_rng(seed)
    gt = np.zeros((h, w), np.uint8)
    gt[2:-2, 2:-2] = rng.integers(0, classes + 1, (h - 4, w - 4))
    gt[2, 2:2 + classes] = np.arange(1, classes + 1)   # each class present
    spectra = rng.normal(size=(classes + 1, bands))
    cube = spectra[gt] * 100 + rng.normal(size=(h, w, bands)) * 10
    os.makedirs(root, exist_ok=True)
    scipy.io.savemat(os.path.join(root, "cube.mat"), {"cube": cube.astype(np.float64)})
    scipy.io.savemat(os.path.join(root, "cube_gt.mat"), {"gt": gt})
    return os.path.join(root, "cube.mat"), os.path.join(root, "cube_gt.mat")


# Children are started as `sys.executable -I ...` (isolated: PYTHONPATH ignored). A test that must
# break one framework inside those children points sys.executable at this wrapper, which drops -I
# and puts a sitecustomize on the path that patches Paddle's emitter the moment onespec imports it
# (not before: importing paddle early would break a MindSpore child).
_SITECUSTOMIZE = '''
import importlib.abc, importlib.machinery, sys

class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name != "onespec.backends.paddle.emit":
            return None
        sys.meta_path.remove(self)
        spec = importlib.machinery.PathFinder.find_spec(name, path)
        run = spec.loader.exec_module

        def exec_module(module):
            run(module)
            import paddle

            class HalfGradReLU(paddle.nn.ReLU):  # right forward, half the gradient
                def forward(self, x):
                    y = super().forward(x)
                    return 0.5 * y + 0.5 * y.detach()

            module._ACTS = dict(module._ACTS, relu=HalfGradReLU)

        spec.loader.exec_module = exec_module
        return spec

sys.meta_path.insert(0, _Hook())
'''


def paddle_relu_half_gradient_python(folder) -> str:
    """An interpreter path whose processes run onespec with Paddle's ReLU passing half the gradient."""
    import stat
    import sys

    folder = str(folder)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "sitecustomize.py"), "w") as f:
        f.write(_SITECUSTOMIZE)
    exe = os.path.join(folder, "python")
    with open(exe, "w") as f:
        f.write(f'#!/bin/sh\n[ "$1" = "-I" ] && shift\nPYTHONPATH="{folder}" exec "{sys.executable}" "$@"\n')
    os.chmod(exe, os.stat(exe).st_mode | stat.S_IEXEC)
    return exe
