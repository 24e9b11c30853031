"""The ops added for captured models (prelu, hardtanh, gelu, softmax, l2-normalize, permute, mean,
pad, constant affine, layer scale, slice, pixel shuffle, last-axis linear and layernorm, and the
graph form with its merges): shape rules, the rules they enforce, and in every framework the same
numbers as the numpy reference, compiled and eager, and the same SGD step."""
import numpy as np
import pytest

import onespec
from onespec.backends import FRAMEWORKS
from onespec.conformance import run_specs
from pydantic import ValidationError
from onespec.spec import ModelMeta, ModelSpec, analyze
from onespec.spec.nodes import (Act, Affine, Conv, Flatten, Graph, HardTanh, L2Normalize, LayerNorm, LayerScale, Linear,
                                Mean, Merge, Pad, Permute, PixelShuffle, PReLU, Slice, Softmax)

from conftest import require


def _spec(outputs=None, name="newops"):
    g = Graph(name="g", nodes=[
        Conv(name="a", out_channels=8, kernel=3, padding=1), PReLU(name="p"), Conv(name="b", out_channels=8, kernel=1),
        Merge(name="cat", mode="concat"), Softmax(name="sm"), L2Normalize(name="l2", axis=-1), LayerScale(name="ls"),
        Affine(name="af", scale=2.0, shift=-1.0), HardTanh(name="ht", min_val=-0.5, max_val=0.8),
        Act(name="ge", fn="gelu"), Act(name="get", fn="gelu_tanh"), PixelShuffle(name="ps", factor=2),
        Merge(name="mul", mode="mul"), Merge(name="add", mode="add"), Mean(name="mean", axes=(1,), keepdim=True),
        Permute(name="perm", dims=(1, 2, 0)), LayerNorm(name="ln", last_axis=True),
        Linear(name="lin", out_features=5, last_axis=True), Flatten(name="f"), Linear(name="fc", out_features=3)],
        inputs={"b": ["x"], "cat": ["p", "b"], "mul": ["ps", "ps"], "add": ["mul", "ps"]}, outputs=outputs or [])
    return ModelSpec(name=name, input_shape=(3, 6, 6), meta=ModelMeta(family="test"), layers=[
        Pad(name="pad", pads=((1, 1), (0, 2))), Slice(name="sl", start=0, stop=2), PReLU(name="pr", shared=True), g])


def test_shapes_and_tensors_of_the_new_ops():
    a = analyze(_spec())
    shapes = a.shapes()
    assert shapes["pad"] == (3, 8, 8) and shapes["sl"] == (2, 8, 8) and shapes["g.cat"] == (16, 8, 8)
    assert shapes["g.ps"] == (4, 16, 16) and shapes["g.mean"] == (4, 1, 16) and shapes["g.perm"] == (1, 16, 4)
    assert shapes["g.lin"] == (1, 16, 5) and a.output_shape == (3,)
    from onespec.weights import layout
    names = layout(_spec())
    assert names["pr.weight"].shape == (1,) and names["g.p.weight"].shape == (8,) and names["g.p.weight"].role == "slope"
    assert names["g.ls.gamma"].shape == (16,) and names["g.ln.weight"].shape == (4,)


@pytest.mark.parametrize("layers, path, rule", [
    ([Merge(name="m", mode="add")], "m", "merge"),
    ([Softmax(name="s", axis=3)], "s", "axis"),
    ([Permute(name="p", dims=(0, 0, 1))], "p", "permute"),
    ([Slice(name="s", start=2, stop=9)], "s", "slice"),
    ([PixelShuffle(name="p", factor=2)], "p", "groups"),
    ([Pad(name="p", pads=((1, 1),))], "p", "pad"),
    ([Mean(name="m", axes=(0, 1, 2))], "m", "axis"),
    ([Graph(name="g", nodes=[Conv(name="a", out_channels=2, kernel=1), Conv(name="b", out_channels=2, kernel=1)],
            inputs={"a": ["b"]})], "g.a", "graph"),
    ([Graph(name="g", nodes=[Conv(name="a", out_channels=2, kernel=1), Conv(name="b", out_channels=2, kernel=1)],
            inputs={"b": ["x"]})], "g", "graph"),  # a's output is never read
    ([Graph(name="g", nodes=[Conv(name="a", out_channels=2, kernel=1), Merge(name="m", mode="add")],
            inputs={"m": ["a", "x"]})], "g.m", "merge"),  # 2 + 3 channels
    ([Graph(name="g", nodes=[Conv(name="a", out_channels=2, kernel=1)], outputs=["a", "a"]),
      Flatten(name="f")], "g", "graph"),  # several outputs, then more layers
])
def test_rules_of_the_new_ops(layers, path, rule):
    with pytest.raises(ValidationError) as e:
        ModelSpec(name="bad", input_shape=(3, 4, 4), layers=layers, meta=ModelMeta(family="t"))
    assert f"{path}: [{rule}]" in str(e.value), str(e.value)


@pytest.mark.slow  # make test: the property specs draw each of these ops (tests/strategies.py)
def test_new_ops_agree_in_every_framework():
    """Eager and compiled outputs against the float64 numpy reference, and one SGD step."""
    require(*FRAMEWORKS)
    rep = run_specs({"newops": _spec()}, numerics=True, static=True, step=True)
    assert rep.ok, rep.table()[-3000:]


@pytest.mark.parametrize("name, ok", [("_blocks", True), ("block1-0", True), ("_modules", False), ("_merge", False),
                                      ("__init__", False), ("-a", False), ("_1", False), ("forward", False)])
def test_node_names_real_models_use(name, ok):
    """``_blocks`` and RegNet's ``block1-0`` are accepted; private attributes of the frameworks'
    modules (``_modules``) or of onespec's emitted ones (``_merge``) stay refused."""
    from onespec.spec.nodes import Identity

    if ok:
        assert Identity(name=name).name == name
    else:
        with pytest.raises(ValidationError):
            Identity(name=name)


def test_a_wired_network_returns_its_outputs_in_order():
    """Top-level wiring (``inputs``/``outputs`` on the spec) in the numpy reference."""
    from onespec.backends import load_backend

    spec = ModelSpec(name="wired", input_shape=(2, 4, 4), meta=ModelMeta(family="t"), layers=[
        Conv(name="a", out_channels=3, kernel=1), Conv(name="b", out_channels=3, kernel=1),
        Merge(name="sum", mode="add"), Flatten(name="f")],
        inputs={"b": ["x"], "sum": ["a", "b"]}, outputs=["f", "a"])
    assert spec.output_shape == ((48,), (3, 4, 4))
    b = load_backend("numpy")
    net = b.build(spec)
    b.load_state(net, spec, onespec.init_state(spec, 0))
    x = np.random.default_rng(0).standard_normal((2, 2, 4, 4))
    (f, a), shapes = b.forward(net, x, record_shapes=True)
    assert f.shape == (2, 48) and a.shape == (2, 3, 4, 4) and shapes["sum"] == (3, 4, 4)
    np.testing.assert_allclose(f.reshape(2, 3, 4, 4), a + b.run_node(net, "b", x))
