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


# The session's conformance report (tests/test_backends.py fixture), printed after the test
# summary so that a CI log shows every model's errors and the per-framework run times.
REPORTS: list[str] = []


def pytest_terminal_summary(terminalreporter):
    for table in REPORTS:
        terminalreporter.write_sep("=", "onespec conformance reports")
        terminalreporter.write_line(table)
