"""A divergent node on its own: ``node.json`` (a one-node ``ModelSpec``), ``case.npz`` (its input,
tensors, expected output, gradients and running statistics, and the bounds the verdict used) and
``onespec diff --replay DIR --backend FW``, which judges the replay by those same bounds."""
from __future__ import annotations

import os

import numpy as np

from ...backends import check_backend, load_backend
from ...spec import ModelSpec, trace
from ...weights import layout, load_state, save_state
from .common import TOL, DiffError, grad_err, rel, stat_err


def node_spec(spec: ModelSpec, path: str) -> tuple[ModelSpec, str]:
    """The node at ``path`` of ``spec`` as a one-node spec, and the node's name in it (its tensors
    are ``<name>.<tensor>`` there and ``<path>.<tensor>`` in ``spec``)."""
    info = next((r for r in trace(spec) if r.path == path), None)
    if info is None:
        raise DiffError(f"{spec.name} has no node {path}")
    node = info.node
    one = ModelSpec(name=f"node-{path.replace('.', '-')}"[:128], input_shape=info.in_shape, layers=[node],
                    meta=spec.meta.model_copy(update={"options": {"node": path, "model": spec.name}}))
    return one, node.name


def write_reproducer(spec: ModelSpec, path: str, state: dict, io: tuple, out: str, *, train: bool = False,
                     backward: tuple | None = None, suffix: str = "", stats: dict | None = None,
                     bound: float = TOL, stats_bound: float | None = None) -> str:
    """``out/<path>[.suffix]/``: node.json (a one-node spec), case.npz (x, the expected output, the
    node's tensors, the mode, the bound; with ``backward`` = (gy, dx, grads, terms) also the output
    gradient, the expected input and parameter gradients and what float32 resolves of the latter;
    with ``stats`` the expected running statistics after the step and their bound), the replay
    command in README.txt."""
    one, name = node_spec(spec, path)
    d = os.path.join(out, path + (f".{suffix}" if suffix else ""))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "node.json"), "w") as f:
        f.write(one.model_dump_json(indent=1))
    tensors = {k: state[path + k[len(name):]] for k in layout(one)}
    case = {"x": io[0].astype(np.float32), "expected": np.asarray(io[1], np.float64),
            "train": np.asarray(train), "bound": np.asarray(max(bound, TOL)),
            **{f"tensor:{k}": v for k, v in tensors.items()}}
    if backward is not None:
        gy, dx, grads, terms = backward
        case.update({"gy": np.asarray(gy, np.float64), "expected_dx": np.asarray(dx, np.float64),
                     **{f"grad:{name + k[len(path):]}": np.asarray(v, np.float64) for k, v in grads.items()},
                     **{f"terms:{name + k[len(path):]}": np.asarray(v, np.float64) for k, v in terms.items()}})
    if stats:
        case.update({f"stat:{name + k[len(path):]}": np.asarray(v, np.float64) for k, v in stats.items()})
        case["stats_bound"] = np.asarray(max(stats_bound or TOL, TOL))
    save_state(case, os.path.join(d, "case.npz"))
    with open(os.path.join(d, "README.txt"), "w") as f:
        f.write(f"{path} of {spec.name}, {'train' if train else 'eval'} mode{', backward' if backward else ''}"
                f"{', running statistics' if stats else ''}.\nreplay: onespec diff --replay {d} --backend BACKEND\n")
    return d


def replay(directory: str, backend: str, tol: float | None = None) -> tuple[bool, float]:
    """Run a reproducer's node alone in a fresh ``backend`` build: (within its bounds, worst error
    relative to its bound's quantity), the error being the worst of the output, the running
    statistics after the step, and for a backward case the input and parameter gradients. The
    bounds are the verdict's (``tol`` overrides them)."""
    from ...spec import parse_spec

    check_backend(backend)
    try:
        with open(os.path.join(directory, "node.json"), "rb") as f:
            one = parse_spec(f.read())
    except FileNotFoundError:
        raise DiffError(f"{directory} holds no node.json: not a onespec diff reproducer") from None
    case = load_state(os.path.join(directory, "case.npz"))
    train = bool(case.get("train", False))
    bound = tol if tol is not None else float(case.get("bound", TOL))
    be = load_backend(backend)
    net = be.build(one)
    be.load_state(net, one, {k[len("tensor:"):]: v.astype(np.float32) for k, v in case.items() if k.startswith("tensor:")})
    x = case["x"].astype(np.float32)
    if "gy" in case:
        y, dx, grads = be.node_vjp(net, one, "", x, case["gy"].astype(np.float32), train=train)
        want = {k[len("grad:"):]: v for k, v in case.items() if k.startswith("grad:")}
        terms = {k[len("terms:"):]: float(v) for k, v in case.items() if k.startswith("terms:")}
        err = max(rel(y, case["expected"]), rel(dx, case["expected_dx"]),
                  grad_err(grads, want, terms)[0] if want else 0.0)
        return err <= bound, err
    got = be.run_node(net, one.layers[0].name, x, train=train) if train else be.forward(net, x)[0]
    err = rel(got, case["expected"])
    ok = err <= bound
    stats = {k[len("stat:"):]: v for k, v in case.items() if k.startswith("stat:")}
    if stats:
        lay = layout(one)
        serr = stat_err(be.get_state(net, one), stats, {k: lay[k].role for k in stats})[0]
        sbound = tol if tol is not None else float(case["stats_bound"])
        ok = ok and serr <= sbound
        err = max(err, serr)
    return ok, err
