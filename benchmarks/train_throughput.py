"""Training throughput: onespec's training loop and data pipeline against a hand-written loop
with the framework's own model zoo and DataLoader, on the same JPEG ImageFolder, in the same
process, alternating rounds (so machine noise hits both alike). Target: onespec >= 0.95x.

    python benchmarks/train_throughput.py [--backend torch|paddle|both] [--rounds 3] [--steps 30]

Both sides: ResNet-18 (10 classes) at 64x64, RandomResizedCrop + flip + normalize, batch 32,
SGD momentum 0.9 with weight decay 5e-4, 2 data workers. Each round times `--steps` training
steps from the first batch request (worker start-up included on both sides).
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np

SIZE, BATCH, WORKERS = 64, 32, 2
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def make_images(root: str, classes: int = 10, per_class: int = 40) -> str:
    from PIL import Image

    rng = np.random.default_rng(0)
    for c in range(classes):
        d = os.path.join(root, f"class{c}")
        os.makedirs(d, exist_ok=True)
        for i in range(per_class):
            img = rng.integers(0, 255, (96, 112, 3), dtype=np.uint8)
            Image.fromarray(img).save(os.path.join(d, f"{i}.jpg"), quality=90)
    return root


def onespec_round(root: str, backend: str, steps: int, out: str) -> float:
    from onespec.training import load_recipe, train

    recipe = load_recipe(None, {
        "model": "resnet18", "data": {"source": "imagefolder", "root": root, "workers": WORKERS, "test_ratio": 0.05},
        "image_size": SIZE, "optimizer": {"name": "sgd", "lr": 0.01, "momentum": 0.9, "weight_decay": 5e-4},
        "schedule": {"name": "constant"}, "batch_size": BATCH, "eval_batch_size": 64, "max_steps": steps,
        "epochs": 1,
        "train_transforms": [{"op": "random_resized_crop", "size": SIZE}, {"op": "hflip"},
                             {"op": "normalize", "mean": MEAN, "std": STD}]})
    hist = train(None, recipe, backend=backend, out=out, progress=False)
    return hist.final["images_per_s"]


def torch_round(root: str, steps: int) -> float:
    import torch
    import torchvision
    from torchvision import transforms as T

    tf = T.Compose([T.RandomResizedCrop(SIZE), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    ds = torchvision.datasets.ImageFolder(root, tf)
    loader = torch.utils.data.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=WORKERS, drop_last=True)
    net = torchvision.models.resnet18(num_classes=10)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    crit = torch.nn.CrossEntropyLoss()
    net.train()
    t0, n = time.perf_counter(), 0
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        opt.zero_grad()
        loss = crit(net(x), y)
        loss.backward()
        opt.step()
        float(loss)
        n += len(y)
    return n / (time.perf_counter() - t0)


def paddle_round(root: str, steps: int) -> float:
    import paddle
    from paddle.vision import transforms as T

    tf = T.Compose([T.RandomResizedCrop(SIZE), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize(MEAN, STD)])
    ds = paddle.vision.datasets.DatasetFolder(root, transform=tf)
    loader = paddle.io.DataLoader(ds, batch_size=BATCH, shuffle=True, num_workers=WORKERS, drop_last=True)
    net = paddle.vision.models.resnet18(num_classes=10)
    opt = paddle.optimizer.Momentum(learning_rate=0.01, momentum=0.9, parameters=net.parameters(),
                                    weight_decay=paddle.regularizer.L2Decay(5e-4))
    crit = paddle.nn.CrossEntropyLoss()
    net.train()
    t0, n = time.perf_counter(), 0
    for i, (x, y) in enumerate(loader):
        if i == steps:
            break
        loss = crit(net(x), y)
        loss.backward()
        opt.step()
        opt.clear_grad()
        float(loss)
        n += len(y)
    return n / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", choices=["torch", "paddle", "both"], default="both")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30)
    a = ap.parse_args()
    backends = ["torch", "paddle"] if a.backend == "both" else [a.backend]
    if "paddle" in backends:
        import onespec.backends as b
        b.load_backend("paddle")  # onespec's safe import order (MindSpore first, if installed)
    hand = {"torch": torch_round, "paddle": paddle_round}
    with tempfile.TemporaryDirectory() as d:
        root = make_images(os.path.join(d, "images"))
        for be in backends:
            ours, theirs = [], []
            hand[be](root, 3)                                           # warm-up: imports, allocator
            onespec_round(root, be, 3, os.path.join(d, f"warm-{be}"))
            for r in range(a.rounds):
                theirs.append(hand[be](root, a.steps))
                ours.append(onespec_round(root, be, a.steps, os.path.join(d, f"{be}-{r}")))
                print(f"{be} round {r + 1}: onespec {ours[-1]:7.1f} img/s   hand-written {theirs[-1]:7.1f} img/s"
                      f"   ratio {ours[-1] / theirs[-1]:.3f}", flush=True)
            ratio = statistics.median(o / t for o, t in zip(ours, theirs))
            print(f"{be}: onespec / hand-written median ratio {ratio:.3f} "
                  f"({'meets' if ratio >= 0.95 else 'misses'} the 0.95 target)")


if __name__ == "__main__":
    main()
