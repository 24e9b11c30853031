"""The check every capture test makes: the captured spec's tensors are the model's own checkpoint
keys, and the spec built in each framework gives the model's outputs (the capturing framework in
this process, every other in a child)."""
import numpy as np


def capture_and_prove(model, shape, frameworks):
    """(spec, canonical state, {framework: proof}) of ``model`` on one input of ``shape``."""
    from onespec.capture import capture, framework_of, original_names, reference_outputs, state_keys
    from onespec.capture.prove import prove

    fw = framework_of(model)
    spec, state = capture(model, shape)
    assert sorted(original_names(spec, fw).values()) == state_keys(model)
    x = np.random.default_rng(1).standard_normal((2, *shape)).astype(np.float32)
    result = prove(spec, state, [x], [reference_outputs(model, x)], frameworks, here=fw)[0]
    assert all(r["ok"] for r in result.values()), result
    return spec, state, result
