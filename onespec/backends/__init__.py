"""Backends: one package per framework (``torch``, ``paddle``, ``mindspore``) and the float64
``numpy`` reference, each implementing :class:`Backend` with the same module names, and each
describing itself with a :class:`Framework` (its package's ``FRAMEWORK``, importable without the
framework: checkpoint extensions, weight conventions, log switches, bench zoo ...).

This package is the only place outside ``onespec/backends/<name>/`` that deals with frameworks,
and it does so through those two declarations alone: code elsewhere asks :func:`framework` for a
descriptor and :func:`load_backend` for a backend, never names one.

``FRAMEWORKS`` and ``BACKENDS`` are the built-in ones. More are registered with :func:`register`
or the ``ONESPEC_BACKENDS`` variable (``name=package`` pairs separated by ``os.pathsep``; a
package is a module name importable in an isolated interpreter, or the path of a package
directory), which every child process onespec starts inherits; :func:`frameworks` and
:func:`backends` list built-in and registered ones (the CLI's choices). Framework imports happen
here, lazily, and nowhere in ``onespec.spec`` / ``onespec.zoo``.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import sys
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Callable, Mapping, Protocol

import numpy as np

from ..errors import BackendUnavailableError, OnespecError

FRAMEWORKS = ("torch", "paddle", "mindspore")
BACKENDS = FRAMEWORKS + ("numpy",)
REGISTRY_ENV = "ONESPEC_BACKENDS"
VERBOSE_ENV = "ONESPEC_VERBOSE"


@dataclass(frozen=True)
class Framework:
    """What onespec's commands need to know about a backend before (or without) importing it.
    Each backend package exports one as ``FRAMEWORK``; nothing here imports the framework."""
    name: str
    package: str  # what ``pip install`` needs, for the error when it is missing
    imports: tuple[str, ...] = ()  # modules imported before the backend (the framework itself)
    # native checkpoint extensions (lower case, with the dot); the first is what a run writes
    extensions: tuple[str, ...] = ()
    # tensor role -> last name in native files (a role absent keeps the canonical last name)
    roles: Mapping[str, str] = field(default_factory=dict)
    transposed: frozenset = frozenset()  # ops whose weight native files store transposed
    reference: bool = False  # the float64 reference evaluator, not a framework users port to
    # environment variables that silence the framework's own logs, set (unless the user set them,
    # or ONESPEC_VERBOSE=1) for its import only
    quiet_env: Mapping[str, str] = field(default_factory=dict)
    # environment variables the framework reads at import for deterministic kernels
    deterministic_env: tuple[str, ...] = ()
    # frameworks imported first when installed (with an opt-out variable), and frameworks that,
    # already imported, make this one unloadable (message)
    import_first: tuple[str, ...] = ()
    import_first_opt_out: str = ""
    clashes_after: Mapping[str, str] = field(default_factory=dict)
    cost: float = 1.0  # relative conformance-worker time on CPU, for ordering work
    # the variable the framework's launcher (torchrun, paddle.distributed.launch, msrun) sets to
    # the number of processes: above 1, a run joins the launcher's process group
    launcher_world_env: str = ""
    # ``onespec bench``: the framework's own zoo (its name, onespec zoo name -> its constructor),
    # the importer library whose model options make onespec's network that zoo's architecture,
    # the modules imported before a measurement, build options timed as extra sides, and run
    # modes (``bench_modes[0]`` the default)
    bench_zoo_name: str = ""
    bench_zoo: Mapping[str, str] = field(default_factory=dict)
    bench_library: str = ""
    bench_imports: tuple[str, ...] = ()
    bench_options: tuple[str, ...] = ()
    bench_modes: tuple[str, ...] = ()
    bench_isolated: bool = False  # each side timed in a process of its own
    # ``onespec export`` formats this framework writes -> the artifact's suffix ("": a path prefix)
    exports: Mapping[str, str] = field(default_factory=dict)
    # ``build`` keywords for a network to export (a graph keeps the plain layout and ops a
    # runtime picks its own kernels for)
    export_build: Mapping[str, Any] = field(default_factory=dict)
    # ``onespec capture``: the qualified names of the framework's model base classes (a model whose
    # class derives from one is captured by this backend's ``trace``)
    model_bases: tuple[str, ...] = ()


# where each contract name lives in a backend package (loaded on first use, see ``lazy_contract``)
CONTRACT_HOMES = {
    **dict.fromkeys(("build",), "emit"),
    **dict.fromkeys(("count", "forward", "static_forward", "node_io", "run_node", "node_vjp", "param_names",
                     "train_step"), "runtime"),
    **dict.fromkeys(("native_names", "load_state", "get_state", "save", "read", "load"), "weights"),
    **dict.fromkeys(("foreign_state", "session", "dist_start", "dist_end", "apply_numerics",
                     "numerics_environment"), "host"),
    "bench_harness": "bench",
    **dict.fromkeys(("trace", "reference_outputs", "state_keys"), "capture"),
}
# what a backend provides only when its ``Framework.model_bases`` says it captures models
CAPTURE_CONTRACT = ("trace", "reference_outputs", "state_keys")


def lazy_contract(package: str, name: str, extra: Mapping[str, str] | None = None) -> Callable[[str], Any]:
    """A backend package's module ``__getattr__``: a contract name imports the framework (quietly,
    in a safe order, :func:`load_backend`'s way) and then the package's module that defines it, so
    that the package itself (its ``FRAMEWORK``) is light to import."""
    homes = {**CONTRACT_HOMES, **(extra or {})}

    def __getattr__(attr: str) -> Any:
        if attr not in homes:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        _import_framework(name)
        value = getattr(importlib.import_module(f"{package}.{homes[attr]}"), attr)
        setattr(sys.modules[package], attr, value)
        return value
    return __getattr__


def verbose() -> bool:
    """Framework logs are shown (``--verbose`` or ``ONESPEC_VERBOSE=1``)."""
    return os.environ.get(VERBOSE_ENV, "") not in ("", "0")


def _registered() -> dict[str, str]:
    out = {}
    for item in filter(None, os.environ.get(REGISTRY_ENV, "").split(os.pathsep)):
        name, sep, where = item.partition("=")
        if not sep or not name.isidentifier() or not where:
            raise UnknownBackendError(f"{REGISTRY_ENV}: {item!r} is not name=package")
        out[name] = where
    return out


def register(name: str, package: str) -> None:
    """Register backend ``name`` implemented by ``package`` (a module name or a package
    directory) for this process and every process it starts."""
    if name in BACKENDS:
        raise UnknownBackendError(f"{name} is a built-in backend")
    entries = {**_registered(), name: os.path.abspath(package) if os.path.isdir(package) else package}
    os.environ[REGISTRY_ENV] = os.pathsep.join(f"{k}={v}" for k, v in entries.items())


def frameworks() -> tuple[str, ...]:
    """Built-in and registered frameworks (the backends that are not the reference)."""
    return FRAMEWORKS + tuple(n for n in _registered() if not framework(n).reference)


def backends() -> tuple[str, ...]:
    """Every backend: built-in and registered."""
    return BACKENDS + tuple(n for n in _registered() if n not in BACKENDS)


def backend_package(name: str) -> ModuleType:
    """The backend package of ``name`` (light: its ``FRAMEWORK``; contract names load on use)."""
    if name in BACKENDS:
        return importlib.import_module(f"onespec.backends.{name}")
    where = _registered().get(name)
    if where is None:
        raise UnknownBackendError(f"unknown backend {name!r}; choose one of {', '.join(backends())}")
    if not os.path.isdir(where):
        return importlib.import_module(where)
    modname = f"onespec_backend_{name}"
    if modname not in sys.modules:
        spec = importlib.util.spec_from_file_location(modname, os.path.join(where, "__init__.py"),
                                                      submodule_search_locations=[where])
        if spec is None:
            raise UnknownBackendError(f"{REGISTRY_ENV}: {where} is not a package directory")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[modname]
            raise
    return sys.modules[modname]


def framework(name: str) -> Framework:
    """The descriptor of backend ``name`` (imports no framework)."""
    check_backend(name, backends())
    fw = getattr(backend_package(name), "FRAMEWORK", None)
    if not isinstance(fw, Framework) or fw.name != name:
        raise UnknownBackendError(f"backend {name!r} declares no FRAMEWORK named {name!r}")
    return fw


def by_model(model) -> str | None:
    """The framework whose model base class ``model``'s class derives from (imports nothing)."""
    names = {f"{c.__module__}.{c.__qualname__}" for c in type(model).__mro__}
    return next((n for n in frameworks() if names & set(framework(n).model_bases)), None)


