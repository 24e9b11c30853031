"""Generated Paddle files: onespec blocked from import, onespec's checkpoint loaded by
``set_state_dict`` (nothing missing or unexpected), equal to onespec's build to 1e-5 eager
and under paddle.jit.to_static."""
import numpy as np
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


_TRAIN_STEP = '''import json, sys
sys.path.insert(0, sys.argv[1])
import importlib.util
import numpy as np
import paddle
from onespec.backends import load_backend
from onespec.spec.model import parse_spec
spec = parse_spec(open(sys.argv[2]).read())
be = load_backend("paddle")
built = be.build(spec)
be.load_state(built, spec, dict(np.load(sys.argv[3])))
found = importlib.util.spec_from_file_location("model", sys.argv[4])
mod = importlib.util.module_from_spec(found)
found.loader.exec_module(mod)
generated = mod.build()
missing, unexpected = generated.set_state_dict(built.state_dict())
assert not missing and not unexpected, (missing, unexpected)
x = paddle.to_tensor(np.random.default_rng(0).standard_normal((4, *spec.input_shape)).astype(np.float32))
for net in (built, generated):
    net.train()
    net(x)
a, b = built.state_dict(), generated.state_dict()
print(json.dumps({k: float(np.max(np.abs(a[k].numpy() - b[k].numpy())) / np.max(np.abs(a[k].numpy())))
                  for k in a if k.endswith(("_mean", "_variance"))}))
'''


def test_generated_paddle_batchnorm_updates_running_variance_like_build(tmp_path):
    """In training, the running variance takes the unbiased batch variance (torch's and
    onespec's convention), not Paddle's biased one."""
    require("paddle")
    import json

    from onespec._proc import run_child
    from onespec.codegen import codegen
    from onespec.codegen.verify import _ROOT
    from onespec.spec.model import parse_spec

    spec = parse_spec(json.dumps({
        "name": "bn", "input_shape": [3, 6, 6], "meta": {"family": "test"},
        "layers": [{"name": "conv", "op": "conv", "out_channels": 4, "kernel": 3, "padding": 1},
                   {"name": "bn", "op": "batchnorm"}, {"name": "pool", "op": "global_avgpool"},
                   {"name": "flatten", "op": "flatten"}, {"name": "bn1d", "op": "batchnorm"}]}))
    (tmp_path / "spec.json").write_text(spec.model_dump_json())
    (tmp_path / "model.py").write_text(codegen(spec, "paddle"))
    np.savez(tmp_path / "state.npz", **onespec.init_state(spec, seed=3))
    code, out, err = run_child(["-c", _TRAIN_STEP, _ROOT, str(tmp_path / "spec.json"), str(tmp_path / "state.npz"),
                                str(tmp_path / "model.py")])
    assert code == 0, err.decode()[-2000:]
    errors = json.loads(out.decode().strip().splitlines()[-1])
    assert set(errors) == {"bn._mean", "bn._variance", "bn1d._mean", "bn1d._variance"}
    assert max(errors.values()) < 1e-6, errors
