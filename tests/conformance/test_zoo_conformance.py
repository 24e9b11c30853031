"""Every zoo model built natively in torch, paddle and mindspore, checked against its spec and,
with the same weights, against the numpy backend (one process per framework).

``make test`` runs one model per configuration class (models whose networks differ only in sizes
and depth -- resnet50/101/152, vgg11..19 -- go through the same emitted code: the cheapest stands
for them, 19 of 38; ``make slow`` and ``make run`` run all), each at the smallest input size whose pools, adaptive pools and convs
take the same cases as at its default size (``onespec conformance --small``: 48 px for most
families, 64 for MicroNet, the default for VGG, whose adaptive pool would change case, and for
HybridSN and the CIFAR VGG, already small); the compiled programs and the one-SGD-step comparison
run for the fewest models that hold every op configuration of the zoo (``--compile distinct
--step distinct``, 8 of 38: compilation and MindSpore's PYNATIVE gradient were most of this
fixture's time). ``make slow`` runs the default sizes, every model compiled and stepped.
"""
import time

import pytest

import onespec
from onespec import conformance
from onespec.backends import FRAMEWORKS as BACKENDS
from onespec.conformance.numerics import configurations, cost, distinct

from conftest import REPORTS, require

ALL_MODELS = onespec.list_models()


def _small_specs():
    from onespec.conformance.numerics import small_overrides
    return {n: onespec.get_spec(n, **small_overrides(n)) for n in ALL_MODELS}


def _classes(specs) -> dict[frozenset, list[str]]:
    out: dict[frozenset, list[str]] = {}
    for n, s in specs.items():
        out.setdefault(frozenset(configurations(s)), []).append(n)
    return out


SMALL_SPECS = _small_specs()
MODELS = sorted(min(g, key=lambda n: (cost(SMALL_SPECS[n]), n)) for g in _classes(SMALL_SPECS).values())


def _run(small: bool):
    require(*BACKENDS)
    t0 = time.perf_counter()
    scope = "distinct" if small else True
    rep = conformance.run(MODELS if small else ALL_MODELS, BACKENDS, numerics=True, small=small, static=scope,
                          step=scope)
    REPORTS.append(f"onespec conformance --numerics{' --small' if small else ''} (whole zoo)\n{rep.table()}\n"
                   f"wall time {time.perf_counter() - t0:.0f}s")
    return {(r["model"], r["backend"]): r for r in rep.results}


@pytest.fixture(scope="session")
def report():
    """The whole zoo in every framework, numerics included (``onespec conformance --numerics --small``)."""
    return _run(small=True)


@pytest.mark.slow
def test_whole_zoo_at_default_sizes():
    rep = _run(small=False)
    assert all(r["status"] == "pass" for r in rep.values()), [r["problems"] for r in rep.values() if r["problems"]]

@pytest.mark.frameworks
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MODELS)
def test_conformance(report, name, backend):
    r = report[(name, backend)]
    assert r["status"] != "error", r["problems"]
    assert not [p for p in r["problems"] if not p.startswith(NUMERIC_PROBLEMS)], r["problems"]
    a = onespec.analyze(onespec.get_spec(name, **r["overrides"]))
    assert (r["params"], r["state"]) == (a.params, a.state)
    assert r["shapes_ok"] == r["shapes_checked"] == len(a.rows)
    if name in COMPILED:
        assert r["static_rel_err"] is not None and r["static_rel_err"] <= 1e-4
    else:
        assert r["static_rel_err"] is None


COMPILED = set(distinct({n: s for n, s in SMALL_SPECS.items() if n in MODELS}))


def test_models_run_hold_every_configuration_of_the_zoo():
    """make test's models stand for the whole zoo: every model's configurations are exactly one
    of theirs (a new option or block brings its model in), and the compiled / stepped ones among
    them hold every configuration."""
    specs = SMALL_SPECS
    classes = _classes(specs)
    assert len(MODELS) == len(classes) and all(any(m in g for m in MODELS) for g in classes.values())
    every = set().union(*(configurations(s) for s in specs.values()))
    assert set().union(*(configurations(specs[n]) for n in COMPILED)) == every
    assert len(COMPILED) < len(ALL_MODELS) / 3
    assert {"resnet18", "vgg11", "shufflenet_v2_x0_5"} <= set(MODELS) and "resnet152" not in MODELS
    # models that only differ in sizes: the smallest stands for them; a new option brings its model in
    nets = {n: onespec.get_spec(n) for n in ("resnet34", "resnet18", "squeezenet1_1")}
    assert configurations(nets["resnet18"]) == configurations(nets["resnet34"])
    assert distinct(nets) == ["resnet18", "squeezenet1_1"]  # ceil-mode max pool, concat merge


NUMERIC_PROBLEMS = ("output differs from the numpy reference", "compiled output differs from the numpy reference",
                    "one SGD step differs")


@pytest.mark.frameworks
@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("name", MODELS)
def test_numerical_conformance(report, name, backend):
    """Same weights (init_state) -> outputs within 1e-4 of the numpy reference, eager and compiled
    (torch.export / paddle.jit.to_static / MindSpore GRAPH_MODE); bit-exact weight round trip;
    one SGD step agrees with the other frameworks."""
    r = report[(name, backend)]
    assert r["numeric_rel_err"] <= 1e-4
    assert (r["static_numeric_rel_err"] is None) if name not in COMPILED else r["static_numeric_rel_err"] <= 1e-4
    assert r["roundtrip_exact"] is True
    if name in COMPILED:
        assert r["train_ok"], (r["train_param_err"], r["train_tensor_err"], r["train_state_err"], r["train_worst"])
    else:
        assert "train_ok" not in r


@pytest.mark.frameworks
@pytest.mark.parametrize("name", MODELS)
def test_parameter_paths_are_the_same_in_every_framework(report, name):
    paths = {b: report[(name, b)]["param_modules"] for b in BACKENDS}
    assert paths["torch"] == paths["paddle"] == paths["mindspore"]
    convs = {r.path for r in onespec.analyze(name).rows if r.op in ("conv", "linear")}
    assert convs <= set(paths["torch"])


