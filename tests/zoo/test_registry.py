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
    for importer, rule in entry(name).importers.items():
        assert importer == "torchvision" and rule in importers._RULES
        names = importers.torchvision_names(onespec.get_spec(name))
        assert len(set(names.values())) == len(names)  # a bijection onto torchvision's keys


def test_a_wrong_figure_is_reported():
    from onespec.zoo import Reference
    r = Reference("test", params=1_235_497)
    assert r.problems("squeezenet1_1") and "1,235,496" in r.problems("squeezenet1_1")[0]
