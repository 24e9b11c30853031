"""``onespec bench`` times frameworks against their own zoos; the numpy reference has none."""
from __future__ import annotations

from ...errors import OnespecError


def bench_harness(mode: str):
    raise OnespecError("the numpy backend is the float64 reference; bench times the frameworks")