def by_extension(path: str) -> str | None:
    """The framework whose checkpoints have ``path``'s extension (the longest that matches)."""
    low = path.lower()
    hits = [(len(e), n) for n in frameworks() for e in framework(n).extensions if low.endswith(e)]
    return max(hits)[1] if hits else None


class Backend(Protocol):
    """What every backend module provides (``onespec.backends.<name>``). ``net`` is the native
    network ``build`` returned; states are canonical (``onespec.weights``)."""

    def build(self, spec) -> Any:
        """Native network whose module paths are the spec's node paths."""

    def count(self, net) -> tuple[int, int]:
        """(trainable parameters, non-trainable state such as BN running statistics)."""

    def forward(self, net, x: np.ndarray, record_shapes: bool = False) -> tuple[np.ndarray, dict[str, tuple]]:
        """Eval-mode output and, with ``record_shapes``, {module path: output shape without batch}."""

    def static_forward(self, net, x: np.ndarray) -> np.ndarray:
        """Eval-mode output of the compiled program (torch.export, paddle.jit.to_static, GRAPH_MODE)."""

    def node_io(self, net, x: np.ndarray, train: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """{module path: (its input, its output)} for every module in one eval- or train-mode
        forward (``onespec diff``; numpy: eval mode only)."""

    def run_node(self, net, path: str, x: np.ndarray, train: bool = False) -> np.ndarray:
        """Output of the module at ``path`` alone, on ``x``."""

    def node_vjp(self, net, spec, path: str, x: np.ndarray, gy: np.ndarray, train: bool = False
                 ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """The module at ``path`` (``""``: the network) alone on ``x``, backward from output gradient
        ``gy``: (output, input gradient, canonical {tensor: gradient}) (numpy: no autograd, raises)."""

    def param_names(self, net) -> list[str]:
        """Native names of every parameter and state tensor (what a native checkpoint holds)."""

    def train_step(self, net, x: np.ndarray, r: np.ndarray, lr: float) -> float:
        """One plain-SGD step in train mode on ``sum(net(x) * r)``; returns the loss."""

    def native_names(self, spec) -> dict[str, str]:
        """Canonical tensor name -> native name."""

    def load_state(self, net, spec, state: Mapping[str, np.ndarray]) -> None:
        """Load a canonical state; everything is validated before any tensor changes."""

    def get_state(self, net, spec) -> dict[str, np.ndarray]:
        """The canonical state of ``net``."""

    def save(self, net, path: str) -> None:
        """Native checkpoint at ``path`` (any name): a complete file or the old file untouched."""

    def read(self, path: str) -> dict[str, np.ndarray]:
        """A native checkpoint's tensors by native name, without executing anything in the file."""

    def load(self, net, path: str) -> None:
        """Load a native checkpoint into ``net``; checked completely first."""

    def foreign_state(self, net) -> dict[str, np.ndarray]:
        """The tensors of any network of this framework (not only onespec's), by the names its
        checkpoint would hold (``onespec diff --foreign``)."""

    def session(self, net, spec, trainable: list[str], frozen_paths: tuple[str, ...],
                precision: str = "float32") -> Any:
        """A training session on ``net`` (``onespec.training``): ``trainable`` canonical tensors
        updated, ``frozen_paths`` held in eval mode; gradients averaged over the ranks of the
        process group :func:`dist_start` joined (numpy: no autograd, raises). ``precision``
        ``"float64"`` (where the backend offers it) trains without float32 rounding: ``onespec
        align``'s yardstick; any other precision than the backend's raises ``OnespecError``."""

    def dist_start(self) -> tuple[int, int]:
        """(rank, world size) after joining the process group of the launcher that started this
        process (torchrun, paddle.distributed.launch, msrun; gloo on CPU)."""

    def dist_end(self) -> None:
        """Wait for every rank, then leave the process group cleanly."""

    def apply_numerics(self, tf32: bool | None, deterministic: bool | None) -> None:
        """Switch TF32 and deterministic kernels on or off (``None``: leave as is)."""

    def numerics_environment(self) -> dict:
        """{version, threads, device, determinism / TF32 flags ...}: what a report records."""

    def bench_harness(self, mode: str) -> Any:
        """The ``onespec bench`` harness in run mode ``mode``: ``reference(model)`` (the
        framework zoo's network), ``inputs(shape, batch)``, ``forward(net, x)``,
        ``stepper(net, x, y)`` (a training-step callable), ``speed(net, ndim, **option)``
        (a build option of ``FRAMEWORK.bench_options`` applied)."""

    # capture (frameworks that declare ``FRAMEWORK.model_bases``)
    def trace(self, model, input_shape: tuple[int, ...]) -> Any:
        """``onespec.capture.ir.Trace`` of the eval-mode ``model`` run on a batch of 2 samples of
        ``input_shape``; raises ``onespec.capture.ir.CaptureError`` listing every op or module that
        cannot be captured, with its module path and source line."""

    def reference_outputs(self, model, x: np.ndarray) -> Any:
        """The eval-mode ``model``'s outputs on ``x`` (numpy), a tuple for several."""

    def state_keys(self, model) -> list[str]:
        """The model's own checkpoint keys (bookkeeping counters left out)."""


@contextlib.contextmanager
def _quiet(fw: Framework):
    """The framework's log switches (``quiet_env``) for its import, and its import-time Python
    warnings ignored (Paddle's "No ccache found"), unless verbose; the user's own settings win
    and the environment is restored after, since two frameworks read one variable differently
    (GLOG_v is MindSpore's log level and Paddle's verbosity)."""
    with _quiet_env(fw.quiet_env):
        yield


@contextlib.contextmanager
def _quiet_env(env: Mapping[str, str]):
    if verbose():
        yield
        return
    saved = {k: os.environ.get(k) for k in env}
    for k, v in env.items():
        os.environ.setdefault(k, v)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@contextlib.contextmanager
def quiet_imports():
    """Every framework's log switches and import-time warnings quiet (unless verbose) while a
    user's code runs that imports frameworks itself (``onespec capture FILE.py:FUNCTION``). A
    variable two frameworks read differently (GLOG_v) is left alone: either value would make one
    of them louder."""
    values: dict[str, set] = {}
    for name in frameworks():
        for k, v in framework(name).quiet_env.items():
            values.setdefault(k, set()).add(v)
    with _quiet_env({k: v.pop() for k, v in values.items() if len(v) == 1}):
        yield


def _import_framework(name: str) -> None:
    fw = framework(name)
    if not fw.imports or fw.imports[0] in sys.modules:
        return
    for other, message in fw.clashes_after.items():
        if other in sys.modules:
            raise BackendUnavailableError(message)
    if not (fw.import_first_opt_out and os.environ.get(fw.import_first_opt_out)):
        for first in fw.import_first:
            if first in BACKENDS and first not in sys.modules and importlib.util.find_spec(first):
                _import_framework(first)
    try:
        with _quiet(fw):
            for module in fw.imports:
                importlib.import_module(module)
    except ImportError as err:
        for other, message in fw.clashes_after.items():
            if other in sys.modules:
                raise BackendUnavailableError(message) from err
        raise BackendUnavailableError(
            f"the {name} backend needs the {fw.package} package: pip install 'onespec[{name}]' ({err})"
        ) from err


class UnknownBackendError(OnespecError, ValueError):
    pass


def check_backend(name: str, allowed: tuple[str, ...] | None = None) -> str:
    allowed = backends() if allowed is None else allowed
    if name not in allowed:
        raise UnknownBackendError(f"unknown backend {name!r}; choose one of {', '.join(allowed)}")
    return name


def load_backend(name: str) -> Backend:
    """The backend ``name`` with its framework imported (quietly) and the numerics switches asked
    for (``ONESPEC_TF32``, ``ONESPEC_DETERMINISTIC``) applied."""
    from ..environment import apply

    _import_framework(name)
    apply(name)
    return backend_package(name)
