"""``onespec diff --foreign``: a network written by hand (``torch.nn.Module``, ``paddle.nn.Layer``,
``mindspore.nn.Cell``, with its weights) compared node by node with a spec, its modules found
through a tensor-name map."""
from __future__ import annotations

import numpy as np

from ...backends import check_backend, framework as framework_of, load_backend
from ...spec import ModelSpec, trace
from ...weights import layout
from .common import TOL, DiffError, rel
from .forward import network_io
from .report import DiffReport


def module_map(spec: ModelSpec, tensor_map: dict[str, str]) -> dict[str, str]:
    """onespec node path -> foreign module name, from a tensor-name map (an importer's, or a
    user's): ``features.fire2.squeeze.weight -> features.3.squeeze.weight`` gives
    ``features.fire2.squeeze -> features.3.squeeze``. Parameter-free nodes have no counterpart."""
    lay = layout(spec)
    out: dict[str, str] = {}
    for canonical, foreign in tensor_map.items():
        if canonical not in lay:
            raise DiffError(f"name map: {canonical} is not a tensor of {spec.name}")
        node, _, tname = canonical.rpartition(".")
        fmod, _, fname = foreign.rpartition(".")
        if out.setdefault(node, fmod) != fmod:
            raise DiffError(f"name map: {node}'s tensors map to two modules, {out[node]} and {fmod}")
    return out


def library_map(spec: ModelSpec, framework: str, raw) -> tuple[dict[str, str], dict[str, float]]:
    """The name map of the first library of ``framework`` (torchvision, timm; PaddleClas; MindCV,
    the MindSpore model zoo) whose names the foreign network has, with its import scales."""
    from ...importers import import_scales, library_names, libraries_for

    libs = libraries_for(spec.name, framework)
    for lib in libs:
        names = library_names(spec, lib)
        if all(n in raw for n in names.values()):
            return names, import_scales(spec.name, lib)
    if not libs:
        raise DiffError(f"{spec.name} has no name map for a {framework} library: pass --map (canonical name -> "
                        f"your network's name)")
    return library_names(spec, libs[0]), {}  # the missing names are listed by the caller


def diff_foreign(spec: ModelSpec, net, framework: str, *, tensor_map: dict[str, str] | None = None,
                 seed: int = 0, batch: int = 2, tol: float = TOL) -> DiffReport:
    """Compare a hand-written network (``torch.nn.Module``, ``paddle.nn.Layer``,
    ``mindspore.nn.Cell``, with its weights) node by node with ``spec``: the foreign network's
    weights, read through ``tensor_map`` (canonical -> its names; default: the name map of the
    first library of that framework whose names the network has: torchvision or timm, PaddleClas,
    MindCV or the MindSpore model zoo), go into the float64 reference; each mapped foreign module is replayed on the
    reference's input to its node. Names the first foreign module (and node) that differs."""
    check_backend(framework)
    be, ref_be = load_backend(framework), load_backend("numpy")
    try:
        raw = be.foreign_state(net)
    except (AttributeError, TypeError) as err:  # a function that returned None, a class, a tuple
        raise DiffError(f"the foreign network is a {type(net).__name__}, not a {framework} network ({err})") from err
    scales: dict[str, float] = {}
    if tensor_map is None:
        tensor_map, scales = library_map(spec, framework, raw)
    mods = module_map(spec, tensor_map)
    missing = [f for f in tensor_map.values() if f not in raw]
    if missing:
        raise DiffError(f"the foreign network has no tensors {', '.join(missing[:5])} ({len(missing)} in all): "
                        f"pass a name map (canonical name -> its name)")
    from ...importers import fit
    lay = layout(spec)
    transposed = framework_of(framework).transposed  # e.g. Paddle's Linear stores [in, out]
    state = {}
    for c, f in tensor_map.items():
        v = fit(raw[f], lay[c].shape, lay[c].op in transposed and np.ndim(raw[f]) == 2)
        if v is None:  # a library's 1x1 conv may stand for a Linear
            raise DiffError(f"the foreign network's {f} has shape {np.shape(raw[f])}, {c} is {lay[c].shape}")
        state[c] = np.asarray(v * scales.get(c, 1.0), np.float32)
    ref = ref_be.build(spec)
    ref_be.load_state(ref, spec, state)
    x = np.random.default_rng(seed).standard_normal((batch, *spec.input_shape)).astype(np.float32)
    want = ref_be.node_io(ref, x)
    got, notes = network_io(be, net, x)
    rows, first = [], None
    for info in trace(spec):
        if info.path not in mods or info.path not in want:
            continue
        fname = mods[info.path]
        carried = rel(got[fname][1], want[info.path][1]) if fname in got else float("inf")
        try:
            own = rel(be.run_node(net, fname, want[info.path][0].astype(np.float32)), want[info.path][1])
        except Exception:
            own = float("inf")
        row = {"path": info.path, "foreign": fname, "op": info.op, "own": own, "carried": carried}
        rows.append(row)
        if first is None and own > tol:
            first = dict(row, why=(f"{fname} " + ("gives another shape" if own == float("inf") else
                                                   f"is off by {own:.2e} on the reference's input")))
    return DiffReport(spec.name, f"{framework} (foreign network)", rows, first, tol=tol, notes=notes)

