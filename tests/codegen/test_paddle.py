"""Generated Paddle files: onespec blocked from import, onespec's checkpoint loaded by
``set_state_dict`` (nothing missing or unexpected), equal to onespec's build to 1e-5 eager
and under paddle.jit.to_static."""
import pytest

import onespec
from codegen_cases import assert_generated_equal
from conftest import require

FAST = ["mobilenet_v3_small"]


@pytest.mark.parametrize("name", FAST)
def test_generated_paddle_equals_build(name, tmp_path):
    require("paddle")
    assert_generated_equal(name, "paddle", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", [m for m in onespec.list_models() if m not in FAST])
def test_generated_paddle_equals_build_whole_zoo(name, tmp_path):
    require("paddle")
    assert_generated_equal(name, "paddle", tmp_path)
