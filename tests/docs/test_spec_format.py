"""docs/spec-format.md's worked example, in JSON and in YAML, is a valid spec that builds."""
import os
import re

import numpy as np

import onespec
from onespec.spec import trace
from onespec.weights import init_state

DOC = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "spec-format.md")


def _blocks(lang: str) -> list[str]:
    with open(DOC, encoding="utf-8") as f:
        return re.findall(rf"```{lang}\n(.*?)```", f.read(), re.S)


def test_the_json_and_yaml_examples_are_one_network_that_builds(tmp_path):
    (json_text,), (yaml_text,) = _blocks("json"), _blocks("yaml")
    (tmp_path / "tinyres.yaml").write_text(yaml_text)
    (tmp_path / "tinyres.json").write_text(json_text)
    spec = onespec.parse_spec(json_text)
    assert onespec.load_spec(str(tmp_path / "tinyres.yaml")) == spec
    assert onespec.load_spec(str(tmp_path / "tinyres.json")) == spec
    shapes = {r.path: r.out_shape for r in trace(spec)}
    assert shapes["block"] == (16, 32, 32) and shapes["pool"] == (16, 16, 16) and spec.output_shape == (10,)
    from onespec.backends import load_backend
    numpy_backend = load_backend("numpy")
    net = numpy_backend.build(spec)
    numpy_backend.load_state(net, spec, init_state(spec, 0))
    y = net(np.random.default_rng(0).standard_normal((2, 3, 32, 32)))
    assert y.shape == (2, 10) and np.isfinite(y).all()
