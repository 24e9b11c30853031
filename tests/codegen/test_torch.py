"""Generated torch files: onespec blocked from import, onespec's checkpoint loaded by
``load_state_dict(strict=True)``, equal to onespec's build to 1e-5 eager and under torch.export."""
import pytest

import onespec
from codegen_cases import assert_generated_equal
from conftest import require

FAST = ["shufflenet_v1"]


@pytest.mark.parametrize("name", FAST)
def test_generated_torch_equals_build(name, tmp_path):
    require("torch")
    assert_generated_equal(name, "torch", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in onespec.list_models() if m not in FAST])
def test_generated_torch_equals_build_whole_zoo(name, tmp_path):
    require("torch")
    assert_generated_equal(name, "torch", tmp_path)
