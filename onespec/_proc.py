"""Child interpreters that are isolated from the user's working directory and die with their
parent, and temporary directories that do not outlive a killed run.

- ``python -I``: neither the working directory nor PYTHON* variables reach ``sys.path``, so a
  ``numpy.py`` beside the user's checkpoint is never imported by a child. The child imports
  ``onespec`` from where its parent did (a source checkout on ``PYTHONPATH`` included), by file
  location, without adding that folder to ``sys.path``.
- Linux ``PR_SET_PDEATHSIG`` (set by the child, ``child_init``): a child gets SIGTERM when its
  parent dies, even by SIGKILL, and turns it into ``SystemExit`` so its atomic writes clean up.
- ``guarded_tempdir``: a watchdog process removes the directory if the parent dies without
  doing so itself (SIGKILL), so no weights are left in the temporary directory.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import subprocess
import sys
import tempfile

_PR_SET_PDEATHSIG = 1


_PARENT_ENV = "ONESPEC_PARENT_PID"


def child_init(on_parent_death: int = signal.SIGTERM) -> None:
    """First thing in a child started by :func:`python_child`: ask for SIGTERM (or
    ``on_parent_death``: SIGKILL for a child whose files all live in its parent's guarded folder,
    so that a long call inside a framework does not delay its end) when the parent dies (done here
    rather than in a ``preexec_fn``, which is unsafe once the parent has threads), exit if it
    already has, and turn SIGTERM into ``SystemExit``."""
    exit_on_sigterm()
    parent = os.environ.pop(_PARENT_ENV, None)
    if parent is None:  # run by hand, not by python_child
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, on_parent_death)
    except Exception:  # not Linux: the child may outlive a SIGKILLed parent
        pass
    if os.getppid() != int(parent):  # the parent died before prctl took effect
        os._exit(1)


def data_channel(mode: str = "w"):
    """In a child: its stdout as the file that carries its answers to the parent, with the
    process's own fd 1 sent to stderr from here on, since frameworks and exporters print to
    stdout and would corrupt the answers."""
    out = os.fdopen(os.dup(1), mode)
    os.dup2(2, 1)
    return out


# Loads the parent's onespec package by location in an isolated child, before anything else.
_BOOT = (
    "import importlib.util as _u, sys as _s\n"
    "_p = _u.spec_from_file_location('onespec', {init!r}, submodule_search_locations=[{pkg!r}])\n"
    "_m = _s.modules['onespec'] = _u.module_from_spec(_p)\n"
    "_p.loader.exec_module(_m)\n"
    "del _u, _s, _p, _m\n"
)
_RUN_MODULE = "import runpy, sys\nrunpy.run_module(sys.argv.pop(1), run_name='__main__', alter_sys=True)\n"


def _isolated(args: list[str]) -> list[str]:
    """``-m module args`` / ``-c code args`` as a ``-c`` that first loads this onespec."""
    pkg = os.path.dirname(os.path.abspath(__file__))
    boot = _BOOT.format(init=os.path.join(pkg, "__init__.py"), pkg=pkg)
    if args[0] == "-m":
        return ["-c", boot + _RUN_MODULE, *args[1:]]
    if args[0] == "-c":
        return ["-c", boot + args[1], *args[2:]]
    raise ValueError(f"python_child runs -m MODULE or -c CODE, not {args[0]!r}")


def python_child(args: list[str], env=None, **kw) -> subprocess.Popen:
    """``sys.executable -I args...`` (``-m module`` or ``-c code``), importing this process's
    ``onespec``; the child calls :func:`child_init` and dies with this process. It inherits
    ``ONESPEC_VERBOSE`` (framework logs shown or not) and ``ONESPEC_BACKENDS`` (registered
    backends) with the environment."""
    env = {**(os.environ if env is None else env), _PARENT_ENV: str(os.getpid())}
    return subprocess.Popen([sys.executable, "-I", *_isolated(args)], env=env, **kw)


def run_child(args: list[str], input: bytes | None = None, env=None) -> tuple[int, bytes, bytes]:
    """Run a child to completion; on any exception here (SIGTERM included) the child is
    terminated (killed if it does not end within 20 s).
    Thread-safe: conformance runs one per framework at once."""
    proc = python_child(args, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    try:
        out, err = proc.communicate(input)
    except BaseException:
        # SIGTERM first: the child's atomic write removes its temporary files; SIGKILL if it hangs
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        raise
    return proc.returncode, out, err


def _raise_exit(signum, frame):
    raise SystemExit(128 + signum)


def exit_on_sigterm() -> None:
    """SIGTERM (and SIGHUP) raise SystemExit, so ``finally`` blocks and context managers run."""
    for sig in (signal.SIGTERM, signal.SIGHUP):
        with contextlib.suppress(ValueError):  # not the main thread
            signal.signal(sig, _raise_exit)


_WATCHDOG = (
    "import os, shutil, signal, sys\n"
    "from onespec._proc import child_init\n"
    "d = sys.argv[1]\n"
    "def gone(*a):\n"
    "    shutil.rmtree(d, ignore_errors=True); os._exit(0)\n"
    "child_init()\n"
    "signal.signal(signal.SIGTERM, gone)\n"
    "signal.signal(signal.SIGINT, signal.SIG_IGN)\n"
    "sys.stdin.read()\n"  # EOF: the parent closed the pipe (finished, or died)
    "gone()\n"
)


@contextlib.contextmanager
def guarded_tempdir(prefix: str = "onespec-", dir: str | None = None):
    """A temporary directory (in ``dir``, default the system's) removed on exit, on SIGTERM, and
    by a watchdog child if this process is SIGKILLed (the watchdog sees its stdin pipe close and
    gets PDEATHSIG)."""
    d = tempfile.mkdtemp(prefix=prefix, dir=dir)
    dog = python_child(["-c", _WATCHDOG, d], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)
        with contextlib.suppress(Exception):
            dog.stdin.close()
            dog.wait(timeout=10)
