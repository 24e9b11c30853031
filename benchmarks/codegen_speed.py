"""Speed of a generated file (``onespec codegen``) against onespec's own build of the same spec.

    python benchmarks/codegen_speed.py [--models resnet18 mobilenet_v2] [--backends torch paddle]
                                       [--batch 1,8] [--size 224] [--rounds 5] [--budget 8]
                                       [--threads N]

Eval forward without gradients, one child process per framework, the two networks holding the
same weights (the generated one loads the build's state dict strictly), timed in alternating
rounds; medians in ms; ratio = generated / built (1.00: as fast). ``--threads N``: N intra-op
threads in each framework (OMP_NUM_THREADS; on a shared machine 1 keeps the frameworks' spinning
thread pools from competing with other processes).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))


def _generated(spec, backend: str, folder: str):
    from onespec.codegen import codegen
    path = os.path.join(folder, f"{spec.name}_{backend}.py")
    with open(path, "w") as f:
        f.write(codegen(spec, backend))
    found = importlib.util.spec_from_file_location(f"{spec.name}_{backend}", path)
    mod = sys.modules[found.name] = importlib.util.module_from_spec(found)
    found.loader.exec_module(mod)
    return mod.build(spec.meta.num_classes)


def _pair(backend: str, built, generated, x):
    """Calls of the two networks' eval forwards on ``x``, the generated one holding the build's
    weights (loaded strictly)."""
    if backend == "torch":
        import torch
        generated.load_state_dict(built.state_dict(), strict=True)
        t, no_grad = torch.from_numpy(x), torch.no_grad
    else:
        import paddle
        missing, unexpected = generated.set_state_dict(built.state_dict())
        assert not missing and not unexpected, (missing, unexpected)
        t, no_grad = paddle.to_tensor(x), paddle.no_grad
    built.eval(), generated.eval()

    def run(net):
        def call():
            with no_grad():
                net(t)
        return call
    return run(built), run(generated)


def child(backend: str, models: list[str], batches: list[int], size: int, rounds: int, budget: float) -> list[dict]:
    import numpy as np

    import onespec
    from onespec.backends import load_backend
    from zoo_speed import alternate

    be = load_backend(backend)
    if backend == "torch" and os.environ.get("OMP_NUM_THREADS"):
        import torch
        torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for name in models:
            spec = onespec.get_spec(name, input_size=size)
            built = be.build(spec)
            be.load_state(built, spec, onespec.init_state(spec, seed=0))
            generated = _generated(spec, backend, folder)
            for batch in batches:
                x = np.random.default_rng(0).standard_normal((batch, *spec.input_shape)).astype(np.float32)
                b, g = _pair(backend, built, generated, x)
                ms = alternate({"built": b, "generated": g}, rounds, budget)
                rows.append({"model": name, "backend": backend, "batch": batch, **ms,
                             "ratio": ms["generated"] / ms["built"]})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--models", nargs="+", default=["resnet18", "mobilenet_v2"])
    ap.add_argument("--backends", nargs="+", default=["torch", "paddle"], choices=["torch", "paddle"])
    ap.add_argument("--batch", default="1,8")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--budget", type=float, default=8.0, help="seconds per model and batch")
    ap.add_argument("--threads", type=int, help="intra-op threads per framework (default: the framework's)")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args()
    batches = [int(b) for b in a.batch.split(",")]
    if a.child:
        child(a.child, a.models, batches, a.size, a.rounds, a.budget)
        return
    rows = []
    env = dict(os.environ, **({"OMP_NUM_THREADS": str(a.threads), "MKL_NUM_THREADS": str(a.threads)}
                              if a.threads else {}))
    for backend in a.backends:  # one framework per process
        out = subprocess.run([sys.executable, __file__, "--child", backend, "--models", *a.models, "--batch", a.batch,
                              "--size", str(a.size), "--rounds", str(a.rounds), "--budget", str(a.budget)],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            sys.exit(f"{backend}: " + out.stderr.strip().splitlines()[-1])
        rows += [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    print(f"{'model':<14} {'framework':<9} {'batch':>5} {'built ms':>9} {'generated ms':>13} {'ratio':>6}")
    for r in rows:
        print(f"{r['model']:<14} {r['backend']:<9} {r['batch']:>5} {r['built']:>9.2f} {r['generated']:>13.2f} "
              f"{r['ratio']:>6.2f}")


if __name__ == "__main__":
    main()
