"""onespec export: every format made by its framework, loaded and run in its own runtime, matched
against the numpy reference (the command's own check, 1e-4), at two batch sizes. ``make test``
gives each of the five listed models one format (a Latin square: every model and every format
once) and MindIR to the fewest zoo models holding every pool configuration of the zoo, at small
sizes; ``make slow`` every zoo model in every format at its default input size. Destinations are
refused before any work, and a killed export leaves no file and no process behind."""
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import onespec
from onespec.conformance.numerics import small_overrides
from onespec.export import ExportError, check_destination, export, formats
from onespec.spec import trace
from onespec.spec.nodes import AdaptiveAvgPool, AvgPool, Conv, Flatten, Linear, MaxPool
from onespec.zoo import entry
from onespec.zoo.common import model

from commands import is_alive
from conftest import require

pytestmark = pytest.mark.frameworks
MODELS = ["mobilenet_v2", "shufflenet_v2_x1_0", "micronet_m1", "resnet50", "hybridsn"]
FORMATS = formats()
FMTS = list(FORMATS)
SUFFIX = {"onnx": ".onnx", "onnx-paddle": ".onnx", "mindir": ".mindir", "paddle": "", "torch-export": ".pt2"}


def _export(name, fmt, tmp_path, fold=False, overrides=None):
    """``name`` exported as ``fmt`` (``overrides``: default the small test size)."""
    require(FORMATS[fmt][0], *(("onnxruntime",) if "onnx" in fmt else ()))
    from onespec.conformance.calibration import calibrate
    spec = onespec.get_spec(name, **(small_overrides(name) if overrides is None else overrides))
    out = str(tmp_path / f"{name}{SUFFIX[fmt]}")
    x = np.random.default_rng(0).standard_normal((4, *spec.input_shape)).astype(np.float32)
    state, _ = calibrate(spec, onespec.init_state(spec, 0), x)  # trained-like scales, as conformance does
    rep = export(spec, state, fmt, out, fold=fold)
    assert rep.checked and set(rep.rel_err) == {2, 3} and max(rep.rel_err.values()) <= 1e-4, rep.line()
    assert rep.files and all(os.path.exists(f) for f in rep.files)
    assert not [f for f in os.listdir(tmp_path) if f.startswith(".onespec")]  # nothing half-written left
    return rep


@pytest.mark.parametrize("i", range(len(MODELS)))
def test_each_format_runs_in_its_runtime(i, tmp_path):
    _export(MODELS[i], FMTS[i], tmp_path)


def _tiny(name: str) -> dict:
    """The small test size, at a quarter width where the model takes one that builds (pools keep
    their fields)."""
    small = small_overrides(name)
    if "width" not in entry(name).accepted():
        return small
    try:
        onespec.get_spec(name, **{**small, "width": 0.25})
    except onespec.OnespecError:
        return small
    return {**small, "width": 0.25}


def _pool_cover() -> list[str]:
    """The fewest zoo models (greedy, the cheapest on a tie) whose pools, at ``_tiny`` sizes, hold
    every pool configuration (op and fields) of the zoo."""
    held, macs = {}, {}
    for name in onespec.list_models():
        spec = onespec.get_spec(name, **_tiny(name))
        held[name] = {json.dumps(r.node.model_dump(exclude={"name"}), sort_keys=True)
                      for r in trace(spec) if r.op in ("maxpool", "avgpool")}
        macs[name] = onespec.analyze(spec).macs
    todo, chosen = set().union(*held.values()), []
    while todo:
        best = max(sorted(held), key=lambda n: (len(held[n] & todo), -macs[n]))
        chosen.append(best)
        todo -= held[best]
    return chosen


@pytest.mark.parametrize("name", _pool_cover())
def test_zoo_models_with_pools_export_to_mindir(name, tmp_path):
    _export(name, "mindir", tmp_path, overrides=_tiny(name))


