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


# The session's conformance reports (zoo and property runs), printed after the test summary so
# that a CI log shows every model's errors and the per-framework run times. Under pytest-xdist
# (make test runs two workers) each worker leaves its reports in a file the controller prints.
REPORTS: list[str] = []


def pytest_configure(config):
    # the controller makes the folder before it starts the workers, which inherit the variable
    if not hasattr(config, "workerinput") and "ONESPEC_TEST_REPORTS" not in os.environ:
        import tempfile
        os.environ["ONESPEC_TEST_REPORTS"] = tempfile.mkdtemp(prefix="onespec-reports-")


def pytest_sessionfinish(session):
    config = session.config
    if hasattr(config, "workerinput") and REPORTS:
        path = os.path.join(os.environ["ONESPEC_TEST_REPORTS"], config.workerinput["workerid"] + ".txt")
        with open(path, "w") as f:
            f.write("\0".join(REPORTS))


def pytest_terminal_summary(terminalreporter, config):
    import glob
    import shutil
    tables = list(REPORTS)
    folder = os.environ.get("ONESPEC_TEST_REPORTS")
    if folder and not hasattr(config, "workerinput"):
        for path in sorted(glob.glob(os.path.join(folder, "*.txt"))):
            with open(path) as f:
                tables += f.read().split("\0")
        shutil.rmtree(folder, ignore_errors=True)
    for table in tables:
        terminalreporter.write_sep("=", "onespec conformance reports")
        terminalreporter.write_line(table)
