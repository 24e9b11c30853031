"""``onespec codegen``: the file written for a zoo name or a spec file; a node without a generated
form is one line naming it, exit 2."""
import ast

import onespec
from onespec.cli import main


def test_codegen_writes_a_file_for_a_zoo_model_and_a_spec_file(tmp_path):
    out = tmp_path / "model.py"
    assert main(["codegen", "squeezenet1_1", "--backend", "paddle", "--set", "num_classes=10", "-o", str(out)]) == 0
    src = out.read_text()
    ast.parse(src)
    assert "def build(num_classes=10):" in src and "import onespec" not in src
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(onespec.get_spec("mobilenet_v2", input_size=32).model_dump_json())
    assert main(["codegen", str(spec_file), "--backend", "mindspore", "-o", str(out)]) == 0
    assert "class " in out.read_text() and "GRAPH_MODE" in out.read_text()


def test_op_without_generated_form_is_one_line(tmp_path, capsys):
    spec = {"name": "up", "input_shape": [3, 8, 8], "meta": {"family": "test"},
            "layers": [{"name": "conv", "op": "conv", "out_channels": 4, "kernel": 3, "padding": 1},
                       {"name": "norm", "op": "batchnorm", "affine": False}]}
    path = tmp_path / "up.json"
    import json
    path.write_text(json.dumps(spec))
    assert main(["codegen", str(path), "--backend", "torch", "-o", str(tmp_path / "m.py")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "norm: batchnorm without affine parameters" in err[0]
    assert not (tmp_path / "m.py").exists()
