"""How fast training amplifies a float32-sized difference: the yardstick for ``onespec align``'s
tolerances. Trains a model twice in one framework (torch), once from onespec's init and once from
that init perturbed by a relative 1e-7 (one float32 rounding), on the same batches without
dropout, and prints per step the relative loss difference and the relative parameter distance.
How much a model and recipe amplify rounding: why ``onespec align`` measures its tolerance in
every run (float32 against float64, ``onespec/training/align.py``) rather than fixing one.

    python benchmarks/align_growth.py [MODEL ...] [--steps 20]
"""
from __future__ import annotations

import argparse
import os
import tempfile

import numpy as np

from onespec.training import load_recipe, train
from onespec.training.align import without_dropout
from onespec.models import for_recipe
from onespec.weights import init_state, load_state, save_state


def run(model: str, steps: int, d: str) -> None:
    recipe = load_recipe(None, {"max_steps": steps})
    spec = without_dropout(for_recipe(model, recipe, 10))
    base = init_state(spec, 0, scheme="train")
    rng = np.random.default_rng(1)
    pert = {k: (v * (1 + 1e-7 * rng.standard_normal(v.shape))).astype(np.float32) for k, v in base.items()}
    save_state(base, os.path.join(d, f"{model}-a.npz"))
    save_state(pert, os.path.join(d, f"{model}-b.npz"))
    snaps = tuple(range(steps + 1))
    hs = [train(spec, load_recipe(None, {"max_steps": steps, "weights": os.path.join(d, f"{model}-{s}.npz")}),
                backend="torch", out=os.path.join(d, f"{model}-{s}"), progress=False, snapshots=snaps) for s in "ab"]
    print(f"{model}: step, relative loss difference, relative parameter distance")
    for t in range(1, steps + 1):
        la, lb = hs[0].steps[t - 1]["loss"], hs[1].steps[t - 1]["loss"]
        a = load_state(os.path.join(d, f"{model}-a", "snapshots", f"step_{t}.npz"))
        b = load_state(os.path.join(d, f"{model}-b", "snapshots", f"step_{t}.npz"))
        num = sum(float(np.sum((a[k].astype(np.float64) - b[k]) ** 2)) for k in a if k in base and "running" not in k)
        den = sum(float(np.sum(a[k].astype(np.float64) ** 2)) for k in a if "running" not in k)
        print(f"  {t:3d}  {abs(la - lb) / abs(la):.2e}  {np.sqrt(num / den):.2e}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", default=["squeezenet1_1", "mobilenet_v3_small", "shufflenet_v2_x0_5"])
    ap.add_argument("--steps", type=int, default=20)
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        for m in a.models:
            run(m, a.steps, d)


if __name__ == "__main__":
    main()
