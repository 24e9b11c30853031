"""Generated MindSpore files: onespec blocked from import, onespec's checkpoint loaded by
``load_param_into_net(strict_load=True)``, equal to onespec's build to 1e-5 eager and in GRAPH_MODE."""
import pytest

import onespec
from codegen_cases import assert_generated_equal
from conftest import require

FAST = ["shufflenet_v2_x0_5"]


@pytest.mark.parametrize("name", FAST)
def test_generated_mindspore_equals_build(name, tmp_path):
    require("mindspore")
    assert_generated_equal(name, "mindspore", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in onespec.list_models() if m not in FAST])
def test_generated_mindspore_equals_build_whole_zoo(name, tmp_path):
    require("mindspore")
    assert_generated_equal(name, "mindspore", tmp_path)
