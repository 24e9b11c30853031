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
import sys
import types

import numpy as np

EXT = {"timm": ".pth", "mindcv": ".ckpt", "paddleclas": ".pdparams"}
FRAMEWORK = {"timm": "torch", "mindcv": "mindspore", "paddleclas": "paddle"}


def paddleclas_model(name: str):
    """A PaddleClas backbone by its factory name. PaddleClas is installed without its
    dependencies (it pins numpy 1.24 and opencv, which MindSpore's numpy cannot share): the
    backbone modules need only paddle, so its packages are entered without running their
    ``__init__`` (which imports the whole application: cv2, faiss)."""
    root = os.path.dirname(importlib.util.find_spec("paddleclas").origin)
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
    for module in ("legendary_models.resnet", "legendary_models.mobilenet_v1", "legendary_models.vgg", "model_zoo.micronet",
                   "model_zoo.shufflenet_v2", "model_zoo.squeezenet"):
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
            y = net(torch.from_numpy(x)).numpy()
        torch.save(net.state_dict(), path)
        return y
    if library == "mindcv":
        import mindcv
        import mindspore as ms
        ms.set_seed(0)
        net = mindcv.create_model(model, num_classes=1000)
        params = dict(net.parameters_and_names())
        for k, v in _bn_values(rng, {k: tuple(p.shape) for k, p in params.items()},
                               ("gamma", "beta", "moving_mean", "moving_variance")).items():
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
    for pair in argv[3:]:
        model, arch = pair.split("=")
        x = np.random.default_rng(1).standard_normal((2, 3, size, size)).astype(np.float32)
        path = os.path.join(out, arch + EXT[library])
        y = make(library, model, path, x)
        np.save(os.path.join(out, arch + ".x.npy"), x)
        np.save(os.path.join(out, arch + ".y.npy"), y)
        state, info = read(f"auto:{FRAMEWORK[library]}", arch, path)
        save_state(state, os.path.join(out, arch + ".npz"))
        with open(os.path.join(out, arch + ".json"), "w") as f:
            json.dump(info, f)


if __name__ == "__main__":
    main(sys.argv[1:])
