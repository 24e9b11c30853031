"""Seconds to capture torchvision models (``onespec.capture``: torch.export, op translation,
structuring, spec validation; the proof in the frameworks is not included), on one sample of
3x224x224. Goal: densenet121 under 15 s on 2 cores.

    python benchmarks/capture_speed.py [MODEL ...] [--size 224]
"""
from __future__ import annotations

import argparse
import time

import torch
import torchvision

from onespec.capture import capture


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="*", default=["densenet121", "mnasnet1_0", "efficientnet_b0", "regnet_x_400mf"])
    ap.add_argument("--size", type=int, default=224)
    a = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    for name in a.models:
        m = getattr(torchvision.models, name)().eval()
        t0 = time.perf_counter()
        spec, state = capture(m, (3, a.size, a.size))
        print(f"{name:20s} {time.perf_counter() - t0:6.1f} s  {len(state)} tensors, {len(spec.layers)} top-level layers")


if __name__ == "__main__":
    main()
