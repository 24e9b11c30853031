"""One generic test over the registry: every model's published figures (what its entry claims,
torchvision's ``_COMMON_META`` style) match the spec, and every claimed importer map exists."""
import pytest

import onespec
from onespec import importers
from onespec.zoo import entry


@pytest.mark.parametrize("name", onespec.list_models())
def test_registered_reference_figures(name):
    e = entry(name)
    assert e.references, f"{name} claims no reference figure"
    problems = [p for r in e.references for p in r.problems(name)]
    assert not problems, problems


@pytest.mark.parametrize("name", onespec.list_models())
def test_registered_importer_maps_exist_and_cover_the_state(name):
    """Every library map a model claims: a known library and rule, options its builder accepts,
    scaled tensors that exist, and a bijection from the whole canonical state onto the library's
    tensor names (checked framework-free, on module paths and canonical last names)."""
    for library, imp in entry(name).importers.items():
        assert library in importers.LIBRARIES and callable(imp.rule)
        spec = onespec.get_spec(name, **imp.overrides)
        names = importers.rule_names(spec, library)
        assert set(names) == set(onespec.weights.layout(spec))
        assert len(set(names.values())) == len(names)
        assert set(imp.scales) <= set(names)


def test_a_wrong_figure_is_reported():
    from onespec.zoo import Reference
    r = Reference("test", params=1_235_497)
    assert r.problems("squeezenet1_1") and "1,235,496" in r.problems("squeezenet1_1")[0]