def test_every_pool_configuration_survives_a_dynamic_batch_mindir(tmp_path):
    """Padded, ceil-mode (a window over the padding's end, a window gained), "same", and average
    pools counting the padding or not, chained: the MindIR loads and matches numpy at two batch
    sizes (MindSpore's padded nn pools lost their rank in a dynamic-batch graph)."""
    require("mindspore")
    pools = [MaxPool(name="p1", kernel=3, stride=2, padding=1),                       # 24x23 -> 12x12
             AvgPool(name="p2", kernel=3, stride=2, padding=1, ceil_mode=True),       # overhang: 7x7
             MaxPool(name="p3", kernel=2, stride=2, ceil_mode=True),                  # gains a window: 4x4
             AvgPool(name="p4", kernel=3, stride=1, padding=1, count_include_pad=False),
             MaxPool(name="p5", kernel=3, stride=2, padding="same"),
             AvgPool(name="p6", kernel=2, stride=1, padding="same", count_include_pad=False)]
    spec = model("pools", (3, 24, 23), [Conv(name="conv", out_channels=4, kernel=1), *pools, Flatten(name="flatten"),
                                         Linear(name="fc", out_features=3)], family="test", paper="", source="",
                 num_classes=3)
    rep = export(spec, onespec.init_state(spec, 0), "mindir", str(tmp_path / "pools.mindir"))
    assert rep.checked and max(rep.rel_err.values()) <= 1e-4, rep.line()


@pytest.mark.slow
@pytest.mark.parametrize("fmt", FMTS)
@pytest.mark.parametrize("name", onespec.list_models())
def test_every_zoo_model_in_every_format_at_its_default_size(name, fmt, tmp_path):
    _export(name, fmt, tmp_path, overrides={})


def test_folded_onnx_has_no_batchnorm(tmp_path):
    require("torch", "onnx", "onnxruntime")
    import onnx
    rep = _export("mobilenet_v2", "onnx", tmp_path, fold=True)
    ops = {n.op_type for n in onnx.load(rep.files[0]).graph.node}
    assert "BatchNormalization" not in ops and "Conv" in ops and rep.folded


def _pool_to_7():
    """A 3x3 map adaptively pooled to 7x7: ONNX has no adaptive pool; paddle2onnx emits an
    AveragePool with stride 3 // 7 = 0, which onnxruntime refuses to load."""
    return model("pool7", (3, 12, 12), [Conv(name="conv", out_channels=4, kernel=3, stride=4),
                                        AdaptiveAvgPool(name="pool", output_size=7), Flatten(name="flatten"),
                                        Linear(name="fc", out_features=3)], family="test", paper="", source="",
                 num_classes=3)


def test_a_node_the_format_cannot_express_is_named_and_nothing_is_written(tmp_path):
    require("paddle", "paddle2onnx", "onnxruntime")
    spec = _pool_to_7()
    with pytest.raises(ExportError, match=r"node pool \(adaptive_avgpool\)"):
        export(spec, onespec.init_state(spec, 0), "onnx-paddle", str(tmp_path / "p.onnx"))
    assert os.listdir(tmp_path) == []


def test_cli_export_with_a_checkpoint_and_bad_input(tmp_path):
    require("torch", "onnxruntime")
    from onespec.backends import load_backend
    spec = onespec.get_spec("squeezenet1_1", num_classes=10, input_size=64)
    be = load_backend("torch")
    net = be.build(spec)
    be.load_state(net, spec, onespec.init_state(spec, 3))
    be.save(net, str(tmp_path / "sq.pt"))
    run = lambda *a: subprocess.run([sys.executable, "-m", "onespec", "export", *a], capture_output=True,  # noqa
                                    text=True, cwd=str(tmp_path))
    r = run("squeezenet1_1", "--set", "num_classes=10", "--set", "input_size=64", "--weights", "sq.pt",
            "--format", "torch-export",
            "-o", "sq.pt2")
    assert r.returncode == 0 and "ran in its runtime" in r.stdout, r.stderr[-2000:]
    import torch
    x = np.random.default_rng(0).standard_normal((2, 3, 64, 64)).astype(np.float32)
    with torch.no_grad():
        got = torch.export.load(str(tmp_path / "sq.pt2")).module()(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(got, be.forward(net, x)[0], rtol=1e-4, atol=1e-5)
    r = run("mobilenet_v2", "--weights", "sq.pt", "--format", "onnx", "-o", "m.onnx")  # another architecture
    assert r.returncode == 2 and r.stderr.startswith("onespec: error:") and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "m.onnx").exists()
    r = run("squeezenet1_1", "--set", "input_size=64", "--format", "onnx", "-o", "nowhere/m.onnx")
    assert r.returncode == 2 and "does not exist" in r.stderr


