"""Every zoo model round-trips: the capture of onespec's own torch build is a spec with the same
parameters, state and tensor names (MACs too, except MicroNet's shift-max, whose own multiplies
become merges), and computes the same outputs."""
import numpy as np
import pytest

import onespec
from onespec.spec import ModelSpec

from conftest import require


def _small(name: str) -> ModelSpec:
    spec = onespec.get_spec(name)
    if len(spec.input_shape) == 3:  # a small image keeps the round trip quick; every zoo model takes it
        spec = ModelSpec.model_validate({**spec.model_dump(), "input_shape": (spec.input_shape[0], 64, 64)})
    return spec


def _round_trip(name: str) -> None:
    from onespec.backends import load_backend
    from onespec.capture import capture, reference_outputs

    tb = load_backend("torch")
    spec = _small(name)
    net = tb.build(spec, channels_last=False)
    state = onespec.init_state(spec, 0)
    tb.load_state(net, spec, state)
    captured, cstate = capture(net, spec.input_shape)
    a, b = onespec.analyze(spec), onespec.analyze(captured)
    assert (a.params, a.state) == (b.params, b.state) and sorted(cstate) == sorted(state)
    assert a.macs == b.macs or name.startswith("micronet")
    again = tb.build(captured, channels_last=False)
    tb.load_state(again, captured, cstate)
    x = np.random.default_rng(0).standard_normal((2, *spec.input_shape)).astype(np.float32)
    np.testing.assert_allclose(tb.forward(again, x)[0], reference_outputs(net, x), rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", ["squeezenet1_1", "mobilenet_v3_small"])
def test_zoo_models_round_trip(name):
    require("torch")
    _round_trip(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", onespec.list_models())
def test_every_zoo_model_round_trips(name):
    require("torch")
    _round_trip(name)
