import importlib.util
import os

import pytest

# CI sets this (make test): a missing framework is then a failure, never a skip.
REQUIRE = os.environ.get("ONESPEC_REQUIRE_FRAMEWORKS") == "1"


def require(*frameworks: str) -> None:
    missing = [f for f in frameworks if importlib.util.find_spec(f) is None]
    if missing:
        msg = f"framework(s) not installed: {missing}"
        if REQUIRE:
            pytest.fail(msg + " (ONESPEC_REQUIRE_FRAMEWORKS=1)")
        pytest.skip(msg)