def test_a_destination_that_cannot_take_the_artifact_is_refused_before_any_work(tmp_path):
    (tmp_path / "taken.mindir").mkdir()
    (tmp_path / "p.json").mkdir()
    cases = {str(tmp_path) + os.sep: "not a folder", str(tmp_path): "not a folder", "": "not a folder",
             str(tmp_path / "missing" / "m.onnx"): "does not exist",
             str(tmp_path / "taken"): "is a folder"}  # mindir appends .mindir
    for out, why in cases.items():
        with pytest.raises(ExportError, match=why):
            check_destination("mindir", out)
    with pytest.raises(ExportError, match="p.json is a folder"):
        check_destination("paddle", str(tmp_path / "p"))
    if sys.platform.startswith("linux"):  # unwritable even for root
        with pytest.raises(ExportError, match="not writable"):
            check_destination("onnx", "/proc/onespec-test.onnx")
    if os.geteuid() != 0:
        ro = tmp_path / "ro"
        ro.mkdir(mode=0o555)
        with pytest.raises(ExportError, match="not writable"):
            check_destination("onnx", str(ro / "m.onnx"))
    assert sorted(os.listdir(tmp_path)) == ["p.json", "taken.mindir"] + (["ro"] if os.geteuid() != 0 else [])
    # the command checks it before reading the model or the weights (which do not exist here)
    r = subprocess.run([sys.executable, "-m", "onespec", "export", "squeezenet1_1", "--weights", "absent.pt",
                        "--format", "onnx", "-o", str(tmp_path) + os.sep], capture_output=True, text=True,
                       cwd=str(tmp_path))
    assert r.returncode == 2 and r.stderr.startswith("onespec: error: cannot write") \
        and len(r.stderr.strip().splitlines()) == 1, r.stderr[-2000:]


def _descendants(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (Linux /proc)."""
    parents = {}
    for entry in os.listdir("/proc"):
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
        except (ValueError, OSError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier} - found
        found |= frontier
    return found


def _cmdline(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:  # ended meanwhile
        return b""


def _kill_export_at(delay: float | None, out_dir, timeout: float = 300) -> tuple[bool, list[str]]:
    """Start ``onespec export`` into ``out_dir`` and SIGKILL it ``delay`` seconds after its export
    child starts (None: let it finish); returns (killed, names in ``out_dir``) once every process it
    started is gone."""
    cmd = [sys.executable, "-m", "onespec", "export", "squeezenet1_1", "--set", "input_size=64", "--format",
           "torch-export", "-o", str(out_dir / "sq.pt2")]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    seen, started, t_end = set(), None, time.monotonic() + timeout
    while proc.poll() is None and time.monotonic() < t_end:
        kids = _descendants(proc.pid)
        seen |= kids
        if started is None and any(b"onespec.export" in _cmdline(k) for k in kids):
            started = time.monotonic()
        if delay is not None and started is not None and time.monotonic() >= started + delay:
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    killed = proc.wait(timeout=max(1.0, t_end - time.monotonic())) == -signal.SIGKILL
    deadline = time.monotonic() + 20
    while any(is_alive(p) for p in seen) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = [p for p in seen if is_alive(p)]
    for p in left:  # not to leave them to the next test
        os.kill(p, signal.SIGKILL)
    assert not left, f"processes outlived the killed export: {left}"
    return killed, sorted(os.listdir(out_dir))


def test_a_killed_export_leaves_no_file_and_no_process(tmp_path):
    require("torch")
    killed, names = _kill_export_at(1.0, tmp_path)
    assert killed and names == [], names


@pytest.mark.slow
def test_an_export_killed_at_any_instant_leaves_the_old_state_or_the_artifact(tmp_path):
    """SIGKILL at instants spread over a whole export, its final moves included."""
    require("torch")
    t0 = time.monotonic()
    assert _kill_export_at(None, tmp_path) == (False, ["sq.pt2"])
    whole = time.monotonic() - t0
    for i, delay in enumerate(np.linspace(0.0, whole, 12)):
        d = tmp_path / f"k{i}"
        d.mkdir()
        _, names = _kill_export_at(float(delay), d)
        assert names in ([], ["sq.pt2"]), (delay, names)
        if names:
            import torch
            torch.export.load(str(d / "sq.pt2"))  # complete
