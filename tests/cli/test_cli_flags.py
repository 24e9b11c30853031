"""One meaning per flag: ``--set`` is a model option in every command, ``--recipe-set`` a recipe
field; a recipe that names code, and other refusals, are one line and exit 2."""
import pytest

from onespec.cli import main, parser
from onespec.cli.training import model_ref, recipe_sets
from onespec.models import ModelRef, for_recipe
from onespec.training import load_recipe


def _one_line_error(capsys, argv, needle):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("onespec: error: ") and len(err.strip().splitlines()) == 1, err
    assert needle in err, err


@pytest.mark.parametrize("command", ["show", "diff", "export", "train", "eval", "align", "conformance", "convert"])
def test_set_is_a_model_option_in_every_command(command):
    argv = {"convert": ["convert", "w.npz", "--arch", "squeezenet1_1", "--to", "torch", "-o", "x.pth"],
            "export": ["export", "squeezenet1_1", "--format", "onnx", "-o", "x.onnx"],
            "eval": ["eval", "squeezenet1_1", "--weights", "w.npz"],
            "conformance": ["conformance", "squeezenet1_1"]}.get(command, [command, "squeezenet1_1"])
    args = parser().parse_args([*argv, "--set", "num_classes=7"])
    assert args.set == ["num_classes=7"]
    if command in ("train", "eval", "align"):
        ref = model_ref(args)
        assert ref == ModelRef("squeezenet1_1", {"num_classes": 7}, "--set")
        assert "num_classes" not in recipe_sets(args) and "overrides.num_classes" not in recipe_sets(args)


def test_recipe_set_is_a_recipe_field_and_set_wins_over_the_recipe(tmp_path):
    args = parser().parse_args(["train", "squeezenet1_1", "--set", "num_classes=10", "--recipe-set",
                                "optimizer.lr=0.5", "--recipe-set", "overrides.num_classes=3", "--epochs", "2"])
    recipe = load_recipe(None, recipe_sets(args))
    assert recipe.optimizer.lr == 0.5 and recipe.epochs == 2
    assert for_recipe(model_ref(args), recipe, 10).output_shape == (10,)


def test_a_recipe_field_given_to_set_points_at_recipe_set(capsys):
    _one_line_error(capsys, ["train", "squeezenet1_1", "--set", "optimizer.lr=0.01"], "--recipe-set optimizer.lr=0.01")
    _one_line_error(capsys, ["train", "squeezenet1_1", "--set", "epochs=3"], "--recipe-set epochs=3")
    _one_line_error(capsys, ["show", "squeezenet1_1", "--set", "optimizer.lr=0.01"], "never dotted")
    _one_line_error(capsys, ["show", "squeezenet1_1", "--set", "colour=red"],
                    "override colour='red' (--set): squeezenet1_1 has no option 'colour'")


def test_a_recipe_naming_code_is_refused_in_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "evil.yaml").write_text("model: logging:basicConfig\noverrides: {filename: victim, filemode: w}\n")
    _one_line_error(capsys, ["train", "--recipe", "evil.yaml"], "'logging:basicConfig' is Python code")
    (tmp_path / "twice.yaml").write_text("epochs: 1\nepochs: 2\n")
    _one_line_error(capsys, ["train", "squeezenet1_1", "--recipe", "twice.yaml"], "key 'epochs' is given twice")
    _one_line_error(capsys, ["train", "squeezenet1_1", "--recipe-set", "epochs=100000000"], "epochs")
    assert not (tmp_path / "victim").exists()


def test_foreign_code_errors_are_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    _one_line_error(capsys, ["diff", "squeezenet1_1", "--foreign", "./nofile.py:net"], "no such Python file")
    (tmp_path / "mine.py").write_text("def net(width):\n    return width\n")
    _one_line_error(capsys, ["diff", "squeezenet1_1", "--foreign", "./mine.py:net"],
                    "--foreign ./mine.py:net() raised TypeError")
