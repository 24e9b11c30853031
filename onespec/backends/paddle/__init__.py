"""PaddlePaddle backend (its contract names load paddle on first use)."""
from .. import CONTRACT_HOMES, Framework, lazy_contract

_ZOO = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
        "squeezenet1_0", "squeezenet1_1", "resnet18", "resnet50", "vgg11", "vgg16")

FRAMEWORK = Framework(
    name="paddle", package="paddlepaddle", imports=("paddle",), extensions=(".pdparams",),
    # BN statistics are ``_mean`` / ``_variance``; Linear stores its weight [in, out]
    roles={"running_mean": "_mean", "running_var": "_variance"}, transposed=frozenset({"linear"}),
    # glog: errors only (GLOG_v is Paddle's verbosity, not a level: 0 is quiet)
    quiet_env={"GLOG_minloglevel": "2", "GLOG_v": "0"},
    # read at import; a CPU build refuses set_flags for them
    deterministic_env=("FLAGS_cudnn_deterministic", "FLAGS_embedding_deterministic"),
    # with both installed, mindspore is loaded first so that a later mindspore build in this
    # process still works (see the mindspore backend's ``clashes_after``)
    import_first=("mindspore",), import_first_opt_out="ONESPEC_NO_MINDSPORE_PRELOAD",
    cost=2.2,  # paddle.jit.to_static dominates a conformance worker
    bench_zoo_name="paddle.vision.models", bench_zoo={n: n for n in _ZOO},
    bench_imports=("paddle", "paddle.vision.models"),
    exports={"paddle": "", "onnx-paddle": ".onnx"},
    launcher_world_env="PADDLE_TRAINERS_NUM", model_bases=("paddle.nn.layer.layers.Layer",),
)

__all__ = ["FRAMEWORK", *CONTRACT_HOMES]
__getattr__ = lazy_contract(__name__, "paddle")
