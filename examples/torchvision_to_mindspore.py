"""Port a torchvision model to MindSpore and Paddle and check the outputs match.

    python examples/torchvision_to_mindspore.py [mobilenet_v2]

Uses random weights (nothing is downloaded); with a real checkpoint, pass its .pth to
`onespec convert model.pth --arch NAME --to mindspore -o model.ckpt` instead.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

name = sys.argv[1] if len(sys.argv) > 1 else "mobilenet_v2"
tmp = tempfile.mkdtemp()
x = np.random.default_rng(0).standard_normal((2, 3, 224, 224)).astype(np.float32)
np.save(os.path.join(tmp, "x.npy"), x)

# 1. torchvision model (its own process: torch) -> .pth and its outputs
subprocess.run([sys.executable, "-c", f"""
import numpy as np, torch, torchvision
torch.manual_seed(0)
m = getattr(torchvision.models, "{name}")(weights=None).eval()
torch.save(m.state_dict(), r"{tmp}/tv.pth")
with torch.no_grad():
    np.save(r"{tmp}/ref.npy", m(torch.from_numpy(np.load(r"{tmp}/x.npy"))).numpy())
"""], check=True)

# 2. convert with the CLI, 3. load with each framework's own loader and compare
for fw, ext, load in (
    ("mindspore", ".ckpt", "import mindspore as ms\n"
                           "ms.load_param_into_net(net, ms.load_checkpoint(path), strict_load=True)"),
    ("paddle", ".pdparams", "import paddle\nnet.set_state_dict(paddle.load(path))"),
):
    path = os.path.join(tmp, name + ext)
    subprocess.run([sys.executable, "-m", "onespec", "convert", os.path.join(tmp, "tv.pth"), "--arch", name,
                    "--to", fw, "-o", path], check=True)
    out = subprocess.run([sys.executable, "-c", f"""
import numpy as np, onespec
from onespec.backends import load_backend
net = onespec.build("{name}", backend="{fw}")
path = r"{path}"
{load}
y = load_backend("{fw}").forward(net, np.load(r"{tmp}/x.npy"))[0]
ref = np.load(r"{tmp}/ref.npy")
print(f"{fw}: max rel err vs torchvision {{np.abs(y - ref).max() / np.abs(ref).max():.1e}}")
"""], check=True, capture_output=True, text=True)
    print(out.stdout.strip())
