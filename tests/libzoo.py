"""Other libraries' own models, built here with random weights and random BatchNorm statistics,
saved in their native checkpoint format with their own outputs beside them:
``python tests/libzoo.py LIBRARY OUT_DIR SIZE MODEL=ARCH ...`` (one framework per process).

For each model it writes ``<arch>.<ext>`` (the library's checkpoint), ``<arch>.x.npy`` /
``<arch>.y.npy`` (an input and the library model's eval output) and ``<arch>.npz`` + ``<arch>.json``:
onespec's import of the checkpoint (``onespec.convert.read`` with the layout detected from the
keys) and what it detected.
"""
import importlib
import importlib.util
import json
import os
import re
import sys
import types

import numpy as np

EXT = {"timm": ".pth", "mindcv": ".ckpt", "paddleclas": ".pdparams", "mindspore_zoo": ".ckpt"}
FRAMEWORK = {"timm": "torch", "mindcv": "mindspore", "paddleclas": "paddle", "mindspore_zoo": "mindspore"}


def mindspore_zoo_mobilenet_v2():
    """The MindSpore model zoo's MobileNetV2 (official/cv/MobileNetV2) is not a package: this is
    its documented structure, written here, composed as its training script composes it (a
    backbone and a head cell built apart, joined by a cell with ``auto_prefix=False``), so that
    MindSpore names the checkpoint's parameters as that script's checkpoints name them: a
    conv-BN-ReLU6 unit keeps its layers in a ``features`` SequentialCell, an inverted residual in
    a ``conv`` SequentialCell, the backbone's units in ``features``, the head is [global mean, Dense]."""
    import mindspore.nn as nn
    import mindspore.ops as ops

    def divisible(v, d=8):
        n = max(d, int(v + d / 2) // d * d)
        return n + d if n < 0.9 * v else n

    class ConvBNReLU(nn.Cell):
        def __init__(self, cin, cout, k=3, stride=1, groups=1):
            super().__init__()
            self.features = nn.SequentialCell([
                nn.Conv2d(cin, cout, k, stride, pad_mode="pad", padding=(k - 1) // 2, group=groups),
                nn.BatchNorm2d(cout), nn.ReLU6()])

        def construct(self, x):
            return self.features(x)

    class InvertedResidual(nn.Cell):
        def __init__(self, cin, cout, stride, t):
            super().__init__()
            hidden = int(round(cin * t))
            self.residual = stride == 1 and cin == cout
            layers = [ConvBNReLU(cin, hidden, 1)] if t != 1 else []
            layers += [ConvBNReLU(hidden, hidden, 3, stride, groups=hidden), nn.Conv2d(hidden, cout, 1),
                       nn.BatchNorm2d(cout)]
            self.conv = nn.SequentialCell(layers)

        def construct(self, x):
            return x + self.conv(x) if self.residual else self.conv(x)

    class Backbone(nn.Cell):
        def __init__(self):
            super().__init__()
            c = 32
            units = [ConvBNReLU(3, c, 3, 2)]
            for t, out, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                                 (6, 160, 3, 2), (6, 320, 1, 1)):
                for i in range(n):
                    units.append(InvertedResidual(c, divisible(out), s if i == 0 else 1, t))
                    c = divisible(out)
            units.append(ConvBNReLU(c, 1280, 1))
            self.features = nn.SequentialCell(units)

        def construct(self, x):
            return self.features(x)

    class GlobalMean(nn.Cell):
        def construct(self, x):
            return ops.mean(x, (2, 3))

    class Head(nn.Cell):
        def __init__(self):
            super().__init__()
            self.head = nn.SequentialCell([GlobalMean(), nn.Dense(1280, 1000)])

        def construct(self, x):
            return self.head(x)

    class Combine(nn.Cell):
        def __init__(self, backbone, head):
            super().__init__(auto_prefix=False)
            self.backbone, self.head = backbone, head

        def construct(self, x):
            return self.head(self.backbone(x))

    return Combine(Backbone(), Head())


def paddleclas_model(name: str):
    """A PaddleClas backbone by its factory name. PaddleClas is installed without its
    dependencies (it pins numpy 1.24 and opencv, which MindSpore's numpy cannot share): the
    backbone modules need only paddle, so its packages are entered without running their
    ``__init__`` (which imports the whole application: cv2, faiss)."""
    loaded = sys.modules.get("paddleclas")  # entered by an earlier call: find_spec refuses its missing spec
    root = loaded.__path__[0] if loaded is not None else os.path.dirname(importlib.util.find_spec("paddleclas").origin)
    for pkg in ("", "ppcls", "ppcls/arch", "ppcls/arch/backbone", "ppcls/arch/backbone/legendary_models",
                "ppcls/arch/backbone/model_zoo", "ppcls/arch/backbone/base", "ppcls/utils"):
        name_ = "paddleclas" + ("." + pkg.replace("/", ".") if pkg else "")
        if name_ not in sys.modules:
            mod = types.ModuleType(name_)
            mod.__path__ = [os.path.join(root, pkg)]
            sys.modules[name_] = mod
    save_load = types.ModuleType("paddleclas.ppcls.utils.save_load")

    def load_dygraph_pretrain(*a, **k):
        raise RuntimeError("no pretrained weights are downloaded here")
    save_load.load_dygraph_pretrain = load_dygraph_pretrain
    sys.modules.setdefault("paddleclas.ppcls.utils.save_load", save_load)
    logger = importlib.import_module("paddleclas.ppcls.utils.logger")
    if getattr(logger, "_logger", None) is None:
        logger.init_logger()
    for module in ("legendary_models.resnet", "legendary_models.mobilenet_v1", "legendary_models.mobilenet_v3",
                   "legendary_models.pp_lcnet",
                   "legendary_models.vgg", "model_zoo.micronet", "model_zoo.mobilenet_v2", "model_zoo.shufflenet_v2",
                   "model_zoo.squeezenet"):
        m = importlib.import_module("paddleclas.ppcls.arch.backbone." + module)
        if hasattr(m, name):
            return getattr(m, name)()
    raise KeyError(name)


def _bn_values(rng, shapes: dict, names: tuple[str, str, str, str]) -> dict:
    """Random BN statistics and affine parameters (eval exercises every BN term) for each BN of a
    state whose tensors are named ``<bn>.<gamma|beta|mean|var>`` (``names`` in that order);
    weights keep the library's own random init."""
    gamma, beta, mean, var = names
    out = {}
    for k in shapes:
        if k.endswith("." + mean):
            bn = k[: -len(mean) - 1]
            for leaf, dist in ((gamma, "u"), (beta, "n"), (mean, "n"), (var, "u")):
                shape = shapes[f"{bn}.{leaf}"]
                out[f"{bn}.{leaf}"] = (rng.uniform(0.5, 1.5, shape) if dist == "u" else rng.normal(0, 0.1, shape)
                                       ).astype(np.float32)
    return out


def make(library: str, model: str, path: str, x: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    if library == "timm":
        import timm
        import torch
        torch.manual_seed(0)
        net = timm.create_model(model, pretrained=False).eval()
        with torch.no_grad():
            for m in net.modules():
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                    m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 1.5)
                    m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.1)
            for m in net.modules():
                # a residual body's last BN (the one timm zero-initializes) damped 4x: a deep random
                # residual net whose every body adds O(1) to the stream is chaotic, and float32
                # rounding alone would part the frameworks (SE-ResNet-152: 0.37; conformance's
                # calibration damps the same BNs, docs/weights.md)
                if hasattr(m, "zero_init_last"):
                    last = getattr(m, "bn3", None) or getattr(m, "bn2")
                    last.weight.mul_(0.25); last.bias.mul_(0.25)
            y = net(torch.from_numpy(x)).numpy()
        torch.save(net.state_dict(), path)
        return y
    if library in ("mindcv", "mindspore_zoo"):
        import mindspore as ms
        ms.set_seed(0)
        if library == "mindcv":
            import mindcv
            net = mindcv.create_model(model, num_classes=1000)
        else:
            net = mindspore_zoo_mobilenet_v2()
        params = dict(net.parameters_and_names())
        values = _bn_values(rng, {k: tuple(p.shape) for k, p in params.items()},
                            ("gamma", "beta", "moving_mean", "moving_variance"))
        for block in {m.group(1) for k in values if (m := re.match(r"(layer\d\.\d+)\.bn\d\.", k))}:
            last = f"{block}.bn3" if f"{block}.bn3.gamma" in values else f"{block}.bn2"  # damped as timm's
            values[f"{last}.gamma"] *= 0.25
            values[f"{last}.beta"] *= 0.25
        for k, v in values.items():
            params[k].set_data(ms.Tensor(v))
        net.set_train(False)
        y = net(ms.Tensor(x)).asnumpy()
        ms.save_checkpoint(net, path)
        return y
    if library == "paddleclas":
        import paddle
        paddle.seed(0)
        net = paddleclas_model(model)
        net.eval()
        sd = net.state_dict()
        for k, v in _bn_values(rng, {k: tuple(t.shape) for k, t in sd.items()},
                               ("weight", "bias", "_mean", "_variance")).items():
            sd[k].set_value(v)
        y = net(paddle.to_tensor(x)).numpy()
        paddle.save(net.state_dict(), path)
        return y
    raise KeyError(library)


def main(argv):
    library, out, size = argv[0], argv[1], int(argv[2])
    from onespec.convert import read
    from onespec.weights import save_state
    for pair in argv[3:]:  # LIBRARY_MODEL=ARCH[@option=number]: a width the user passes with --set
        pair, _, option = pair.partition("@")
        model, arch = pair.split("=")
        overrides = {option.split("=")[0]: float(option.split("=")[1])} if option else {}
        x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
        path = os.path.join(out, arch + EXT[library])
        y = make(library, model, path, x)
        np.save(os.path.join(out, arch + ".x.npy"), x)
        np.save(os.path.join(out, arch + ".y.npy"), y)
        state, info = read(f"auto:{FRAMEWORK[library]}", arch, path, overrides)
        info["overrides"] = {**info["overrides"], **overrides}
        save_state(state, os.path.join(out, arch + ".npz"))
        with open(os.path.join(out, arch + ".json"), "w") as f:
            json.dump(info, f)


if __name__ == "__main__":
    main(sys.argv[1:])
