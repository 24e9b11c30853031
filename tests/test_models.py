"""The one model resolver (onespec.models): zoo names, spec files, module:function and ModelSpec
objects, their overrides and where each came from; the recipe rules (a recipe is data)."""
import json
import math

import pytest

import onespec
from onespec.errors import OverrideError, SpecError
from onespec.models import ModelError, ModelRef, Override, for_recipe, kind, load_spec, resolve
from onespec.spec import ModelSpec
from onespec.training.recipe import RecipeError, load_recipe

NET = '''
from onespec.spec import ModelSpec
from onespec.spec.nodes import Act, Conv, Flatten, GlobalAvgPool, Linear


def net(num_classes: int = 10, input_size: int = 16):
    return ModelSpec(name="mynet", input_shape=(3, input_size, input_size),
                     meta={"family": "test", "num_classes": num_classes},
                     layers=[Conv(name="conv", out_channels=4, kernel=3, padding=1), Act(name="relu", fn="relu"),
                             GlobalAvgPool(name="pool"), Flatten(name="flatten"),
                             Linear(name="fc", out_features=num_classes)])


def fixed():
    return net()


def broken(width: float = 1.0):
    raise RuntimeError("no such width")


def not_a_spec():
    return 42
'''


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A folder holding ``mynet.py`` and its spec as ``mynet.json`` / ``mynet.yaml``, as cwd."""
    import yaml

    (tmp_path / "mynet.py").write_text(NET)
    monkeypatch.chdir(tmp_path)
    spec = resolve("mynet:net")
    (tmp_path / "mynet.json").write_text(spec.model_dump_json(indent=1))
    (tmp_path / "mynet.yaml").write_text(yaml.safe_dump(spec.model_dump(mode="json"), sort_keys=False))
    return tmp_path


def test_the_four_kinds_resolve_to_the_same_network(here):
    code = resolve("mynet:net")
    assert [kind(m) for m in ("squeezenet1_1", "mynet.json", "a/b.yml", "mynet:net", code)] == \
        ["zoo", "file", "file", "code", "spec"]
    assert load_spec("mynet.json") == load_spec("mynet.yaml") == code == resolve(code) == resolve("mynet.yaml")
    assert onespec.load_spec("mynet.json") == onespec.parse_spec((here / "mynet.json").read_text()) == code
    assert onespec.analyze("mynet.json").params == onespec.analyze(code).params == onespec.analyze("mynet:net").params
    assert resolve("squeezenet1_1", {"num_classes": 7}).output_shape == (7,)


def test_numpy_builds_a_spec_file_through_the_api(here):
    import numpy as np

    x = np.ones((2, 3, 16, 16))
    assert onespec.build("mynet.json", backend="numpy")(x).shape == (2, 10)
    assert onespec.build("mynet:net", backend="numpy", num_classes=3)(x).shape == (2, 3)


def test_overrides_that_do_not_fit_a_spec_file_name_the_key_and_origin(here):
    with pytest.raises(OverrideError, match=r"width=0.5 \(--set\) does not apply to the spec file mynet.json"):
        resolve("mynet.json", {"width": 0.5}, origin="--set")
    with pytest.raises(OverrideError, match=r"num_classes=5 \(keyword argument\).*outputs \(10,\)"):
        onespec.analyze("mynet.json", num_classes=5)
    # an override that restates the file is no change, and accepted
    assert resolve("mynet.json", {"num_classes": 10, "input_size": 16, "in_channels": 3}) == load_spec("mynet.json")
    spec = load_spec("mynet.json")
    with pytest.raises(OverrideError, match="the ModelSpec mynet"):
        onespec.build(spec, backend="numpy", input_size=32)


def test_a_zoo_option_that_does_not_exist_names_its_origin():
    with pytest.raises(OverrideError, match=r"colour='red' \(recipe overrides\): squeezenet1_1 has no option"):
        resolve("squeezenet1_1", {"colour": Override("red", "recipe overrides")})


def test_module_function_keywords_and_their_errors(here):
    # a default is passed only where the function takes it; an explicit keyword it lacks is refused
    assert resolve("mynet:fixed", defaults={"input_size": 32}, num_classes=10).input_shape == (3, 16, 16)
    assert resolve("mynet:net", defaults={"input_size": 32}).input_shape == (3, 32, 32)
    with pytest.raises(OverrideError, match=r"input_size=8 \(--set\): mynet:fixed takes no keyword 'input_size'"):
        resolve("mynet:fixed", {"input_size": 8}, origin="--set")
    with pytest.raises(ModelError, match=r"mynet:broken\(\) raised RuntimeError: no such width"):
        resolve("mynet:broken")
    with pytest.raises(ModelError, match="returned a int, not a ModelSpec"):
        resolve("mynet:not_a_spec")
    with pytest.raises(ModelError, match="has no 'nope'"):
        resolve("mynet:nope")
    with pytest.raises(ModelError, match="no module named 'nomodule'"):
        resolve("nomodule:net")
    assert resolve(f"{here / 'mynet.py'}:net", {"num_classes": 4}).output_shape == (4,)


def test_spec_files_are_hostile_documents(here):
    (here / "latin1.yaml").write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(SpecError, match="latin1.yaml: not UTF-8"):
        load_spec("latin1.yaml")
    (here / "bomb.yaml").write_text("a: &a [1, 2]\nb: [*a, *a]\n")
    with pytest.raises(SpecError, match="bomb.yaml: line 2.*alias \\*a is not accepted"):
        load_spec("bomb.yaml")
    (here / "broken.json").write_text('{"name": "x", "input_shape": [3, 8, 8], "layers": [], "meta": {"family": "t"}}')
    with pytest.raises(SpecError, match="broken.json"):
        load_spec("broken.json")
    with pytest.raises(FileNotFoundError, match="no such spec file: gone.json"):
        resolve("gone.json")
    with pytest.raises(onespec.UnknownModelError, match="a spec file .json/.yaml/.yml or module:function"):
        resolve("squeezenet9")


def test_train_default_recipe_takes_a_spec_file_at_its_own_size(here):
    """The digits' 32x32 is a default: a spec file keeps its 16x16 (the data is resized to it);
    an explicit image_size that disagrees is refused, naming the recipe field."""
    r = load_recipe()
    assert for_recipe("mynet.json", r, 10).input_shape == (3, 16, 16)
    assert for_recipe("mynet:fixed", r, 10).input_shape == (3, 16, 16)
    assert for_recipe("mynet:net", r, 10).input_shape == (3, 32, 32)
    assert for_recipe("squeezenet1_1", r, 10).input_shape == (3, 32, 32)
    with pytest.raises(OverrideError, match=r"input_size=64 \(recipe image_size\) does not apply to the spec file"):
        for_recipe("mynet.json", load_recipe(None, {"image_size": 64}), 10)
    with pytest.raises(OverrideError, match=r"width=0.5 \(recipe overrides\)"):
        for_recipe("mynet.json", load_recipe(None, {"overrides.width": 0.5}), 10)
    with pytest.raises(ModelError, match="outputs \\(10,\\), the data has 3 classes"):
        for_recipe("mynet.json", r, 3)
    # the command line's --set wins over the recipe's overrides
    ref = ModelRef("squeezenet1_1", {"width": 1.0}, "--set")
    assert for_recipe(ref, load_recipe(None, {"overrides.num_classes": 10}), 10).output_shape == (10,)


def test_a_recipe_names_no_code(here):
    (here / "evil.yaml").write_text("model: logging:basicConfig\noverrides: {filename: victim.txt, filemode: w}\n")
    with pytest.raises(RecipeError, match="'logging:basicConfig' is Python code"):
        load_recipe("evil.yaml")
    # and a Recipe built otherwise still never runs its model as code
    r = load_recipe()
    object.__setattr__(r, "model", "mynet:net")
    with pytest.raises(ModelError, match="a recipe may not name"):
        for_recipe(None, r, 10)
    assert not (here / "victim.txt").exists()
    (here / "ok.yaml").write_text("model: mynet.json\n")
    assert for_recipe(None, load_recipe("ok.yaml"), 10).name == "mynet"


@pytest.mark.parametrize("text, field", [
    ("epochs: 100000000\n", "epochs"),
    ("epochs: 1.0e+8\n", "epochs"),
    ("optimizer: {lr: -0.1}\n", "optimizer.lr"),
    ("optimizer: {lr: .nan}\n", "optimizer.lr"),
    ("batch_size: 0\n", "batch_size"),
    ("seed: -1\n", "seed"),
    ("train_transforms: [{op: random_crop, size: 32, padding: 1000000}]\n", "train_transforms.0.padding"),
    ("data: {workers: 100000}\n", "data.workers"),
])
def test_absurd_recipe_values_are_refused_naming_the_field(tmp_path, text, field):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError, match=f"r.yaml: {field}") as err:
        load_recipe(str(path))
    assert "\n" not in str(err.value)


def test_recipe_files_are_utf8_and_name_each_key_once(tmp_path):
    (tmp_path / "latin.yaml").write_bytes("model: r\xe9seau.json\n".encode("latin-1"))
    with pytest.raises(RecipeError, match="latin.yaml: not UTF-8"):
        load_recipe(str(tmp_path / "latin.yaml"))
    (tmp_path / "twice.yaml").write_text("epochs: 5\nbatch_size: 8\nepochs: 500\n")
    with pytest.raises(RecipeError, match="twice.yaml: line 3.*key 'epochs' is given twice"):
        load_recipe(str(tmp_path / "twice.yaml"))
    (tmp_path / "nested.yaml").write_text("optimizer:\n  lr: 0.1\n  lr: 0.2\n")
    with pytest.raises(RecipeError, match="key 'lr' is given twice"):
        load_recipe(str(tmp_path / "nested.yaml"))
    assert math.isclose(load_recipe(None, {"optimizer.lr": 0.2}).optimizer.lr, 0.2)
    assert json.loads(load_recipe().model_dump_json())["epochs"] == 5
    assert isinstance(resolve("squeezenet1_1"), ModelSpec)


def test_a_folder_given_as_a_model_names_the_spec_file_inside(tmp_path):
    """A capture's or port's folder is not a model; the error points at its spec file."""
    (tmp_path / "case.json").write_text("{}")
    (tmp_path / "spec.json").write_text(onespec.get_spec("squeezenet1_1").model_dump_json())
    with pytest.raises(onespec.OnespecError, match=f"{tmp_path} is a folder, not a model; its spec file: "
                                                    f"{tmp_path / 'spec.json'}"):
        resolve(str(tmp_path))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(onespec.OnespecError, match="is a folder, not a model .a model is a zoo name"):
        resolve(str(empty))
