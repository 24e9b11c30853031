"""MindSpore backend, PYNATIVE and GRAPH_MODE (its contract names load mindspore on first use)."""
from .. import CONTRACT_HOMES, Framework, lazy_contract

# MindSpore 2.x loads its CPU kernels against its own oneDNN; if paddle's oneDNN is loaded
# first the symbol lookup fails (undefined symbol: dnnl_threadpool_interop_stream_create).
IMPORT_CLASH = (
    "paddle was imported before mindspore in this process, and MindSpore cannot load its CPU kernels "
    "after paddle's oneDNN (undefined symbol dnnl_threadpool_interop_stream_create). Import mindspore "
    "(or onespec's mindspore backend) before paddle, or use one process per framework as "
    "`onespec conformance` does."
)

FRAMEWORK = Framework(
    name="mindspore", package="mindspore", imports=("mindspore",), extensions=(".ckpt",),
    roles={"gamma": "gamma", "beta": "beta", "running_mean": "moving_mean", "running_var": "moving_variance"},
    quiet_env={"GLOG_v": "3"},  # MindSpore's log level: errors only
    clashes_after={"paddle": IMPORT_CLASH},
    cost=2.0,  # GRAPH_MODE compilation dominates a conformance worker
    bench_zoo_name="MindCV", bench_library="mindcv", bench_imports=("mindspore", "mindcv.models"),
    bench_zoo={"mobilenet_v2": "mobilenet_v2_100", "mobilenet_v3_large": "mobilenet_v3_large_100",
               "mobilenet_v3_small": "mobilenet_v3_small_100", "shufflenet_v2_x0_5": "shufflenet_v2_x0_5",
               "shufflenet_v2_x1_0": "shufflenet_v2_x1_0", "squeezenet1_0": "squeezenet1_0",
               "squeezenet1_1": "squeezenet1_1", "resnet18": "resnet18", "resnet50": "resnet50",
               "vgg11": "vgg11", "vgg16": "vgg16"},
    # its PYNATIVE process state depends on how the process ran its first ops: each side alone
    bench_modes=("pynative", "sync", "graph"), bench_isolated=True,
    exports={"mindir": ".mindir"}, export_build={"im2col": False},  # MindSpore's own conv op in a MindIR
    launcher_world_env="MS_WORKER_NUM", model_bases=("mindspore.nn.cell.Cell",),
)

__all__ = ["FRAMEWORK", *CONTRACT_HOMES]
__getattr__ = lazy_contract(__name__, "mindspore")
