"""PyTorch backend (its contract names load torch on first use)."""
from .. import CONTRACT_HOMES, Framework, lazy_contract

_ZOO = ("mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
        "squeezenet1_0", "squeezenet1_1", "resnet18", "resnet50", "vgg11", "vgg16", "vgg11_bn")

FRAMEWORK = Framework(
    name="torch", package="torch", imports=("torch",), extensions=(".pth", ".pt"),
    cost=1.0,
    bench_zoo_name="torchvision", bench_zoo={n: n for n in _ZOO}, bench_library="torchvision",
    bench_imports=("torch", "torchvision"), bench_options=("channels_last", "compile"),
    exports={"onnx": ".onnx", "torch-export": ".pt2"}, export_build={"channels_last": False},
    launcher_world_env="WORLD_SIZE", model_bases=("torch.nn.modules.module.Module",),
)

__all__ = ["FRAMEWORK", *CONTRACT_HOMES, "speed_options"]
__getattr__ = lazy_contract(__name__, "torch", {"speed_options": "emit"})
