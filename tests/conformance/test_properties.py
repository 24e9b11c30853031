"""Property-based cross-framework tests: random valid specs drawn from every op and combinator
(``tests/strategies.py``). For each, trainable params, state, every intermediate shape, the
eager and compiled outputs (1e-4 vs the numpy backend), the weight round trip and one SGD step
agree in torch, paddle and mindspore. ``ONESPEC_PROPERTY_SPECS`` sets the count (``make fuzz``:
1,000, each compiled and stepped), plus one spec starting with each layer kind of the strategy;
by default 6, compiled and stepped for the fewest holding every op configuration drawn."""
import os
import time

import numpy as np
from hypothesis import HealthCheck, given, settings

import onespec
from onespec.backends import FRAMEWORKS
from onespec.backends import numpy as npb
from onespec.conformance import run_specs
from onespec.spec import OPS
from conftest import REPORTS, require
from strategies import KINDS, specs

N = int(os.environ.get("ONESPEC_PROPERTY_SPECS", "6"))
QUICK = settings(max_examples=N, database=None, derandomize=True, deadline=None,
                 suppress_health_check=list(HealthCheck))


@settings(max_examples=300, database=None, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck))
@given(specs())
def test_numpy_backend_agrees_with_the_spec(spec):
    """In-process (so hypothesis shrinks a failure): the numpy backend's counts and every
    intermediate shape equal the spec's analysis."""
    a = onespec.analyze(spec)
    net = npb.build(spec)
    assert npb.count(net) == (a.params, a.state)
    x = np.random.default_rng(0).standard_normal((2, *spec.input_shape))
    npb.load_state(net, spec, onespec.init_state(spec, 0))
    y, shapes = npb.forward(net, x, record_shapes=True)
    assert y.shape == (2, *a.output_shape) and np.isfinite(y).all()
    assert shapes == a.shapes()


def _drawn() -> list:
    """The property run's specs: ``N`` random ones and one starting with each kind."""
    drawn = []

    @QUICK
    @given(specs())
    def collect(spec):
        drawn.append(spec)

    collect()
    for kind in KINDS:  # and one spec starting with each kind, so that every op is in the run
        @settings(max_examples=1, database=None, derandomize=True, deadline=None,
                  suppress_health_check=list(HealthCheck))
        @given(specs(first=kind))
        def one(spec):
            drawn.append(spec)

        one()
    return drawn


def test_the_property_run_holds_every_registered_op():
    ops = {r.op for s in _drawn() for r in onespec.analyze(s).rows}
    assert ops == set(OPS), f"strategy never drew {set(OPS) - ops}"


def test_random_specs_agree_across_frameworks():
    require(*FRAMEWORKS)
    drawn = _drawn()
    t0 = time.perf_counter()
    # make test: compiled programs and SGD steps for the fewest specs holding every op configuration
    # drawn; make fuzz (ONESPEC_PROPERTY_SPECS set): for every spec
    scope = True if "ONESPEC_PROPERTY_SPECS" in os.environ else "distinct"
    rep = run_specs({f"p{i:04d}": s for i, s in enumerate(drawn)}, numerics=True, static=scope, step=scope)
    REPORTS.append(f"property specs: {len(drawn)} random specs x {len(FRAMEWORKS)} frameworks, "
                   f"{time.perf_counter() - t0:.0f}s\n" + "\n".join(rep.table().splitlines()[-5:]))
    failing = sorted({r["model"] for r in rep.results if r["status"] != "pass"})
    assert not failing, "\n".join([rep.table()[-3000:]] + [drawn[int(m[1:])].model_dump_json()
                                                          for m in failing[:3]])
