"""Networks written for the capture tests (torch only: ``onespec capture capture_models.py:FUNCTION``
imports this file as a user's model code)."""
import torch
from torch import nn
from torch.nn import functional as F


class FaceHeads(nn.Module):
    """A face-detector-like network: PReLU, ZeroPad2d, attribute names beginning with ``_`` (and
    one with a hyphen, ``block1-0``), a permute before flatten, softmax, and three outputs."""

    def __init__(self):
        super().__init__()
        self._stem = nn.Sequential(nn.ZeroPad2d((1, 2, 0, 1)), nn.Conv2d(3, 8, 3, stride=2), nn.BatchNorm2d(8),
                                   nn.PReLU(8))
        self._blocks = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.PReLU(), nn.Conv2d(8, 16, 1))
        self.add_module("block1-0", nn.Sequential(nn.Conv2d(16, 16, 1), nn.ReLU6()))  # a name like RegNet's
        self.cls = nn.Conv2d(16, 4, 1)
        self.box = nn.Conv2d(16, 8, 1)
        self.fc = nn.Linear(16, 5)

    def forward(self, x):
        y = getattr(self, "block1-0")(self._blocks(self._stem(x)))
        scores = F.softmax(self.cls(y).permute(0, 2, 3, 1).flatten(1).view(x.shape[0], -1, 2), dim=-1)
        boxes = self.box(y).permute(0, 2, 3, 1).flatten(1)
        return scores, boxes, self.fc(y.mean((2, 3)))


class UNet(nn.Module):
    """A two-level U-Net: cross-stage skips joined by concatenation, a transposed-conv upsample."""

    def __init__(self):
        super().__init__()
        block = lambda i, o: nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU())  # noqa: E731
        self.enc1, self.enc2, self.mid = block(3, 8), block(8, 16), block(16, 16)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(16, 16, 2, stride=2), block(32, 8)
        self.up1, self.dec1 = nn.Upsample(scale_factor=2), block(16, 8)
        self.out = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], 1))
        d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)


def _randomized(m):
    """Non-trivial BN statistics and PReLU slopes, so that every tensor's mapping shows."""
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, t in m.state_dict().items():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.5 if name.endswith(("running_var", "weight"))
                        and t.dim() == 1 else t + 0.1 * torch.randn(t.shape, generator=g))
    return m.eval()


def build_face_heads():
    return _randomized(FaceHeads())


def build_unsupported():
    return _Unsupported()


class _Item(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        self.gate = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(x) * self.gate(x).mean().item()


class _Branch(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        if x.sum() > 0:
            return self.head(x)
        return x


class _Unsupported(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 1), nn.LogSigmoid())
        self.tail = nn.ELU()

    def forward(self, x):
        return self.tail(self.block(x))


class _Twice(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return self.conv(self.conv(x))


class _Clip(torch.autograd.Function):
    """A straight-through clip: its backward is not the forward's gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clamp(0, 1)

    @staticmethod
    def backward(ctx, g):
        return g


class _ClipBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x):
        return _Clip.apply(self.conv(x))


class _Custom(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = nn.Sequential(nn.Conv2d(3, 3, 1), _ClipBlock())

    def forward(self, x):
        return self.block(x)
